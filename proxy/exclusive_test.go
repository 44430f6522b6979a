package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// holdOrigin answers /hold once gate is closed, counting the requests in
// flight (and the most at once); entered gets one value per arrival.
type holdOrigin struct {
	gate     chan struct{}
	entered  chan struct{}
	inflight atomic.Int32
	most     atomic.Int32
}

func newHoldOrigin(t *testing.T) (*holdOrigin, *httptest.Server) {
	o := &holdOrigin{gate: make(chan struct{}), entered: make(chan struct{}, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := o.inflight.Add(1)
		for m := o.most.Load(); n > m && !o.most.CompareAndSwap(m, n); m = o.most.Load() {
		}
		o.entered <- struct{}{}
		select {
		case <-o.gate:
		case <-r.Context().Done():
		}
		o.inflight.Add(-1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return o, srv
}

// waitEntered waits for n arrivals at the origin.
func (o *holdOrigin) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-o.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("a request did not reach the origin")
		}
	}
}

// TestExclusiveUnpinned: with pool.exclusive, six concurrent unpinned
// requests go out as six sessions, even where the strategy would give them
// all one (use-until-failure). The first goes alone until it reaches the
// origin: use-until-failure has a session to keep using only once one
// exists, and callers that all find the pool empty at once each create one.
func TestExclusiveUnpinned(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		o, origin := newHoldOrigin(t)
		cfg := testConfig(t)
		cfg.Pool.Exclusive = exclusive
		cfg.Pool.Strategy = sessionpool.UseUntilFailure
		h := startProxy(t, cfg)
		c := h.client("", "")
		ids := make(chan string, 6)
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				resp, _ := get(t, c, origin.URL+"/hold", "")
				ids <- resp.Header.Get("X-Session-Id")
			})
			if i == 0 {
				o.waitEntered(t, 1) // its session exists and is in use
			}
		}
		o.waitEntered(t, 5)
		close(o.gate)
		wg.Wait()
		close(ids)
		seen := map[string]bool{}
		for id := range ids {
			seen[id] = true
		}
		if want := map[bool]int{false: 1, true: 6}[exclusive]; len(seen) != want {
			t.Errorf("exclusive %v: six concurrent requests went out as %d sessions, want %d", exclusive, len(seen), want)
		}
	}
}

// TestExclusivePinned: with pool.exclusive, a pinned request to a busy
// session waits behind the request in flight, and one that would wait
// longer than pacing.max_wait gets 429.
func TestExclusivePinned(t *testing.T) {
	o, origin := newHoldOrigin(t)
	cfg := testConfig(t)
	cfg.Pool.Exclusive = true
	cfg.Pacing.MaxWait = 200 * time.Millisecond
	h := startProxy(t, cfg)
	queued := queuedOf(h)
	c := h.client("", "")

	first := make(chan *http.Response, 1)
	go func() { resp, _ := get(t, c, origin.URL+"/hold", "alice"); first <- resp }()
	o.waitEntered(t, 1)
	// A second request as alice past max_wait: 429, and it never reached
	// the origin.
	resp, body := get(t, c, origin.URL+"/hold", "alice")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "max_wait") {
		t.Errorf("while alice is busy: %d %q, want 429 naming max_wait", resp.StatusCode, body)
	}
	<-queued
	// With a longer max_wait it waits for its turn.
	cfg2 := *h.srv.Config()
	cfg2.Pacing.MaxWait = time.Minute
	h.srv.cfg.Store(&cfg2)
	second := make(chan *http.Response, 1)
	go func() { resp, _ := get(t, c, origin.URL+"/hold", "alice"); second <- resp }()
	<-queued // waiting behind the first
	close(o.gate)
	if r := <-first; r.StatusCode != http.StatusOK {
		t.Fatalf("first: %d", r.StatusCode)
	}
	if r := <-second; r.StatusCode != http.StatusOK || r.Header.Get("X-Session-Id") != "alice" {
		t.Fatalf("second: %d as %q", r.StatusCode, r.Header.Get("X-Session-Id"))
	}
	if m := o.most.Load(); m != 1 {
		t.Errorf("the origin saw %d of alice's requests at once, want 1", m)
	}
}

