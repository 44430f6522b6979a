package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// Limits and malformed input, the same inside intercepted tunnels as on the
// plain-HTTP listener.

// dialTunnel opens an intercepted tunnel to target through h and returns
// its TLS side, speaking HTTP/1.1.
func dialTunnel(t testing.TB, h *harness, target string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	conn := connectRaw(t, h, target)
	tc := tls.Client(conn, &tls.Config{RootCAs: h.caPool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("tunnel handshake: %v", err)
	}
	return tc, bufio.NewReader(tc)
}

// connectRaw sends CONNECT target through h and returns the connection
// once the proxy answered 200.
func connectRaw(t testing.TB, h *harness, target string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	return conn
}

// h2Tunnel opens an intercepted tunnel of h's proxy to target and speaks
// HTTP/2 in it, the preface and an empty SETTINGS sent; its framer reads
// header blocks whole.
func h2Tunnel(t testing.TB, h *harness, target string) (*tls.Conn, *http2.Framer) {
	t.Helper()
	tc := tls.Client(connectRaw(t, h, target), &tls.Config{RootCAs: h.caPool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("tunnel handshake: %v, ALPN %q", err, tc.ConnectionState().NegotiatedProtocol)
	}
	io.WriteString(tc, http2.ClientPreface)
	fr := http2.NewFramer(tc, tc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	return tc, fr
}

// plainConn opens a connection to the proxy's listener.
func plainConn(t testing.TB, h *harness) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, bufio.NewReader(conn)
}

// statusOf reads one response from br within 10 s: its status, or -1 when
// the connection ended without one.
func statusOf(conn net.Conn, br *bufio.Reader) int {
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMalformedRequestsInTunnel: a malformed request gets the same status
// inside an intercepted tunnel as on the plain listener, and not a silent
// close.
func TestMalformedRequestsInTunnel(t *testing.T) {
	origin := httptest.NewTLSServer(originMux())
	defer origin.Close()
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	target := strings.TrimPrefix(origin.URL, "https://")

	for _, tc := range []struct {
		name, head string
		want       int
	}{
		{"duplicate Content-Length", "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"negative Content-Length", "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: -3\r\n\r\nabc", 400},
		{"unknown Transfer-Encoding", "POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: gzip\r\n\r\nabc", 501},
		{"bad request line", "GET%s HTTP/1.1 x\r\nHost: %s\r\n\r\n", 400},
		{"bad header line", "GET %s HTTP/1.1\r\nHost: %s\r\nno colon here\r\n\r\n", 400},
		{"HTTP/2.0 in an HTTP/1 head", "GET %s HTTP/2.0\r\nHost: %s\r\n\r\n", 505},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, br := plainConn(t, h)
			fmt.Fprintf(conn, tc.head, origin.URL+"/echo", target)
			if got := statusOf(conn, br); got != tc.want {
				t.Errorf("plain HTTP: status %d, want %d", got, tc.want)
			}
			tlsConn, tbr := dialTunnel(t, h, target)
			fmt.Fprintf(tlsConn, tc.head, "/echo", target)
			if got := statusOf(tlsConn, tbr); got != tc.want {
				t.Errorf("in a tunnel: status %d, want %d", got, tc.want)
			}
		})
	}
	// And the tunnel still serves good requests, chunked bodies included.
	tlsConn, tbr := dialTunnel(t, h, target)
	for range 2 {
		fmt.Fprintf(tlsConn, "POST /echo HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", target)
		if got := statusOf(tlsConn, tbr); got != http.StatusOK {
			t.Fatalf("chunked POST in a tunnel: status %d, want 200", got)
		}
	}
}

// TestHeadSizeLimit: a request head over max_header_bytes gets 431 inside
// a tunnel as outside, and the proxy stops reading it: an endless header is
// refused after about the limit, not read whole.
func TestHeadSizeLimit(t *testing.T) {
	origin := httptest.NewTLSServer(originMux())
	defer origin.Close()
	cfg := testConfig(t)
	cfg.MaxHeaderBytes = 32 << 10
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	target := strings.TrimPrefix(origin.URL, "https://")
	big := strings.Repeat("a", 64<<10)

	conn, br := plainConn(t, h)
	fmt.Fprintf(conn, "GET %s/echo HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", origin.URL, target, big)
	if got := statusOf(conn, br); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("plain HTTP: status %d, want 431", got)
	}

	tlsConn, tbr := dialTunnel(t, h, target)
	fmt.Fprintf(tlsConn, "GET /echo HTTP/1.1\r\nHost: %s\r\nX-Small: %s\r\n\r\n", target, big[:1000])
	if got := statusOf(tlsConn, tbr); got != http.StatusOK {
		t.Fatalf("a small head in a tunnel: status %d, want 200", got)
	}

	// An endless header: 431 while the client is still writing.
	tlsConn, tbr = dialTunnel(t, h, target)
	sent := make(chan int64, 1)
	go func() {
		n, _ := fmt.Fprintf(tlsConn, "GET /echo HTTP/1.1\r\nHost: %s\r\nX-Big: ", target)
		total := int64(n)
		chunk := []byte(big)
		for total < 256<<20 {
			tlsConn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			n, err := tlsConn.Write(chunk)
			total += int64(n)
			if err != nil {
				break
			}
		}
		sent <- total
	}()
	if got := statusOf(tlsConn, tbr); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("endless header in a tunnel: status %d, want 431", got)
	}
	tlsConn.Close()
	if n := <-sent; n > 16<<20 {
		t.Errorf("the proxy took %d bytes of an endless header with max_header_bytes 32 KiB", n)
	}
}

