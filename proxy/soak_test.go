package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

var soakFor = flag.Duration("soak", 0, "run TestSoak for this long, e.g. -soak=10m (0: TestSoak does not run)")

// TestSoak runs mixed traffic for -soak through two proxies built from
// this repository, each a process of its own: A keeps its pool in a state
// file, B on a redis-server. On a schedule A and B are killed (SIGKILL)
// and started again, and so is Redis. It reports requests, errors by kind
// (during a restart and outside one), responses lost outside restarts (an
// EOF before any response byte: must be 0), RSS, goroutines and fds of
// each proxy over time, and state that was torn (a proxy that cannot start
// on it) or lost (the anchor session, made at the start, gone): both 0.
//
//	go test ./proxy/ -run TestSoak -timeout 20m -soak=10m
func TestSoak(t *testing.T) {
	if *soakFor == 0 {
		t.Skip("the soak test runs only with -soak=DURATION (go test ./proxy/ -run TestSoak -timeout 20m -soak=10m)")
	}
	rds := sessionpooltest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	origin, tlsOrigin := soakOrigins(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "sessionproxy")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	caCert, caKey, _ := proxytest.NewCA(t)
	originCA := filepath.Join(dir, "origin-ca.pem")
	writeCertPEM(t, originCA, tlsOrigin)
	for name, data := range map[string][]byte{"ca.pem": caCert, "ca-key.pem": caKey} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	proxies := []*soakProxy{
		newSoakProxy(t, bin, dir, "A", "file", originCA),
		newSoakProxy(t, bin, dir, "B", rds.URL(0), originCA),
	}
	for _, p := range proxies {
		p.start(t)
		p.makeAnchor(t, origin.URL)
		if !p.hasAnchor(t) {
			t.Fatalf("proxy %s: no anchor session right after making it", p.name)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), *soakFor)
	defer cancel()
	var st soakStats
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() { soakWorker(ctx, w, proxies, origin.URL, tlsOrigin.URL, caCert, &st) })
	}

	// The schedule runs on the test's goroutine: it may fail the test.
	killA, killB, killRedis := time.NewTicker(45*time.Second), time.NewTicker(70*time.Second), time.NewTicker(60*time.Second)
	sample := time.NewTicker(10 * time.Second)
	defer func() { killA.Stop(); killB.Stop(); killRedis.Stop(); sample.Stop() }()
	var samples []string
	torn := 0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-killA.C:
			torn += proxies[0].killAndRestart(t)
		case <-killB.C:
			torn += proxies[1].killAndRestart(t)
		case <-killRedis.C:
			proxies[1].redisRestarts++
			proxies[1].down(func() {
				syscall.Kill(rds.Pid(), syscall.SIGKILL)
				rds.Stop()
				rds.Start(t)
			})
		case <-sample.C:
			for _, p := range proxies {
				samples = append(samples, p.sample(time.Since(st.start())))
			}
		}
	}
	wg.Wait()
	for _, p := range proxies {
		samples = append(samples, p.sample(time.Since(st.start())))
	}

	lostAnchors := 0
	for _, p := range proxies {
		if !p.hasAnchor(t) {
			lostAnchors++
			t.Errorf("proxy %s lost its anchor session (or its cookie) across the restarts", p.name)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	t.Logf("soak %v: %d requests, %d answered by the origin or the rules, restarts: A %d, B %d, Redis %d",
		*soakFor, st.total, st.ok, proxies[0].restarts, proxies[1].restarts, proxies[1].redisRestarts)
	t.Logf("errors during restarts: %v", st.during)
	t.Logf("errors outside restarts: %v", st.outside)
	t.Logf("lost responses outside restarts: %d; torn state: %d; lost state: %d", st.lost, torn, lostAnchors)
	t.Logf("proxy  t      RSS      goroutines  fds\n%s", strings.Join(samples, "\n"))
	if st.lost != 0 {
		t.Errorf("%d responses lost outside restarts", st.lost)
	}
	if torn != 0 {
		t.Errorf("%d restarts found torn state", torn)
	}
	if st.ok == 0 {
		t.Error("no request succeeded")
	}
}

// soakOrigins serves pages over HTTP and HTTPS: each sets a cookie; about
// one in twenty pages asked for by a pinned session is a 403 (the rules
// retire the session, which comes back afresh under its name: the churn);
// bodies of 1 to 16 KiB. Unpinned pages are never blocked, so the pool's
// sessions, the anchor among them, stay usable.
func soakOrigins(t *testing.T) (plain, tlsSrv *httptest.Server) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/anchor" {
			http.SetCookie(w, &http.Cookie{Name: "anchor", Value: "kept", Path: "/"})
			fmt.Fprintln(w, "anchored")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "visit", Value: strconv.Itoa(rand.IntN(1000)), Path: "/"})
		if strings.HasPrefix(r.URL.Path, "/pinned/") && rand.IntN(20) == 0 {
			w.WriteHeader(http.StatusForbidden)
		}
		w.Write([]byte(strings.Repeat("x", 1024*(1+rand.IntN(16)))))
	})
	plain, tlsSrv = httptest.NewServer(h), httptest.NewTLSServer(h)
	t.Cleanup(plain.Close)
	t.Cleanup(tlsSrv.Close)
	return plain, tlsSrv
}