// TestExclusiveWebSocketHoldsSession: with pool.exclusive a WebSocket
// keeps its session busy for its life, as any request does until its body
// is closed: a request naming the session while the WebSocket is open
// waits and, past pacing.max_wait, gets 429 without reaching the origin;
// once the WebSocket has ended the session serves again.
func TestExclusiveWebSocketHoldsSession(t *testing.T) {
	wsOpen := make(chan struct{})
	wsDone := make(chan struct{})
	var pagesDuringWS atomic.Int32
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			select {
			case <-wsOpen:
				select {
				case <-wsDone:
				default:
					pagesDuringWS.Add(1)
				}
			default:
			}
			io.WriteString(w, "page")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		close(wsOpen)
		brw.ReadString('\n') // open until the client's line
		close(wsDone)
	}))
	origin.StartTLS()
	defer origin.Close()
	cfg := testConfig(t)
	cfg.Pool.Exclusive = true
	cfg.Pacing.MaxWait = 300 * time.Millisecond
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)

	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	target := strings.TrimPrefix(origin.URL, "https://")
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(conn, &tls.Config{RootCAs: h.caPool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	tbr := bufio.NewReader(tc)
	fmt.Fprintf(tc, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Session-Id: wss\r\n\r\n", target)
	if resp, err = http.ReadResponse(tbr, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	select {
	case <-wsOpen:
	case <-time.After(10 * time.Second):
		t.Fatal("the WebSocket did not open at the origin")
	}

	c := h.client("", "")
	resp, body := get(t, c, origin.URL+"/page", "wss")
	if resp.StatusCode != http.StatusTooManyRequests || pagesDuringWS.Load() != 0 {
		t.Fatalf("while a WebSocket is open on session wss, a request as wss got %d %q (session %q) and the origin served %d page(s) to it: "+
			"the session served two requests at once; want 429 after pacing.max_wait",
			resp.StatusCode, strings.TrimSpace(body), resp.Header.Get("X-Session-Id"), pagesDuringWS.Load())
	}

	// The WebSocket ends: wss is free again.
	cfg2 := *h.srv.Config()
	cfg2.Pacing.MaxWait = time.Minute
	h.srv.cfg.Store(&cfg2)
	io.WriteString(tc, "bye\n")
	if resp, body = get(t, c, origin.URL+"/page", "wss"); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Session-Id") != "wss" {
		t.Fatalf("after the WebSocket ended, a request as wss got %d %q as %q, want 200 as wss", resp.StatusCode, strings.TrimSpace(body), resp.Header.Get("X-Session-Id"))
	}
}

// TestExclusiveWaiterGoneIsCanceled: a client that goes away while its
// request waits for a busy exclusive session is counted canceled, as one
// gone while waiting for its pacing turn is; not rejected with a 503 of
// the session store, a failure that did not happen.
func TestExclusiveWaiterGoneIsCanceled(t *testing.T) {
	o, origin := newHoldOrigin(t)
	cfg := testConfig(t)
	cfg.Pool.Exclusive = true
	cfg.Pacing.MaxWait = time.Minute
	h := startProxy(t, cfg)
	queued := queuedOf(h)

	first := make(chan *http.Response, 1)
	go func() { resp, _ := get(t, h.client("", ""), origin.URL+"/hold", "alice"); first <- resp }()
	o.waitEntered(t, 1)

	// The second client resets its connection while it waits (a FIN
	// alone does not cancel a plain-HTTP request: README).
	raw, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(raw, "GET %s/hold HTTP/1.1\r\nHost: %s\r\nX-Session-Id: alice\r\n\r\n", origin.URL, strings.TrimPrefix(origin.URL, "http://"))
	select {
	case <-queued: // waiting for alice
	case <-time.After(10 * time.Second):
		t.Fatal("the second request did not queue for alice")
	}
	raw.(*net.TCPConn).SetLinger(0)
	raw.Close()
	close(o.gate)
	if r := <-first; r.StatusCode != http.StatusOK {
		t.Fatalf("first: %d", r.StatusCode)
	}

	h.stop() // waits for both requests to end, and so to be counted
	got := h.srv.rec.Stats().ByOutcome
	if got["good"] != 1 || got["canceled"] != 1 || got["rejected"] != 0 {
		t.Errorf("a request answered and one whose client went away waiting for its busy exclusive session were counted %v, want good 1, canceled 1", got)
	}
}

// TestExclusiveWaiterAfterRetirement: a request waiting for its named
// session while another request of it is retired goes out on a fresh
// session of that name, not the retired one with its cookies.
func TestExclusiveWaiterAfterRetirement(t *testing.T) {
	var mu sync.Mutex
	var cookies []string
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/set":
			http.SetCookie(w, &http.Cookie{Name: "c", Value: "old", Path: "/"})
		case "/block":
			entered <- struct{}{}
			<-release
			w.WriteHeader(http.StatusForbidden) // the default rules retire on 403
		default:
			mu.Lock()
			cookies = append(cookies, r.Header.Get("Cookie"))
			mu.Unlock()
		}
	}))
	t.Cleanup(origin.Close)
	cfg := testConfig(t)
	cfg.Pool.Exclusive = true
	cfg.Retry.MaxAttempts = 0
	h := startProxy(t, cfg)
	queued := queuedOf(h)
	c := h.client("", "")
	get(t, c, origin.URL+"/set", "alice")

	blocked := make(chan *http.Response, 1)
	go func() { resp, _ := get(t, c, origin.URL+"/block", "alice"); blocked <- resp }()
	<-entered
	second := make(chan *http.Response, 1)
	go func() { resp, _ := get(t, c, origin.URL+"/page", "alice"); second <- resp }()
	<-queued // the second request waits for alice
	close(release)
	if r := <-blocked; r.StatusCode != http.StatusForbidden {
		t.Fatalf("the first request: %d, want the origin's 403", r.StatusCode)
	}
	if r := <-second; r.StatusCode != http.StatusOK {
		t.Fatalf("the second request: %d", r.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cookies) != 1 || cookies[0] != "" {
		t.Errorf("the request after alice's retirement went out with Cookie %q: as the retired alice, not a fresh one", cookies)
	}
	if _, err := h.pool().GetSessionByID(t.Context(), "alice"); err != nil {
		t.Errorf("no usable alice after her next request: %v", err)
	}
}