// TestHeadSizeLimitHTTP2: inside a tunnel over HTTP/2, the proxy's server
// advertises max_header_bytes and answers a header list over it with 431
// (goproxy's embedded server would take 1 MiB whatever the setting); one
// under it goes through. The client writes its frames itself, ignoring the
// advertised limit, as an attacker would.
func TestHeadSizeLimitHTTP2(t *testing.T) {
	origin := httptest.NewTLSServer(originMux())
	defer origin.Close()
	cfg := testConfig(t)
	cfg.MaxHeaderBytes = 32 << 10
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	target := strings.TrimPrefix(origin.URL, "https://")
	tc, fr := h2Tunnel(t, h, target)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	statuses := map[uint32]string{}
	var limit uint32
	tc.SetReadDeadline(time.Now().Add(20 * time.Second))
	// Stream 1: one header of 1,000 bytes; stream 3: 40 of them, 40 KB in
	// all (x/net's server takes one value longer than the whole limit as a
	// compression error and ends the connection, as goproxy's did).
	for i, n := range []int{1, 40} {
		block.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", target}, {":path", "/echo"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		for j := range n {
			enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-big-%d", j), Value: strings.Repeat("a", 1000)})
		}
		id := uint32(2*i + 1)
		b := block.Bytes()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b[:min(len(b), 16384)], EndStream: true, EndHeaders: len(b) <= 16384})
		for b = b[min(len(b), 16384):]; len(b) > 0; b = b[min(len(b), 16384):] {
			fr.WriteContinuation(id, len(b) <= 16384, b[:min(len(b), 16384)])
		}
		for statuses[id] == "" {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("after %v: %v", statuses, err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if v, ok := f.Value(http2.SettingMaxHeaderListSize); ok {
					limit = v
				}
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.MetaHeadersFrame:
				statuses[f.StreamID] = f.PseudoValue("status")
			case *http2.GoAwayFrame:
				t.Fatalf("GOAWAY %v after stream %d", f.ErrCode, f.LastStreamID)
			}
		}
	}
	if statuses[1] != "200" || statuses[3] != "431" {
		t.Errorf("statuses %v, want 200 for the small header list and 431 for the large one", statuses)
	}
	if limit == 0 || limit > 64<<10 {
		t.Errorf("advertised header list limit %d, want max_header_bytes' (32 KiB and its allowance)", limit)
	}
}

