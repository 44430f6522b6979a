package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/mitm"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

// The throughput benchmark runs goproxy alone (its transport tuned) and
// sessionproxy (sessions, cookie injection, default rules, interception on,
// a pool of 1,000 sessions) against the same origin, with 32 keep-alive
// client connections and 1 KiB bodies; sessionproxy also with sessions that
// never wear out (the cost of a request alone) and with 20 rules, one of
// them a body regex. The proxies run side by side for the whole benchmark
// and are loaded in turns, benchRound requests each, for b.N rounds, so that
// a noisy machine slows them alike; it reports each one's median req/s and
// its median ratio to goproxy in the same round:
//
//	go test -run '^$' -bench 'Throughput' -benchtime 5x ./proxy/
const (
	benchConns    = 32
	benchBodySize = 1 << 10
	benchRound    = 5000
)

// benchOrigins starts the benchmarks' origin over plain HTTP and over TLS
// (1 KiB text/html answers that set a cookie), stopped when b ends; roots
// and caFile hold the TLS origin's CA.
func benchOrigins(b *testing.B) (origin, tlsOrigin *httptest.Server, roots *x509.CertPool, caFile string) {
	body := strings.Repeat("x", benchBodySize)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "seen", Value: "1", Path: "/"})
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, body)
	})
	origin = httptest.NewServer(handler)
	b.Cleanup(origin.Close)
	// An ECDSA origin, as most sites are: httptest's own RSA key would make
	// every new session's handshake cost the origin (in this same process)
	// a millisecond of CPU.
	originCA, originKey, roots := newTestCA(b)
	tlsOrigin = httptest.NewUnstartedServer(handler)
	tlsOrigin.TLS = &tls.Config{Certificates: []tls.Certificate{newTestLeaf(b, originCA, originKey, "127.0.0.1")}}
	tlsOrigin.Config.ErrorLog = discardServerLog
	tlsOrigin.StartTLS()
	b.Cleanup(tlsOrigin.Close)
	caFile = filepath.Join(b.TempDir(), "origin-ca.pem")
	if err := os.WriteFile(caFile, originCA, 0o644); err != nil {
		b.Fatal(err)
	}
	return origin, tlsOrigin, roots, caFile
}

func BenchmarkThroughput(b *testing.B) {
	origin, tlsOrigin, originRoots, originCAFile := benchOrigins(b)
	for _, scheme := range []string{"http", "https"} {
		target := origin.URL
		if scheme == "https" {
			target = tlsOrigin.URL
		}
		b.Run(scheme, func(b *testing.B) {
			type contender struct {
				name   string
				client *http.Client
				rates  []float64
				ratios []float64
				cpu    time.Duration // this process's CPU while it was loaded
			}
			addr, caPool, stop := startTunedGoproxy(b, originRoots)
			defer stop()
			cs := []*contender{{name: "goproxy-tuned", client: loadClient(b, addr, caPool, target)}}
			for _, variant := range []string{"sessionproxy", "sessionproxy-no-wear-out", "sessionproxy-20-rules"} {
				cfg := config.Default()
				cfg.DataDir = b.TempDir()
				cfg.Pool.PersistInterval = time.Hour
				cfg.MITM.UpstreamCA = []string{originCAFile}
				switch variant {
				case "sessionproxy-no-wear-out":
					// Sessions that outlive the run: what a request costs
					// apart from the new connections of new sessions.
					cfg.Pool.Session.MaxUsageCount = 1 << 30
				case "sessionproxy-20-rules":
					cfg.Rules = twentyRules(b)
				}
				addr, caPool, stop := startSessionproxy(b, cfg)
				defer stop()
				cs = append(cs, &contender{name: variant, client: loadClient(b, addr, caPool, target)})
			}
			var rulesRatios []float64 // 20 rules against the defaults, per round
			b.ResetTimer()
			for range b.N {
				for _, c := range cs {
					cpu := processCPU()
					rate := load(b, c.client, target, benchRound)
					c.cpu += processCPU() - cpu
					c.rates = append(c.rates, rate)
					c.ratios = append(c.ratios, rate/cs[0].rates[len(cs[0].rates)-1])
				}
				rulesRatios = append(rulesRatios, cs[3].rates[len(cs[3].rates)-1]/cs[1].rates[len(cs[1].rates)-1])
			}
			b.StopTimer()
			for _, c := range cs {
				b.ReportMetric(median(c.rates), c.name+"-req/s")
				b.ReportMetric(float64(c.cpu.Microseconds())/float64(b.N*benchRound), c.name+"-cpu-µs/req")
				if c.name != cs[0].name {
					b.ReportMetric(median(c.ratios), c.name+"/goproxy")
				}
			}
			b.ReportMetric(median(rulesRatios), "20-rules/default")
		})
	}
}

