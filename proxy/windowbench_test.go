package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStalledClientH2 measures what a client that stops reading costs
// the proxy when the origin speaks HTTP/2: the proxy takes what the origin
// sends until the window it advertised is full, and a fingerprint's windows
// are its browser's (Chrome: 6 MiB a stream). Per fingerprint mode, one
// request through interception for a 64 MiB body whose head the client
// reads, then nothing until the origin has stopped sending (its writes
// block: no progress for 300 ms); it reports what the origin sent by then
// and how much more the proxy's live heap holds than before the request
// (HeapAlloc after a GC, from its -pprof endpoint), then reads the rest:
//
//	go test -run '^$' -bench StalledClientH2 -benchtime 1x ./proxy/
func BenchmarkStalledClientH2(b *testing.B) {
	for _, fp := range []string{"go", "chrome", "firefox"} {
		b.Run(fp, func(b *testing.B) { benchStalledClient(b, fp) })
	}
}

func benchStalledClient(b *testing.B, fingerprint string) {
	const size = 64 << 20
	var sent atomic.Int64
	chunk := []byte(strings.Repeat("0123456789abcdef", 2048))
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "not HTTP/2: "+r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		if r.URL.Path == "/warm-up" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			sent.Add(int64(len(chunk)))
		}
	}))
	origin.EnableHTTP2 = true
	origin.StartTLS()
	defer origin.Close()

	dir := b.TempDir()
	bin := buildProgram(b, filepath.Join(dir, "sessionproxy"), "..")
	originCA := filepath.Join(dir, "origin.pem")
	writeCertPEM(b, originCA, origin)
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: \"\"\nlog_format: json\ndata_dir: %s\nfingerprint: %s\n"+
		"mitm:\n  upstream_ca: [%s]\n", filepath.Join(dir, "data"), fingerprint, originCA)
	path := writeConfig(b, dir, cfg)
	pprofAddr := freeBenchAddr(b)
	p := startChildProxy(b, bin, filepath.Join(dir, "data", "ca.pem"), "-config", path, "-pprof", pprofAddr)
	// The client's socket takes 64 KiB, not the many MiB loopback's
	// autotuning would give it: the stall reaches the proxy at once.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10) })
		return errors.Join(err, serr)
	}}
	client := &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr}),
		TLSClientConfig: &tls.Config{RootCAs: certPoolOf(b, p.caPEM)},
		DialContext:     dialer.DialContext,
	}}
	warm, err := client.Get(origin.URL + "/warm-up")
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, warm.Body)
	warm.Body.Close()

	var held, before int64
	b.ResetTimer()
	for range b.N {
		liveHeap(b, pprofAddr) // a GC, and another in liveHeap below: pooled buffers are let go after two
		heap0 := liveHeap(b, pprofAddr)
		resp, err := client.Get(origin.URL + "/big")
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %s", resp.Status)
		}
		// Nothing signals that the origin's writes block: wait for its
		// count to stand still.
		last, still := int64(-1), 0
		for deadline := time.Now().Add(30 * time.Second); still < 15 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			if n := sent.Load(); n == last {
				still++
			} else {
				last, still = n, 0
			}
		}
		held += liveHeap(b, pprofAddr) - heap0
		before += sent.Load()
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("read %d bytes (%v), want %d", n, err, size)
		}
		sent.Store(0)
	}
	b.StopTimer()
	b.ReportMetric(float64(before)/float64(b.N)/(1<<20), "sent-before-read-MiB")
	b.ReportMetric(float64(held)/float64(b.N)/(1<<20), "held-MiB")
}

// liveHeap returns the bytes a child's heap holds after a GC.
func liveHeap(b *testing.B, pprofAddr string) int64 {
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(body), "\n# HeapAlloc = ")
	n, err := strconv.ParseInt(strings.Fields(rest + " ")[0], 10, 64)
	if !ok || err != nil {
		b.Fatalf("no HeapAlloc in the heap profile (%v)", err)
	}
	return n
}