// TestResponseHeadSizeLimit: an origin's response head over
// max_header_bytes is a 502, inside a tunnel as outside.
func TestResponseHeadSizeLimit(t *testing.T) {
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("b", 64<<10))
	}))
	defer origin.Close()
	plainOrigin := httptest.NewServer(origin.Config.Handler)
	defer plainOrigin.Close()
	cfg := testConfig(t)
	cfg.MaxHeaderBytes = 32 << 10
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	c := h.client("", "")
	for _, u := range []string{plainOrigin.URL, origin.URL} {
		resp, err := c.Get(u + "/")
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("GET %s: status %d, want 502", u, resp.StatusCode)
		}
	}
}

// TestBadConnectTargets: a CONNECT whose target is not host:port with a
// usable host and port gets 400, never a 200 first.
func TestBadConnectTargets(t *testing.T) {
	h := startProxy(t, testConfig(t))
	for _, target := range []string{
		"example.com",                          // no port
		"example.com:",                         // empty port
		":443",                                 // no host
		"example.com:0",                        // port 0
		"example.com:https",                    // not a number
		"example.com:70000",                    // out of range
		strings.Repeat("a", 5000) + ".com:443", // too long
		"exa mple.com:443",                     // not a name
		"exa\x01mple.com:443",
		".:443", "...:443", // dots alone name no site
	} {
		conn, br := plainConn(t, h)
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		if got := statusOf(conn, br); got != http.StatusBadRequest {
			t.Errorf("CONNECT %.40q: status %d, want 400", target, got)
		}
	}
	conn, br := plainConn(t, h)
	io.WriteString(conn, "CONNECT  HTTP/1.1\r\nHost: \r\n\r\n") // empty
	if got := statusOf(conn, br); got != http.StatusBadRequest {
		t.Errorf("empty CONNECT target: status %d, want 400", got)
	}
}

// TestUnsupportedSchemes: an absolute-form request in a scheme other than
// http or https gets 400 and goes nowhere (it used to go out as plain HTTP),
// and so does one whose URL has no host (it got a 403 for a dial to ":80"),
// or dots alone for a host, which name no site (they took sessions from the
// pool that serves every site).
func TestUnsupportedSchemes(t *testing.T) {
	hits := make(chan string, 8)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- r.URL.String()
	}))
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	addr := origin.Listener.Addr().String()
	for _, scheme := range []string{"ftp", "ws", "wss", "gopher", "FTP"} {
		conn, br := plainConn(t, h)
		fmt.Fprintf(conn, "GET %s://%s/file HTTP/1.1\r\nHost: %s\r\n\r\n", scheme, addr, addr)
		if got := statusOf(conn, br); got != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", scheme, got)
		}
	}
	for _, target := range []string{"http:///file", "https:///file", "http://:80/file", "http://./file", "http://...:80/file", // no host: not the Host header's
		"http://\xff.invalid/file", "http://a%2Fb/file", "http://a\x7fb/file"} { // no name: a byte of no UTF-8 made Prometheus panic (no answer at all)
		conn, br := plainConn(t, h)
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, addr)
		if got := statusOf(conn, br); got != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", target, got)
		}
	}
	conn, br := plainConn(t, h) // the same request in http goes through
	fmt.Fprintf(conn, "GET http://%s/file HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
	if got := statusOf(conn, br); got != http.StatusOK {
		t.Errorf("http: status %d, want 200", got)
	}
	if len(hits) != 1 {
		t.Errorf("the origin got %d requests, want the http one alone", len(hits))
	}
	// Inside a tunnel, a Host of dots alone, or of bytes that name nothing.
	for _, host := range []string{".", "\xff.test"} {
		tc, tbr := dialTunnel(t, h, addr)
		fmt.Fprintf(tc, "GET /file HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		if got := statusOf(tc, tbr); got != http.StatusBadRequest {
			t.Errorf("Host %q in a tunnel: status %d, want 400", host, got)
		}
	}
	if p := h.srv.Sites().Lookup(""); p != nil && len(p.Sessions()) > 0 {
		t.Errorf("the pool of sessions that serve every site holds %d sessions made by these requests", len(p.Sessions()))
	}
}

