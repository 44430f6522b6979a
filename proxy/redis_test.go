package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// redisConfig is testConfig with the pool on the Redis server at rawURL.
func redisConfig(t *testing.T, rawURL string) *config.Config {
	cfg := testConfig(t)
	cfg.Pool.Store = config.Store(rawURL)
	return cfg
}

// TestRedisTwoInstances: two proxies on one Redis are one pool. A session
// pinned on one continues on the other with its cookies and its upstream
// (the first one's, which the second does not even know), and its uses add
// up.
func TestRedisTwoInstances(t *testing.T) {
	rs := sessionpooltest.Start(t)
	origin := httptest.NewServer(originMux())
	t.Cleanup(origin.Close)
	upA, countA := startGoproxyUpstream(t, "alice", "upstream-secret")
	upB, countB := startGoproxyUpstream(t, "", "")

	cfgA := redisConfig(t, rs.URL(0))
	cfgA.Upstreams = []*url.URL{mustURL(t, upA)}
	cfgB := redisConfig(t, rs.URL(0))
	cfgB.Upstreams = []*url.URL{mustURL(t, upB)}
	a, b := startProxy(t, cfgA), startProxy(t, cfgB)

	resp, _ := get(t, a.client("", ""), origin.URL+"/set?name=uid&value=7", "shopper")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Session-Id") != "shopper" {
		t.Fatalf("through A: %s, session %q", resp.Status, resp.Header.Get("X-Session-Id"))
	}
	resp, body := get(t, b.client("", ""), origin.URL+"/echo", "shopper")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("through B: %s %s", resp.Status, body)
	}
	if seen := decodeSeen(t, body); seen.Cookie != "uid=7" {
		t.Errorf("B sent cookie %q for the session A created, want uid=7", seen.Cookie)
	}
	if countA() != 2 || countB() != 0 {
		t.Errorf("upstream A saw %d requests, B %d; want 2 and 0 (the session keeps A's upstream)", countA(), countB())
	}
	for name, h := range map[string]*harness{"A": a, "B": b} {
		sess, err := h.pool().GetSessionByID(t.Context(), "shopper")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sess.UsageCount() != 2 || sess.ProxyURL() != upA {
			t.Errorf("%s sees uses %d, upstream %q; want 2 and A's", name, sess.UsageCount(), upstream.Redact(sess.ProxyURL()))
		}
	}
}

// TestRedisPoolLimitAcrossInstances: under concurrent load from two
// proxies, with sessions wearing out and being replaced all the time, the
// shared pool never holds more than max_pool_size sessions.
func TestRedisPoolLimitAcrossInstances(t *testing.T) {
	rs := sessionpooltest.Start(t)
	origin := httptest.NewServer(originMux())
	t.Cleanup(origin.Close)
	var hs []*harness
	for range 2 {
		cfg := redisConfig(t, rs.URL(0))
		cfg.Pool.MaxPoolSize = 4
		cfg.Pool.Session.MaxUsageCount = 3
		hs = append(hs, startProxy(t, cfg))
	}
	rc := newRedisClient(t, rs)
	heldKey := "sp:{" + hs[0].cfg.Pool.PersistStateKey + "@" + originSite + "}:held"

	stop := make(chan struct{})
	var maxHeld atomic.Int64
	sampled := make(chan error, 1)
	go func() {
		var err error
		defer func() { sampled <- err }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, e := rc.scard(heldKey)
			if e != nil {
				err = e
				return
			}
			if n > maxHeld.Load() {
				maxHeld.Store(n)
			}
		}
	}()

	var wg sync.WaitGroup
	ids := make(chan string, 400)
	for _, h := range hs {
		c := h.client("", "")
		for range 8 {
			wg.Go(func() {
				for range 25 {
					resp, err := c.Get(origin.URL + "/status?code=200")
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("status %s", resp.Status)
						return
					}
					select {
					case ids <- resp.Header.Get("X-Session-Id"):
					default:
					}
				}
			})
		}
	}
	wg.Wait()
	close(stop)
	if err := <-sampled; err != nil {
		t.Fatal(err)
	}
	close(ids)
	distinct := map[string]bool{}
	for id := range ids {
		distinct[id] = true
	}
	if len(distinct) < 10 {
		t.Errorf("only %d sessions served 400 requests with 3 uses each: sessions were not replaced", len(distinct))
	}
	end, err := rc.scard(heldKey)
	if err != nil {
		t.Fatal(err)
	}
	if maxHeld.Load() > 4 || end > 4 || maxHeld.Load() == 0 {
		t.Errorf("the shared pool held at most %d sessions (%d at the end), want 1..4", maxHeld.Load(), end)
	}
}

