package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// arrivals is a test origin that notes when each session's requests
// arrive (by the proxy's X-Session-Id... which never leaves the proxy, so
// by the ?s= the test adds) and how many are in flight at most.
type arrivals struct {
	mu       sync.Mutex
	at       map[string][]time.Time
	inFlight atomic.Int32
	most     atomic.Int32
	hold     time.Duration // how long each request takes at the origin
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	for m := a.most.Load(); n > m && !a.most.CompareAndSwap(m, n); m = a.most.Load() {
	}
	a.mu.Lock()
	a.at[r.URL.Query().Get("s")] = append(a.at[r.URL.Query().Get("s")], time.Now())
	a.mu.Unlock()
	time.Sleep(a.hold) // the work of the request
	w.Write([]byte("ok\n"))
}

func (a *arrivals) times(s string) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.at[s]...)
}

func startArrivals(t *testing.T, hold time.Duration) (*arrivals, *httptest.Server) {
	a := &arrivals{at: map[string][]time.Time{}, hold: hold}
	origin := httptest.NewServer(a)
	t.Cleanup(origin.Close)
	return a, origin
}

// TestPacingDelay: sites.delay spaces one session's requests to a site
// (counted at the origin) and not another session's.
func TestPacingDelay(t *testing.T) {
	a, origin := startArrivals(t, 0)
	cfg := testConfig(t)
	cfg.Sites = []config.Site{{Host: "127.0.0.*", Delay: time.Second}}
	h := startProxy(t, cfg)
	c := h.client("", "")
	for _, s := range []string{"alice", "bob", "alice"} {
		if resp, _ := get(t, c, origin.URL+"/?s="+s, s); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", s, resp.StatusCode)
		}
	}
	alice, bob := a.times("alice"), a.times("bob")
	if len(alice) != 2 || len(bob) != 1 {
		t.Fatalf("origin saw alice %d, bob %d times", len(alice), len(bob))
	}
	// The delay runs from when the proxy sends a request; the first one
	// also opened the connection to the origin, so allow a little.
	if d := alice[1].Sub(alice[0]); d < 900*time.Millisecond {
		t.Errorf("alice's second request came %v after her first, want about 1s", d)
	}
	if d := bob[0].Sub(alice[0]); d >= time.Second {
		t.Errorf("bob's request waited for alice's delay: %v", d)
	}
}

// TestPacingConcurrency: sites.concurrency 2 never lets a third request
// in flight at the origin, and every request gets through.
func TestPacingConcurrency(t *testing.T) {
	a, origin := startArrivals(t, 100*time.Millisecond)
	cfg := testConfig(t)
	cfg.Sites = []config.Site{{Host: "127.0.0.1", Concurrency: 2}}
	h := startProxy(t, cfg)
	sixAtOnce(t, a, origin.URL, h)
	if most := a.most.Load(); most != 2 {
		t.Errorf("at most %d requests in flight at the origin, want 2", most)
	}
}

// sixAtOnce sends six requests at once to origin, through the proxies in
// turn, and checks that all of them got through.
func sixAtOnce(t *testing.T, a *arrivals, origin string, hs ...*harness) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range 6 {
		c := hs[i%len(hs)].client("", "")
		wg.Go(func() {
			if resp, _ := get(t, c, origin+"/?s=any", ""); resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if got := len(a.times("any")); got != 6 {
		t.Fatalf("origin saw %d requests, want 6", got)
	}
}

// TestPacingMaxWait: a wait longer than pacing.max_wait is answered at
// once with a 429 naming the wait, and the origin never sees the request.
func TestPacingMaxWait(t *testing.T) {
	a, origin := startArrivals(t, 0)
	cfg := testConfig(t)
	cfg.Sites = []config.Site{{Host: "127.0.0.1", Delay: time.Minute}}
	cfg.Pacing.MaxWait = 5 * time.Second
	h := startProxy(t, cfg)
	c := h.client("", "")
	get(t, c, origin.URL+"/?s=alice", "alice")
	start := time.Now()
	resp, body := get(t, c, origin.URL+"/?s=alice", "alice")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d (%q), want 429", resp.StatusCode, body)
	}
	if d := time.Since(start); d >= 5*time.Second {
		t.Errorf("refused after %v, want at once", d)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "60" {
		t.Errorf("Retry-After %q, want 60", ra)
	}
	if !strings.Contains(body, "127.0.0.1: a wait of 60s") || !strings.Contains(body, "pacing.max_wait 5s") {
		t.Errorf("body %q does not name the wait", body)
	}
	if got := resp.Header.Get("X-Session-Id"); got != "alice" {
		t.Errorf("X-Session-Id %q", got)
	}
	if n := len(a.times("alice")); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

// retryAfterOrigin answers its first request 429 with Retry-After: secs,
// the others 200, and notes when each came.
func retryAfterOrigin(t *testing.T, secs string) (*arrivals, *httptest.Server) {
	a := &arrivals{at: map[string][]time.Time{}}
	var n atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", secs)
			w.WriteHeader(http.StatusTooManyRequests)
		}
		a.ServeHTTP(w, r)
	}))
	t.Cleanup(origin.Close)
	return a, origin
}

