package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// BenchmarkIdleSessions measures what idle sessions cost the proxy program,
// with fingerprint go (net/http's transport) and mirror (package wire's):
// it starts the built proxy (a process of its own, with -pprof), reads its
// RSS and goroutines, makes one request as each of 1,000 named sessions
// (each opens a connection of its own to the origin, which then idles),
// reads them again and reports the difference per session. The requests
// are plain HTTP, or (the https cases, mirror only) HTTPS through one
// intercepted tunnel, to an origin that speaks HTTP/1.1 or HTTP/2. The
// heap floor (gc.heap_floor) holds garbage up to 32 MiB between
// collections, which the RSS shows; mirror-floor-0 runs without it:
//
//	go test -run '^$' -bench IdleSessions -benchtime 1x ./proxy/
func BenchmarkIdleSessions(b *testing.B) {
	for _, c := range []struct {
		name, fingerprint, origin string
		body                      int    // bytes of each response
		config                    string // more of the proxy's config
	}{
		{"go", "go", "http", 2, ""},
		{"mirror", "mirror", "http", 2, ""},
		{"mirror-floor-0", "mirror", "http", 2, "gc:\n  heap_floor: 0\n"},
		{"mirror-https-h1", "mirror", "h1", 2, ""},
		{"mirror-https-h2", "mirror", "h2", 2, ""},
		// Buffers sized by the largest record or frame read stay with
		// a connection: a page's worth shows what they hold.
		{"mirror-https-h1-64KiB", "mirror", "h1", 64 << 10, ""},
		{"mirror-https-h2-64KiB", "mirror", "h2", 64 << 10, ""},
	} {
		b.Run(c.name, func(b *testing.B) { benchIdleSessions(b, c.fingerprint, c.origin, c.body, c.config) })
	}
}

func benchIdleSessions(b *testing.B, fingerprint, scheme string, size int, more string) {
	const sessions = 1000
	var protos sync.Map // what the origin was spoken to with
	body := bytes.Repeat([]byte("k"), size)
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		w.Write(body)
	}))
	switch scheme {
	case "http":
		origin.Start()
	case "h1":
		origin.StartTLS()
	case "h2":
		origin.EnableHTTP2 = true
		origin.StartTLS()
	}
	defer origin.Close()
	dir := b.TempDir()
	bin := buildProgram(b, filepath.Join(dir, "sessionproxy"), "..")
	pprofAddr := freeBenchAddr(b)
	originCA := filepath.Join(dir, "origin-ca.pem")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: \"\"\nlog_format: json\ndata_dir: %s\nfingerprint: %s\npool:\n  max_pool_size: %d\n  persist_interval: 1h\n",
		dir, fingerprint, 2*sessions) + more
	if scheme != "http" {
		writeCertPEM(b, originCA, origin)
		cfg += fmt.Sprintf("mitm:\n  upstream_ca: [%s]\n", originCA)
	}
	path := writeConfig(b, dir, cfg)
	p := startChildProxy(b, bin, filepath.Join(dir, "ca.pem"), "-config", path, "-pprof", pprofAddr)
	pu, _ := url.Parse("http://" + p.addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: 4,
		TLSClientConfig: &tls.Config{RootCAs: certPoolOf(b, p.caPEM)}, ForceAttemptHTTP2: scheme == "h2"}}
	get := func(session string) {
		req, _ := http.NewRequest(http.MethodGet, origin.URL+"/", nil)
		req.Header.Set("X-Session-Id", session)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(size) {
			b.Fatalf("a body of %d bytes (%v), want %d", n, err, size)
		}
	}
	get("warm-up") // the first request's one-time costs
	rss0, g0 := rssKiB(b, p.pid), goroutines(b, pprofAddr)
	b.ResetTimer()
	for range b.N {
		for i := range sessions {
			get("idle-" + strconv.Itoa(i))
		}
	}
	b.StopTimer()
	want := map[string]string{"http": "HTTP/1.1", "h1": "HTTP/1.1", "h2": "HTTP/2.0"}[scheme]
	protos.Range(func(proto, _ any) bool {
		if proto != want {
			b.Fatalf("the origin was spoken to with %s, want only %s", proto, want)
		}
		return true
	})
	rss1, g1 := rssKiB(b, p.pid), goroutines(b, pprofAddr)
	b.ReportMetric(float64(rss1-rss0)/sessions, "RSS-KiB/session")
	b.ReportMetric(float64(g1-g0)/sessions, "goroutines/session")
	b.ReportMetric(float64(rss1)/1024, "RSS-MiB")
}

func rssKiB(b *testing.B, pid int) int {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func goroutines(b *testing.B, pprofAddr string) int {
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	first, _ := bufio.NewReader(resp.Body).ReadString('\n')
	_, n, _ := strings.Cut(strings.TrimSpace(first), "total ")
	v, err := strconv.Atoi(n)
	if err != nil {
		b.Fatalf("goroutine profile starts %q", first)
	}
	return v
}

func freeBenchAddr(b *testing.B) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
}