// TestRedisDownAndBack: with Redis gone, requests get 503 naming the store
// (never its password) rather than a local session that would split
// identities; when it is back the same proxy carries on by itself, with the
// sessions Redis kept across its restart.
func TestRedisDownAndBack(t *testing.T) {
	rs := sessionpooltest.Start(t, "--requirepass", "redis-secret")
	origin := httptest.NewServer(originMux())
	t.Cleanup(origin.Close)
	h := startProxy(t, redisConfig(t, "redis://:redis-secret@"+rs.Addr+"/0"))
	c := h.client("", "")
	if resp, _ := get(t, c, origin.URL+"/set?name=uid&value=7", "keeper"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %s", resp.Status)
	}

	rs.Stop()
	for _, session := range []string{"", "keeper", "new"} {
		resp, body := get(t, c, origin.URL+"/echo", session)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("session %q with Redis down: %s %q, want 503", session, resp.Status, body)
		}
		if !strings.Contains(body, rs.Addr) || strings.Contains(body, "redis-secret") ||
			strings.Count(strings.TrimSpace(body), "\n") != 0 {
			t.Errorf("503 body %q: want one line naming %s without the password", body, rs.Addr)
		}
	}

	rs.Start(t)
	resp, body := get(t, c, origin.URL+"/echo", "keeper")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after Redis came back: %s %q", resp.Status, body)
	}
	if seen := decodeSeen(t, body); seen.Cookie != "uid=7" {
		t.Errorf("after the restart the session sent %q, want uid=7", seen.Cookie)
	}
	if resp, _ := get(t, c, origin.URL+"/echo", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("pool request after Redis came back: %s", resp.Status)
	}
}

// TestRedisRoundTrips: a proxied request costs at most two Redis round
// trips (one to get its session, one to store its cookies and mark), for a
// pool pick, a pinned session and an intercepted tunnel's session, counted
// by the server itself (MONITOR: INFO commandstats would also count the
// commands the scripts run).
func TestRedisRoundTrips(t *testing.T) {
	rs := sessionpooltest.Start(t)
	origin := httptest.NewServer(originMux())
	t.Cleanup(origin.Close)
	tlsOrigin, _ := startTLSOrigin(t, originMux())
	cfg := redisConfig(t, rs.URL(0))
	trustOrigin(t, cfg, tlsOrigin)
	h := startProxy(t, cfg)
	mon := newMonitor(t, rs, newRedisClient(t, rs))
	c := h.client("", "")

	const n = 20
	for _, tc := range []struct {
		name, url, session string
	}{
		{"pool pick", origin.URL + "/set?name=a&value=1", ""},
		{"pinned session", origin.URL + "/set?name=b&value=2", "pinned"},
		{"intercepted tunnel", tlsOrigin.URL + "/set?name=c&value=3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			get(t, c, tc.url, tc.session) // warm up: connections, script cache
			mon.count(t)
			for range n {
				if resp, _ := get(t, c, tc.url, tc.session); resp.StatusCode != http.StatusOK {
					t.Fatalf("status %s", resp.Status)
				}
			}
			calls := mon.count(t)
			t.Logf("%d requests: %d Redis commands", n, calls)
			if calls > 2*n {
				t.Errorf("%d requests cost %d Redis commands, want at most %d", n, calls, 2*n)
			}
			if calls < n {
				t.Errorf("%d requests cost only %d Redis commands: the count is not measuring the pool", n, calls)
			}
		})
	}
}

// redisClient is a bare RESP client for the tests' own look at the server,
// so that what they count is only the proxy's traffic.
type redisClient struct {
	mu sync.Mutex
	c  net.Conn
	r  *bufio.Reader
}