// TestRetryAfterPausesPinned: a 429 with Retry-After: 2 pauses the pinned
// session on the site: its next request arrives at the origin no sooner
// than 2s later, and its error score is untouched.
func TestRetryAfterPausesPinned(t *testing.T) {
	a, origin := retryAfterOrigin(t, "2")
	h := startProxy(t, testConfig(t))
	c := h.client("", "")
	resp, _ := get(t, c, origin.URL+"/?s=alice", "alice")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Session-Rule") != "retry-after" {
		t.Fatalf("first: status %d, rule %q", resp.StatusCode, resp.Header.Get("X-Session-Rule"))
	}
	if resp, _ = get(t, c, origin.URL+"/?s=alice", "alice"); resp.StatusCode != http.StatusOK {
		t.Fatalf("second: status %d", resp.StatusCode)
	}
	at := a.times("alice")
	if len(at) != 2 {
		t.Fatalf("origin saw %d requests", len(at))
	}
	if d := at[1].Sub(at[0]); d < 2*time.Second {
		t.Errorf("the paused session's next request came %v later, want at least 2s", d)
	}
	sess, err := h.pool().GetSessionByID(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !sess.IsUsable() || sess.ErrorScore() != 0 {
		t.Errorf("alice usable %v, error score %v; want usable, 0", sess.IsUsable(), sess.ErrorScore())
	}
}

// TestRetryAfterNotInherited: a named session retired by a 429 with
// Retry-After is made afresh under its name by the next request, which goes
// out at once: the pause was the spent session's, not the name's.
func TestRetryAfterNotInherited(t *testing.T) {
	a, origin := retryAfterOrigin(t, "30")
	cfg := rulesConfig(t, rules.Spec{Name: "retire-429", Status: []string{"429"}, Action: rules.ActionRetire})
	cfg.Pacing.MaxWait = 5 * time.Second
	h := startProxy(t, cfg)
	c := h.client("", "")
	first, _ := get(t, c, origin.URL+"/?s=alice", "alice")
	if first.StatusCode != http.StatusTooManyRequests || first.Header.Get("X-Session-Rule") != "retire-429" {
		t.Fatalf("first: status %d rule %q", first.StatusCode, first.Header.Get("X-Session-Rule"))
	}
	resp, body := get(t, c, origin.URL+"/?s=alice", "alice")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the fresh alice: status %d (%q), want 200 at once", resp.StatusCode, body)
	}
	if n := len(a.times("alice")); n != 2 {
		t.Errorf("the origin saw %d requests, want 2", n)
	}
}