// median returns the middle value of xs (the mean of the two middle ones
// for an even count).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// twentyRules is a rule set of the size users write: 19 status, header and
// host rules and one body regex, which every 200 text/html response of the
// benchmark's origin is matched against (and passes).
func twentyRules(b *testing.B) *rules.Set {
	specs := []rules.Spec{
		{Name: "cf-challenge", Header: map[string]string{"Server": "(?i)cloudflare", "Cf-Mitigated": "challenge"}, Action: rules.ActionRetire, Retry: true},
		{Name: "akamai", Header: map[string]string{"Server": "(?i)akamaighost"}, Status: []string{"403"}, Action: rules.ActionRetire, Retry: true},
		{Name: "rate-limit", Status: []string{"429"}, Action: rules.ActionRetire, Retry: true},
		{Name: "unauthorized", Status: []string{"401"}, Action: rules.ActionRetire},
		{Name: "forbidden", Status: []string{"403"}, Action: rules.ActionRetire, Retry: true},
		{Name: "teapot", Status: []string{"418"}, Action: rules.ActionBad},
		{Name: "gone", Status: []string{"410"}, Action: rules.ActionNone},
		{Name: "shop-5xx", Host: "*.shop.example", Status: []string{"5xx"}, Action: rules.ActionBad, Retry: true},
		{Name: "api-4xx", Host: "api.example.com", Status: []string{"4xx"}, Action: rules.ActionBad},
		{Name: "datadome", Header: map[string]string{"X-Datadome": ""}, Action: rules.ActionRetire, Retry: true},
		{Name: "px", Header: map[string]string{"X-Px-Blocked": "1"}, Action: rules.ActionRetire},
		{Name: "retry-after", Header: map[string]string{"Retry-After": `^\d+$`}, Status: []string{"503"}, Action: rules.ActionRetire},
		{Name: "login-wall", Status: []string{"302"}, Header: map[string]string{"Location": "(?i)/login"}, Action: rules.ActionRetire},
		{Name: "captcha-redirect", Status: []string{"301", "302", "307"}, Header: map[string]string{"Location": "(?i)captcha"}, Action: rules.ActionRetire, Retry: true},
		{Name: "cdn-error", Host: "cdn.*", Status: []string{"5xx"}, Action: rules.ActionNone},
		{Name: "timeouts", Error: "timeout", Action: rules.ActionBad, Retry: true},
		{Name: "tls", Error: "tls", Action: rules.ActionRetire},
		{Name: "connect", Error: "connect", Action: rules.ActionBad, Retry: true},
		{Name: "server-error", Status: []string{"5xx"}, Action: rules.ActionBad},
		{Name: "captcha-page", Body: `(?i)captcha|are you a robot|access denied`, Action: rules.ActionRetire},
	}
	rs, err := rules.Compile(specs, "")
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// startSessionproxy runs sessionproxy on cfg with its pool filled to 1,000
// sessions; it returns the proxy's address, a pool trusting its CA and a
// stop function.
func startSessionproxy(b *testing.B, cfg *config.Config) (addr string, caPool *x509.CertPool, stop func()) {
	srv, err := Open(context.Background(), Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	for i := 0; i < 1000; i++ {
		if _, err := sitePoolOf(b, srv, originSite).GetSession(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return ln.Addr().String(), certPoolOf(b, srv.CA().CertPEM()), func() { srv.Shutdown(context.Background()) }
}

// loadClient returns a client of the proxy at proxyAddr trusting caPool, with
// its benchConns connections (and tunnels, for https targets) already open.
func loadClient(b *testing.B, proxyAddr string, caPool *x509.CertPool, target string) *http.Client {
	pu := &url.URL{Scheme: "http", Host: proxyAddr}
	tr := &http.Transport{
		Proxy:               http.ProxyURL(pu),
		TLSClientConfig:     &tls.Config{RootCAs: caPool},
		MaxIdleConnsPerHost: benchConns,
		MaxConnsPerHost:     benchConns,
	}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range benchConns {
		wg.Go(func() { fetch(b, client, target) })
	}
	wg.Wait()
	return client
}

// load sends n GETs for target through client from benchConns goroutines
// and returns the requests per second.
func load(b *testing.B, client *http.Client, target string, n int) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchConns {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				fetch(b, client, target)
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

func fetch(b *testing.B, c *http.Client, target string) {
	resp, err := c.Get(target)
	if err != nil {
		b.Error(err)
		return
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n != benchBodySize {
		b.Errorf("status %d, %d bytes", resp.StatusCode, n)
	}
}

// startTunedGoproxy runs goproxy alone, intercepting with a CA of the
// benchmark's own (never goproxy's built-in one) and with its transport's idle
// connections per host raised.
func startTunedGoproxy(b *testing.B, originRoots *x509.CertPool) (addr string, caPool *x509.CertPool, stop func()) {
	ca, _, err := mitm.LoadOrCreate(filepath.Join(b.TempDir(), "ca.pem"), filepath.Join(b.TempDir(), "ca-key.pem"), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = discardLogger{}
	gp.Tr = &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: originRoots},
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     90 * time.Second,
	}
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: func(h string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
			return ca.TLSConfigForHost(h)
		}}, host
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: gp, ErrorLog: discardServerLog}
	go srv.Serve(ln)
	return ln.Addr().String(), certPoolOf(b, ca.CertPEM()), func() {
		srv.Close()
		gp.Tr.CloseIdleConnections()
		ca.Close()
	}
}

// BenchmarkStream300MiB streams a 300 MiB response through the real program
// (built and started as a child process), over plain HTTP and then through
// interception, and reports the proxy's peak RSS (VmHWM). Linux only.
//
//	go test -run '^$' -bench 'Stream300MiB' -benchtime 1x ./proxy/
func BenchmarkStream300MiB(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Fatal("needs /proc (Linux)")
	}
	const size = 300 << 20
	chunk := []byte(strings.Repeat("0123456789abcdef", 2048))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain") // text: body rules look at its start
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	origin := httptest.NewServer(handler)
	defer origin.Close()
	tlsOrigin := httptest.NewTLSServer(handler)
	defer tlsOrigin.Close()

	dir := b.TempDir()
	bin := buildProgram(b, filepath.Join(dir, "sessionproxy"), "..")
	originCA := filepath.Join(dir, "origin.pem")
	writeCertPEM(b, originCA, tlsOrigin)
	cfgPath := filepath.Join(dir, "config.yaml")
	// A body rule too, so the inspecting path is the one measured.
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: \"\"\nlog_format: json\ndata_dir: %s\n"+
		"mitm:\n  upstream_ca: [%s]\nrules:\n  - name: captcha\n    body: '(?i)captcha'\n    action: retire\n",
		filepath.Join(dir, "data"), originCA)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	proc := startChildProxy(b, bin, filepath.Join(dir, "data", "ca.pem"), "-config", cfgPath)
	client := &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(&url.URL{Scheme: "http", Host: proc.addr}),
		TLSClientConfig: &tls.Config{RootCAs: certPoolOf(b, proc.caPEM)},
	}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, target := range []string{origin.URL, tlsOrigin.URL} { // plain, then through interception
			resp, err := client.Get(target + "/big")
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != size {
				b.Fatalf("%s: streamed %d bytes (%v), want %d", target, n, err, size)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(peakRSS(b, proc.pid))/(1<<20), "peak-RSS-MiB")
	b.SetBytes(2 * size)
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

// BenchmarkRedisThroughput runs sessionproxy on its in-process pool and on a
// Redis pool (a real redis-server on loopback) side by side, loaded in turns
// as in BenchmarkThroughput, and reports the median per-round ratio:
//
//	go test -run '^$' -bench 'RedisThroughput' -benchtime 5x ./proxy/
func BenchmarkRedisThroughput(b *testing.B) {
	rs := sessionpooltest.Start(b)
	origin, tlsOrigin, _, originCAFile := benchOrigins(b)
	for i, scheme := range []string{"http", "https"} {
		target := origin.URL
		if scheme == "https" {
			target = tlsOrigin.URL
		}
		b.Run(scheme, func(b *testing.B) {
			var clients []*http.Client
			for _, store := range []string{"file", rs.URL(i)} {
				cfg := config.Default()
				cfg.DataDir = b.TempDir()
				cfg.Pool.PersistInterval = time.Hour
				cfg.Pool.Store = config.Store(store)
				cfg.MITM.UpstreamCA = []string{originCAFile}
				addr, caPool, stop := startSessionproxy(b, cfg)
				defer stop()
				clients = append(clients, loadClient(b, addr, caPool, target))
			}
			var memRates, redisRates, ratios []float64
			b.ResetTimer()
			var cpuMem, cpuRedis, cpuServer time.Duration
			lastServer, _ := procCPU(rs.Pid())
			for range b.N {
				c0 := processCPU()
				mem := load(b, clients[0], target, benchRound)
				c1 := processCPU()
				red := load(b, clients[1], target, benchRound)
				c2 := processCPU()
				cpuMem += c1 - c0
				cpuRedis += c2 - c1
				if i, ok := procCPU(rs.Pid()); ok {
					cpuServer += i - lastServer
					lastServer = i
				}
				memRates, redisRates = append(memRates, mem), append(redisRates, red)
				ratios = append(ratios, red/mem)
			}
			b.StopTimer()
			b.ReportMetric(median(memRates), "memory-req/s")
			b.ReportMetric(median(redisRates), "redis-req/s")
			b.ReportMetric(median(ratios), "redis/memory")
			b.ReportMetric(float64(cpuMem.Microseconds())/float64(b.N*benchRound), "memory-cpu-µs/req")
			b.ReportMetric(float64(cpuRedis.Microseconds())/float64(b.N*benchRound), "redis-cpu-µs/req")
			b.ReportMetric(float64(cpuServer.Microseconds())/float64(b.N*benchRound), "redis-server-cpu-µs/req")
		})
	}
}

// processCPU returns the CPU time this process has used (user and system,
// all threads).
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandshake measures what a new session's first request to an
// HTTPS origin adds: a TCP connection and a TLS 1.3 handshake, both ends in
// this process (as in BenchmarkThroughput), with Go's default key shares
// (X25519MLKEM768 first, which the proxy keeps) and with X25519 alone:
//
//	go test -run '^$' -bench Handshake -benchtime 2000x ./proxy/
func BenchmarkHandshake(b *testing.B) {
	caPEM, caKey, roots := newTestCA(b)
	srvCfg := &tls.Config{Certificates: []tls.Certificate{newTestLeaf(b, caPEM, caKey, "127.0.0.1")}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				tc := tls.Server(c, srvCfg)
				tc.Handshake()
				tc.Close()
			})
		}
	})
	for _, tc := range []struct {
		name   string
		curves []tls.CurveID
	}{{"default", nil}, {"x25519", []tls.CurveID{tls.X25519}}} {
		b.Run(tc.name, func(b *testing.B) {
			cpu := processCPU()
			for b.Loop() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				conn := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", CurvePreferences: tc.curves})
				if err := conn.Handshake(); err != nil {
					b.Fatal(err)
				}
				conn.Close()
			}
			b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