// closedWithin waits up to limit for the proxy to close conn (reading
// through br) and returns how long it took; it fails the test if it did not.
func closedWithin(t *testing.T, conn net.Conn, r io.Reader, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the proxy kept the connection open for %v", limit)
	}
	return time.Since(start)
}

// TestTunnelsTimeOut: an idle tunnel is closed after idle_timeout before
// and after its TLS handshake, intercepted or not; a slow handshake after
// tls_handshake_timeout and a slow head after read_header_timeout; a
// request in flight for longer than idle_timeout is not cut off.
func TestTunnelsTimeOut(t *testing.T) {
	const idle = 300 * time.Millisecond
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * idle) // the origin is slow, on purpose
		}
		io.WriteString(w, "ok")
	}))
	defer origin.Close()
	cfg := testConfig(t)
	cfg.IdleTimeout = idle
	cfg.TLSHandshakeTimeout = 2 * idle
	cfg.ReadHeaderTimeout = 2 * idle
	cfg.MITM.SkipHosts = []string{"localhost"}
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	target := strings.TrimPrefix(origin.URL, "https://")
	const limit = 5 * time.Second

	t.Run("before the handshake", func(t *testing.T) {
		conn := connectRaw(t, h, target)
		closedWithin(t, conn, conn, limit)
	})
	t.Run("slow handshake", func(t *testing.T) {
		conn := connectRaw(t, h, target)
		conn.Write([]byte{0x16, 0x03, 0x01}) // a ClientHello that never ends
		if took := closedWithin(t, conn, conn, limit); took < cfg.TLSHandshakeTimeout/2 {
			t.Errorf("closed after %v, before tls_handshake_timeout %v", took, cfg.TLSHandshakeTimeout)
		}
	})
	t.Run("after a request", func(t *testing.T) {
		tc, br := dialTunnel(t, h, target)
		fmt.Fprintf(tc, "GET /slow HTTP/1.1\r\nHost: %s\r\n\r\n", target)
		if got := statusOf(tc, br); got != http.StatusOK {
			t.Fatalf("a request slower than idle_timeout: status %d, want 200", got)
		}
		if took := closedWithin(t, tc, br, limit); took < idle/2 {
			t.Errorf("closed after %v, before idle_timeout %v", took, idle)
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		tc, _ := h2Tunnel(t, h, target)
		closedWithin(t, tc, tc, limit)
	})
	t.Run("slow head", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.IdleTimeout = time.Minute
		cfg.ReadHeaderTimeout = idle
		trustOrigin(t, cfg, origin)
		h := startProxy(t, cfg)
		tc, br := dialTunnel(t, h, target)
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\n", target) // never ends
		closedWithin(t, tc, br, limit)
	})
	t.Run("not intercepted", func(t *testing.T) {
		port := target[strings.LastIndexByte(target, ':'):]
		conn := connectRaw(t, h, "localhost"+port)
		closedWithin(t, conn, conn, limit)
	})
	t.Run("plain HTTP", func(t *testing.T) {
		conn, br := plainConn(t, h)
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", strings.Replace(origin.URL, "https", "http", 1), target)
		statusOf(conn, br)
		closedWithin(t, conn, br, limit)
	})
}