// soakStats counts the soak's outcomes. Safe for concurrent use.
type soakStats struct {
	began   atomic.Int64 // unix nanoseconds of the first request
	mu      sync.Mutex
	total   int
	ok      int
	lost    int            // EOF before any response byte, outside restarts
	during  map[string]int // errors by kind while the proxy or Redis restarted
	outside map[string]int // errors by kind otherwise
}

func (st *soakStats) start() time.Time {
	st.began.CompareAndSwap(0, time.Now().UnixNano())
	return time.Unix(0, st.began.Load())
}

func (st *soakStats) record(kind string, inRestart bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.total++
	switch {
	case kind == "":
		st.ok++
	case inRestart:
		if st.during == nil {
			st.during = map[string]int{}
		}
		st.during[kind]++
	default:
		if st.outside == nil {
			st.outside = map[string]int{}
		}
		st.outside[kind]++
		if kind == "eof" {
			st.lost++
		}
	}
}

// soakWorker sends requests until ctx ends: through A or B, plain or
// intercepted, pinned to one of 30 names or not.
func soakWorker(ctx context.Context, w int, proxies []*soakProxy, plain, secure string, caPEM []byte, st *soakStats) {
	st.start()
	clients := make([]*http.Client, len(proxies))
	for i, p := range proxies {
		pu, _ := url.Parse("http://" + p.addr)
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		clients[i] = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 4,
		}}
	}
	for n := 0; ctx.Err() == nil; n++ {
		i := rand.IntN(len(proxies))
		base := plain
		if n%2 == 1 {
			base = secure
		}
		pinned := rand.IntN(2) == 0
		path := "/p/"
		if pinned {
			path = "/pinned/"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s%s%d/%d", base, path, w, n), nil)
		if pinned {
			req.Header.Set("X-Session-Id", "soak-"+strconv.Itoa(rand.IntN(30)))
		}
		sent := time.Now()
		resp, err := clients[i].Do(req)
		kind := ""
		switch {
		case ctx.Err() != nil:
			return // the soak ended under this request
		case err != nil:
			kind = errorKind(err)
		default:
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case err != nil:
				kind = "body cut"
			case resp.StatusCode >= 500:
				kind = strconv.Itoa(resp.StatusCode)
			}
		}
		st.record(kind, proxies[i].wasDown(sent, time.Now()))
	}
}

func errorKind(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return "refused"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(msg, "EOF"):
		return "eof"
	case strings.Contains(msg, "connection reset"):
		return "reset"
	case strings.Contains(msg, "Timeout") || strings.Contains(msg, "timeout"):
		return "timeout"
	}
	return "other"
}

// soakProxy is one sessionproxy process of the soak.
type soakProxy struct {
	name, bin, cfgPath, addr, admin, pprof string

	cmd           *exec.Cmd
	restarts      int
	redisRestarts int

	mu      sync.Mutex
	windows [][2]time.Time // when it (or its Redis) was down, with a second's margin
}