// TestRetryAfterUnpinnedMoves: an unpinned request answered 429 with
// Retry-After goes again on another session at once; the paused session is
// neither marked nor retired, and later unpinned requests do not wait for it.
func TestRetryAfterUnpinnedMoves(t *testing.T) {
	_, origin := retryAfterOrigin(t, "30")
	cfg := testConfig(t)
	cfg.Affinity = config.AffinityRequest
	cfg.Pool.MaxPoolSize = 2
	h := startProxy(t, cfg)
	c := h.client("", "")
	resp, _ := get(t, c, origin.URL+"/?s=any", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Session-Retries") != "1" {
		t.Fatalf("status %d, retries %q; want 200 after 1 retry", resp.StatusCode, resp.Header.Get("X-Session-Retries"))
	}
	paused := 0
	for _, sess := range h.pool().Sessions() {
		if !sess.IsUsable() || sess.ErrorScore() != 0 {
			t.Errorf("session %s usable %v, error score %v", sess.ID(), sess.IsUsable(), sess.ErrorScore())
		}
		if !h.srv.pacer.PausedUntil("127.0.0.1", paceKey(sess)).IsZero() {
			paused++
		}
	}
	if paused != 1 {
		t.Fatalf("%d sessions paused, want 1", paused)
	}
	start := time.Now()
	for range 6 { // two sessions: the pool offers the paused one too
		if resp, _ := get(t, c, origin.URL+"/?s=any", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("unpinned requests took %v: they waited for the paused session", d)
	}
}

// TestRetryAfterPauseKept: a Retry-After pause is kept with the session:
// after a restart (file store) and on another instance (Redis pool), the
// pinned session's next request still waits for its end.
func TestRetryAfterPauseKept(t *testing.T) {
	for _, store := range []string{"file", "redis"} {
		t.Run(store, func(t *testing.T) {
			a, origin := retryAfterOrigin(t, "2")
			cfg := testConfig(t)
			next := func() *harness { return startProxy(t, cfg) } // a restart on the same data_dir
			if store == "redis" {
				cfg = redisConfig(t, sessionpooltest.Start(t).URL(0))
				next = func() *harness { // another instance on the same Redis
					other := *cfg
					other.DataDir = t.TempDir()
					return startProxy(t, &other)
				}
			}
			h := startProxy(t, cfg)
			if resp, _ := get(t, h.client("", ""), origin.URL+"/?s=alice", "alice"); resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("first: status %d", resp.StatusCode)
			}
			if st := stateOf(t, h, "alice"); st.PausedUntil.IsZero() {
				t.Errorf("alice's state shows no pause: %+v", st)
			}
			if store == "file" {
				h.stop()
			}
			h2 := next()
			if resp, _ := get(t, h2.client("", ""), origin.URL+"/?s=alice", "alice"); resp.StatusCode != http.StatusOK {
				t.Fatalf("second: status %d", resp.StatusCode)
			}
			at := a.times("alice")
			if len(at) != 2 {
				t.Fatalf("origin saw %d requests", len(at))
			}
			if d := at[1].Sub(at[0]); d < 2*time.Second {
				t.Errorf("after a %s, the paused session's next request came %v later, want at least 2s", map[string]string{"file": "restart", "redis": "move to another instance"}[store], d)
			}
		})
	}
}