// TestBodiesThroughTunnelReader: request bodies pass the tunnel's request
// reader whole and unchanged, by Content-Length and chunked, one request
// after another on one tunnel.
func TestBodiesThroughTunnelReader(t *testing.T) {
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.New()
		n, err := io.Copy(sum, r.Body)
		fmt.Fprintf(w, "%d %x %v", n, sum.Sum(nil), err)
	}))
	defer origin.Close()
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	target := strings.TrimPrefix(origin.URL, "https://")
	body := make([]byte, 3<<20+17)
	for i := range body {
		body[i] = byte(i * 7)
	}
	want := fmt.Sprintf("%d %x <nil>", len(body), sha256.Sum256(body))

	tc, br := dialTunnel(t, h, target)
	for _, chunked := range []bool{false, true, false} {
		go func() {
			if chunked {
				fmt.Fprintf(tc, "POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n", target)
				for rest := body; len(rest) > 0; {
					n := min(len(rest), 100000)
					fmt.Fprintf(tc, "%x\r\n%s\r\n", n, rest[:n])
					rest = rest[n:]
				}
				io.WriteString(tc, "0\r\n\r\n")
			} else {
				fmt.Fprintf(tc, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s", target, len(body), body)
			}
		}()
		tc.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("chunked %v: %v", chunked, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != want {
			t.Fatalf("chunked %v: origin got %q, want %q", chunked, got, want)
		}
	}
}

// TestCheckHostName: the hosts real clients send pass (case, punycode, a
// root dot, IPv6 with a zone, a 253-character name written absolute); bytes
// no name has, dots alone and names too long do not.
func TestCheckHostName(t *testing.T) {
	label := strings.Repeat("a", 63)
	name253 := strings.Join([]string{label, label, label, strings.Repeat("b", 61)}, ".")
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"EXAMPLE.COM", true}, {"example.com.", true}, {"xn--bcher-kva.example", true}, {"my_host", true},
		{"::1", true}, {"2001:db8::1", true}, {"127.0.0.1", true}, {"fe80::1%eth0", true},
		{name253, true}, {name253 + ".", true},
		{name253 + "b", false}, {"", false}, {".", false}, {"..", false},
		{"\xff.invalid", false}, {"exa mple.com", false}, {"a\x7fb", false}, {"bücher.example", false},
		{"fe80::1%\xff", false}, {"fe80::1%a b", false},
	} {
		if err := checkHostName(tc.host); (err == nil) != tc.ok {
			t.Errorf("checkHostName(%q) = %v, want ok %v", tc.host, err, tc.ok)
		}
	}
}

// TestH2TunnelPingsDoNotKeepItOpen: an HTTP/2 client in a tunnel that
// sends PINGs and no request is closed after idle_timeout; the PINGs kept
// it open for ever, counted as use.
func TestH2TunnelPingsDoNotKeepItOpen(t *testing.T) {
	const idle = 300 * time.Millisecond
	origin := proxytest.StartWireOrigin(t, false)
	cfg := testConfig(t)
	cfg.IdleTimeout = idle
	cfg.ReadHeaderTimeout = idle
	trustCA(t, cfg, origin.CAPEM)
	h := startProxy(t, cfg)
	tc, fr := h2Tunnel(t, h, origin.Addr)
	closed := make(chan error, 1)
	go func() { // what the server sends, until the tunnel ends
		for {
			if _, err := fr.ReadFrame(); err != nil {
				closed <- err
				return
			}
		}
	}()
	ping := time.NewTicker(idle / 3)
	defer ping.Stop()
	deadline := time.After(20 * idle)
	for {
		select {
		case <-closed:
			return
		case <-deadline:
			t.Fatalf("a tunnel with no request for %v (idle_timeout %v) is still open: its PINGs keep it", 20*idle, idle)
		case <-ping.C:
			tc.SetWriteDeadline(time.Now().Add(time.Second))
			if err := fr.WritePing(false, [8]byte{1}); err != nil {
				return // closed
			}
		}
	}
}