// queuedOf returns a channel that gets the session of each request of h
// that starts to wait for a session another request holds.
func queuedOf(h *harness) <-chan sessionRef {
	queued := make(chan sessionRef, 4)
	h.srv.busy.mu.Lock()
	h.srv.busy.queued = func(key sessionRef) { queued <- key }
	h.srv.busy.mu.Unlock()
	return queued
}

// TestBusySessionsOrder: a freed session goes to the requests waiting for
// it in arrival order; one that gives up leaves its place; a release with
// nobody waiting tells the site's waiters.
func TestBusySessionsOrder(t *testing.T) {
	var b busySessions
	k := sessionRef{site: "site", id: "k"}
	queued := make(chan struct{}, 4)
	b.queued = func(sessionRef) { queued <- struct{}{} }
	if !b.tryAcquire(k) || b.tryAcquire(k) {
		t.Fatal("tryAcquire: a free session must be taken once")
	}
	order := make(chan string, 3)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- b.acquire(ctx, k) }()
	<-queued
	for _, name := range []string{"second", "third"} {
		go func() {
			if err := b.acquire(context.Background(), k); err == nil {
				order <- name
			}
		}()
		<-queued
	}
	cancel()
	if err := <-gaveUp; err == nil {
		t.Fatal("a canceled wait took the session")
	}
	b.release(k)
	if got := <-order; got != "second" {
		t.Fatalf("first served: %s, want second (the one that gave up left its place)", got)
	}
	b.release(k)
	if got := <-order; got != "third" {
		t.Fatalf("then: %s, want third", got)
	}
	freed := b.freedAt("site")
	b.release(k)
	select {
	case <-freed:
	default:
		t.Fatal("a release with nobody waiting did not tell the site's waiters")
	}
	if !b.tryAcquire(k) {
		t.Fatal("the session is not free after its last release")
	}
}

// TestBusySessionsHandOverOnCancel: a waiter handed the session just as
// its request ends passes it on; with nobody else waiting for it, the
// requests waiting for any session of its site are told.
func TestBusySessionsHandOverOnCancel(t *testing.T) {
	key := sessionRef{site: "example.com", id: "alice", created: 1}
	for range 200 { // select picks the turn or the cancel at random: until the cancel
		var b busySessions
		if !b.tryAcquire(key) {
			t.Fatal("a free session was not taken")
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.queued = func(sessionRef) {
			b.release(key) // hands the session to the waiter...
			cancel()       // ...whose request ends at the same moment
		}
		freed := b.freedAt(key.site)
		err := b.acquire(ctx, key)
		cancel()
		if err == nil {
			continue // the waiter took its turn: not the case under test
		}
		if !b.tryAcquire(key) {
			t.Fatal("the session was left held")
		}
		select {
		case <-freed:
		default:
			t.Fatalf("the session of %q was handed back but its site's waiters were not told", key.site)
		}
		return
	}
	t.Fatal("in 200 tries the waiter never took the cancel") // 2^-200
}

// TestExclusiveRedis: on a Redis pool a session busy on one instance is
// busy on every instance: a pinned request for it through another
// instance waits, and past pacing.max_wait gets 429.
func TestExclusiveRedis(t *testing.T) {
	rs := sessionpooltest.Start(t)
	o, origin := newHoldOrigin(t)
	var hs []*harness
	for range 2 {
		cfg := redisConfig(t, rs.URL(0))
		cfg.Pool.Exclusive = true
		cfg.Pacing.MaxWait = 300 * time.Millisecond
		hs = append(hs, startProxy(t, cfg))
	}
	first := make(chan *http.Response, 1)
	go func() { resp, _ := get(t, hs[0].client("", ""), origin.URL+"/hold", "alice"); first <- resp }()
	o.waitEntered(t, 1)
	resp, body := get(t, hs[1].client("", ""), origin.URL+"/hold", "alice")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "max_wait") {
		t.Errorf("alice through the other instance while busy: %d %q, want 429 naming max_wait", resp.StatusCode, body)
	}
	close(o.gate)
	if r := <-first; r.StatusCode != http.StatusOK {
		t.Fatalf("first: %d", r.StatusCode)
	}
	if resp, _ := get(t, hs[1].client("", ""), origin.URL+"/hold", "alice"); resp.StatusCode != http.StatusOK {
		t.Errorf("alice through the other instance once free: %d", resp.StatusCode)
	}
	if m := o.most.Load(); m != 1 {
		t.Errorf("the origin saw %d of alice's requests at once, want 1", m)
	}
}