// TestPacingSharedOnRedis: two instances on one Redis pool share a site's
// concurrency cap and a session's delay.
func TestPacingSharedOnRedis(t *testing.T) {
	rs := sessionpooltest.Start(t)
	t.Run("concurrency", func(t *testing.T) {
		a, origin := startArrivals(t, 100*time.Millisecond)
		var hs []*harness
		for range 2 {
			cfg := redisConfig(t, rs.URL(0))
			cfg.Sites = []config.Site{{Host: "127.0.0.1", Concurrency: 2}}
			hs = append(hs, startProxy(t, cfg))
		}
		sixAtOnce(t, a, origin.URL, hs...)
		if most := a.most.Load(); most != 2 {
			t.Errorf("at most %d requests in flight at the origin from two instances, want 2", most)
		}
	})
	t.Run("delay", func(t *testing.T) {
		a, origin := startArrivals(t, 0)
		var hs []*harness
		for range 2 {
			cfg := redisConfig(t, rs.URL(0))
			cfg.Sites = []config.Site{{Host: "127.0.0.1", Delay: 500 * time.Millisecond}}
			hs = append(hs, startProxy(t, cfg))
		}
		for _, h := range hs {
			if resp, _ := get(t, h.client("", ""), origin.URL+"/?s=alice", "alice"); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		at := a.times("alice")
		if len(at) != 2 {
			t.Fatalf("origin saw %d requests", len(at))
		}
		// The delay is counted from when the proxy sends each request
		// (README); the origin sees them a dial later each, which may
		// differ by a few milliseconds: 10% of slack, as TestPacingDelay.
		if d := at[1].Sub(at[0]); d < 450*time.Millisecond {
			t.Errorf("alice's request through the second instance came %v after the first's, want about the delay 500ms (450ms at least)", d)
		}
	})
}

// TestPacingTunnelClientGone: a client inside an intercepted HTTP/1.1
// tunnel that resets its connection while its request waits for the
// site's only slot gives its place up, as a plain-HTTP client does: its
// request never reaches the origin. One that only ends its side (TLS
// close_notify, a half-close) keeps its place and gets its answer.
func TestPacingTunnelClientGone(t *testing.T) {
	for _, reset := range []bool{true, false} {
		name := map[bool]string{true: "reset", false: "half-close"}[reset]
		t.Run(name, func(t *testing.T) { tunnelClientGoneWhileWaiting(t, reset) })
	}
}

func tunnelClientGoneWhileWaiting(t *testing.T, reset bool) {
	var mu sync.Mutex
	seen := map[string]int{}
	holderIn, releaseHolder := make(chan struct{}), make(chan struct{})
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := r.URL.Query().Get("s")
		mu.Lock()
		seen[s]++
		mu.Unlock()
		if s == "holder" {
			close(holderIn)
			<-releaseHolder
		}
		w.Write([]byte("ok\n"))
	}))
	t.Cleanup(origin.Close)
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	cfg.Sites = []config.Site{{Host: "127.0.0.1", Concurrency: 1}}
	cfg.Pacing.MaxWait = 20 * time.Second
	h := startProxy(t, cfg)
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(releaseHolder) }) }) // before the proxy stops
	waits := make(chan context.Context, 8)
	h.srv.paceHook = func(ctx context.Context) { waits <- ctx }
	deadline := time.After(20 * time.Second)
	next := func(what string) context.Context {
		t.Helper()
		select {
		case ctx := <-waits:
			return ctx
		case <-deadline:
			t.Fatalf("%s: no request came to wait for its turn", what)
			return nil
		}
	}

	holderDone := make(chan struct{})
	go func() {
		defer close(holderDone)
		get(t, h.client("", ""), origin.URL+"/?s=holder", "holder")
	}()
	next("holder")
	select {
	case <-holderIn:
	case <-deadline:
		t.Fatal("the holder's request did not reach the origin")
	}

	target := strings.TrimPrefix(origin.URL, "https://")
	tc, br := dialTunnel(t, h, target)
	fmt.Fprintf(tc, "GET /?s=waiter HTTP/1.1\r\nHost: %s\r\nX-Session-Id: waiter\r\n\r\n", target)
	waiting := next("waiter")
	if reset {
		tc.NetConn().(*net.TCPConn).SetLinger(0) // Close sends a RST
		tc.NetConn().Close()
		select {
		case <-waiting.Done():
		case <-deadline:
			t.Fatal("the wait of a client that reset its tunnel did not end")
		}
	} else {
		if err := tc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		// Time for the proxy to read the close_notify (it reads it at
		// once): a request its own host answers, paced by nothing.
		get(t, h.client("", ""), "http://sessionproxy/ca.pem", "")
		if err := waiting.Err(); err != nil {
			t.Fatalf("the wait of a client that half-closed its tunnel ended: %v", err)
		}
	}

	release.Do(func() { close(releaseHolder) })
	<-holderDone
	if !reset {
		tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the half-closed client's answer: %v, %v", resp, err)
		}
	}
	if resp, _ := get(t, h.client("", ""), origin.URL+"/?s=probe", "probe"); resp.StatusCode != http.StatusOK {
		t.Fatalf("probe: status %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := map[bool]int{true: 0, false: 1}[reset]; seen["waiter"] != want {
		t.Errorf("the waiting request reached the origin %d time(s), want %d", seen["waiter"], want)
	}
}
