package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
)

// fuzzSeeds are request streams, good and bad, for both fuzz targets.
var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("x", 3000) + "\r\n\r\n",
	"GET / HTTP/1.1\r\n folded\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"\x00\x01\x02",
	"",
}

// fakeConn is a net.Conn reading from r and discarding writes.
type fakeConn struct {
	net.Conn
	r io.Reader
}

func (c fakeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c fakeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzH1Reader: whatever a client sends, the tunnel's request reader passes
// on an unchanged prefix of it and never holds more than a head and a read
// buffer.
func FuzzH1Reader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint16(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, step uint16) {
		lim := connLimits{maxHeaderBytes: 1024, readHeader: time.Second}
		r := newH1Reader(fakeConn{r: bytes.NewReader(data)}, lim)
		var out bytes.Buffer
		buf := make([]byte, int(step)%4096+1)
		for {
			n, err := r.Read(buf)
			out.Write(buf[:n])
			if held := len(r.src.buf); held > lim.maxHeaderBytes+2*headSlop+32<<10 {
				t.Fatalf("the reader holds %d bytes", held)
			}
			if kept := len(r.heads.heads); kept > maxHeadsKept {
				t.Fatalf("the reader keeps %d heads", kept)
			}
			if err != nil {
				break
			}
		}
		if !bytes.HasPrefix(data, out.Bytes()) {
			t.Fatalf("passed on %q, not a prefix of %q", out.Bytes(), data)
		}
	})
}

// FuzzProxyRequests: arbitrary bytes on the plain-HTTP listener and inside
// an intercepted tunnel, after its TLS handshake, leave the proxy up and
// its memory bounded.
func FuzzProxyRequests(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	origin := httptest.NewTLSServer(originMux())
	f.Cleanup(origin.Close)
	cfg := config.Default()
	cfg.DataDir = f.TempDir()
	cfg.MaxHeaderBytes = 4096
	cfg.IdleTimeout = 2 * time.Second
	cfg.ReadHeaderTimeout = 2 * time.Second
	dead, _ := url.Parse("http://127.0.0.1:1") // nothing a request names is dialled
	cfg.Upstreams = []*url.URL{dead}
	srv, err := Open(context.Background(), Options{Config: cfg})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(ln)
	f.Cleanup(func() { srv.Shutdown(context.Background()) })
	addr := ln.Addr().String()
	pool := certPoolOf(f, srv.CA().CertPEM())
	target := strings.TrimPrefix(origin.URL, "https://")

	f.Fuzz(func(t *testing.T, data []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("the proxy is down: %v", err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write(data)
		conn.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, conn)

		tc := tunnelTo(t, addr, target, pool)
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		tc.Write(data)
		tc.CloseWrite()
		io.Copy(io.Discard, tc)

		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > 512<<20 {
			t.Fatalf("heap in use %d MiB", ms.HeapInuse>>20)
		}
	})
}

// tunnelTo opens an intercepted tunnel to target through the proxy at addr.
func tunnelTo(t *testing.T, addr, target string, pool *x509.CertPool) *tls.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("the proxy is down: %v", err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil) // nothing follows until the client speaks
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("tunnel handshake: %v", err)
	}
	return tc
}