func newSoakProxy(t *testing.T, bin, dir, name, store, originCA string) *soakProxy {
	p := &soakProxy{name: name, bin: bin,
		addr: freeAddr(t), admin: freeAddr(t), pprof: freeAddr(t)}
	data := filepath.Join(dir, "data-"+name)
	cfg := fmt.Sprintf(`listen: %s
admin_listen: %s
data_dir: %s
log_format: json
log_level: warn
mitm:
  ca_cert: %s
  ca_key: %s
  upstream_ca: [%s]
pool:
  store: %s
  max_pool_size: 200
  persist_interval: 1s
  session:
    max_usage_count: 1000000000 # the anchor must not wear out under the unpinned traffic
`, p.addr, p.admin, data, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), originCA, store)
	p.cfgPath = filepath.Join(dir, "config-"+name+".yaml")
	if err := os.WriteFile(p.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			p.cmd.Process.Signal(os.Interrupt)
			p.cmd.Wait()
		}
	})
	return p
}

// start starts the proxy and waits until its admin API answers; false when
// it does not within 30 s (it could not open its state).
func (p *soakProxy) start(t *testing.T) bool {
	p.cmd = exec.Command(p.bin, "-config", p.cfgPath, "-pprof", p.pprof)
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, bufio.NewReader(stderr))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + p.admin + "/healthz"); err == nil {
			resp.Body.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond) // polling a child process's port: nothing to wait on
	}
	return false
}

// killAndRestart kills the proxy with SIGKILL and starts it again; it
// returns 1 when it does not come back (torn state).
func (p *soakProxy) killAndRestart(t *testing.T) int {
	torn := 0
	p.down(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.restarts++
		if !p.start(t) {
			t.Errorf("proxy %s did not start again after SIGKILL: its state is torn", p.name)
			torn = 1
		}
	})
	return torn
}

// down runs f, which takes the proxy or its Redis down and up again, and
// notes the window (with a second on each side) in which failures are the
// restart's.
func (p *soakProxy) down(f func()) {
	p.mu.Lock()
	p.windows = append(p.windows, [2]time.Time{time.Now().Add(-time.Second), time.Now().Add(time.Hour)}) // open until f returns
	i := len(p.windows) - 1
	p.mu.Unlock()
	f()
	p.mu.Lock()
	p.windows[i][1] = time.Now().Add(time.Second)
	p.mu.Unlock()
}

// wasDown reports whether [from, to] meets a window in which it was down.
func (p *soakProxy) wasDown(from, to time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.windows {
		if !to.Before(w[0]) && !from.After(w[1]) {
			return true
		}
	}
	return false
}

// makeAnchor creates the session "anchor" with a cookie and persists it.
func (p *soakProxy) makeAnchor(t *testing.T, origin string) {
	pu, _ := url.Parse("http://" + p.addr)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	req, _ := http.NewRequest(http.MethodGet, origin+"/anchor", nil)
	req.Header.Set("X-Session-Id", "anchor")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r, err := http.Post("http://"+p.admin+"/persist", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
}

// hasAnchor reports whether the proxy still holds the anchor session with
// its cookie.
func (p *soakProxy) hasAnchor(t *testing.T) bool {
	resp, err := http.Get("http://" + p.admin + "/sessions/anchor")
	if err != nil {
		t.Errorf("proxy %s: %v", p.name, err)
		return false
	}
	defer resp.Body.Close()
	var st struct {
		Cookies []struct{ Name, Value string }
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Logf("proxy %s: GET /sessions/anchor: %d %s", p.name, resp.StatusCode, body)
		return false
	}
	for _, c := range st.Cookies {
		if c.Name == "anchor" && c.Value == "kept" {
			return true
		}
	}
	return false
}

// sample is one line of the resources table: RSS, goroutines and open
// fds of the proxy process at elapsed.
func (p *soakProxy) sample(elapsed time.Duration) string {
	pid := p.cmd.Process.Pid
	rss := "?"
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				rss = strings.TrimSpace(v)
			}
		}
	}
	fds := "?"
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		fds = strconv.Itoa(len(ents))
	}
	goroutines := "?"
	if resp, err := http.Get("http://" + p.pprof + "/debug/pprof/goroutine?debug=1"); err == nil {
		first, _ := bufio.NewReader(resp.Body).ReadString('\n')
		resp.Body.Close()
		if _, n, ok := strings.Cut(strings.TrimSpace(first), "total "); ok {
			goroutines = n
		}
	}
	return fmt.Sprintf("%-6s %-6s %-8s %-11s %s", p.name, elapsed.Round(time.Second), rss, goroutines, fds)
}

// freeAddr returns a loopback address with a port the kernel gave out
// (from :0) and that is free again.
func freeAddr(t *testing.T) string {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