func newRedisClient(t *testing.T, rs *sessionpooltest.Server) *redisClient {
	t.Helper()
	c, err := net.Dial("tcp", rs.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &redisClient{c: c, r: bufio.NewReader(c)}
}

// do sends one command and returns its reply: an integer, or a bulk
// string's text.
func (rc *redisClient) do(args ...string) (string, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(rc.c, b.String()); err != nil {
		return "", err
	}
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch line[0] {
	case ':', '+':
		return line[1:], nil
	case '$':
		n, _ := strconv.Atoi(line[1:])
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("redis reply %q", line)
}

func (rc *redisClient) scard(key string) (int64, error) {
	s, err := rc.do("SCARD", key)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// monitor watches every command the server runs (MONITOR) and counts the
// ones clients sent, not those the scripts ran inside (logged as "lua").
type monitor struct {
	rc   *redisClient
	r    *bufio.Reader
	seen int
}

// newMonitor opens a MONITOR connection; rc marks where a count ends.
func newMonitor(t *testing.T, rs *sessionpooltest.Server, rc *redisClient) *monitor {
	t.Helper()
	m := newRedisClient(t, rs)
	if _, err := io.WriteString(m.c, "*1\r\n$7\r\nMONITOR\r\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := m.r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("MONITOR: %q %v", line, err)
	}
	return &monitor{rc: rc, r: m.r}
}

// count returns the client commands run since the last count, but PINGs
// (go-redis's health checks on its pub/sub connection). It sends a marker
// through rc and reads up to it: the server logs commands in the order it
// runs them, so everything before the marker has been read then.
func (m *monitor) count(t *testing.T) int {
	t.Helper()
	marker := "roundtrip-marker-" + strconv.Itoa(m.seen)
	m.seen++
	if _, err := m.rc.do("ECHO", marker); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(line, marker):
			return n
		case strings.Contains(line, " lua] "), strings.Contains(line, `] "ping"`), strings.Contains(line, `] "echo"`):
		default:
			n++
		}
	}
}

// TestRedisStoreWithOptionsStore: a Store given to Open cannot also be a
// Redis pool: refused at start, without the password.
func TestRedisStoreWithOptionsStore(t *testing.T) {
	cfg := redisConfig(t, "redis://user:redis-secret@127.0.0.1:6379/0")
	_, err := Open(t.Context(), Options{Config: cfg, Store: sessionpool.NewMemoryStore()})
	if !errors.Is(err, ErrUnsupportedStore) || strings.Contains(err.Error(), "redis-secret") {
		t.Errorf("Open: %v, want ErrUnsupportedStore without the password", err)
	}
}

// TestRedisAdminAcrossInstances: the admin API of every instance works on
// the shared pool: a session added with cookies on one is listed, exported,
// marked and retired on the other, and a request through the first then
// gets a fresh session under the retired one's name.
func TestRedisAdminAcrossInstances(t *testing.T) {
	rs := sessionpooltest.Start(t)
	origin := httptest.NewServer(originMux())
	t.Cleanup(origin.Close)
	a, b := startProxy(t, redisConfig(t, rs.URL(0))), startProxy(t, redisConfig(t, rs.URL(0)))
	host := mustURL(t, origin.URL).Hostname()
	a.addSession(`{"id": "imported", "cookies": [{"name": "sid", "value": "42", "domain": "` + host + `", "path": "/", "hostOnly": true}]}`)

	var listed sessionpool.PoolState
	b.admin(http.MethodGet, "/sessions?state=usable", "", "").decode(t, &listed)
	if len(listed.Sessions) != 1 || listed.Sessions[0].ID != "imported" || len(listed.Sessions[0].Cookies) != 1 {
		t.Fatalf("B lists %+v, want the session A added, with its cookie", listed.Sessions)
	}
	if r := b.admin(http.MethodGet, "/sessions/imported/cookies?format=netscape", "", ""); r.status != http.StatusOK ||
		!strings.Contains(string(r.body), "sid\t42") {
		t.Errorf("B exports %d %q", r.status, r.body)
	}
	if r := b.admin(http.MethodPost, "/sessions/imported/bad", "", ""); r.status != http.StatusOK {
		t.Fatalf("B marks it bad: %d %s", r.status, r.body)
	}
	var st sessionpool.SessionState
	a.admin(http.MethodGet, "/sessions/imported", "", "").decode(t, &st)
	if st.ErrorScore != 1 || st.UsageCount != 1 {
		t.Errorf("A sees error score %v, uses %d after B's mark; want 1 and 1", st.ErrorScore, st.UsageCount)
	}
	if r := b.admin(http.MethodDelete, "/sessions/imported", "", ""); r.status != http.StatusOK {
		t.Fatalf("B retires it: %d %s", r.status, r.body)
	}
	_, body := get(t, a.client("", ""), origin.URL+"/echo", "imported")
	if seen := decodeSeen(t, body); seen.Cookie != "" {
		t.Errorf("a request naming the retired session sent cookie %q: it should go out as a fresh session", seen.Cookie)
	}
}
