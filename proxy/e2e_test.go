package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// TestCookiesPerSession: each named session keeps its own cookies, over plain
// HTTP and through interception, and the origin never sees another
// session's cookies.
func TestCookiesPerSession(t *testing.T) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			cfg := testConfig(t)
			var origin *httptest.Server
			if scheme == "https" {
				origin = httptest.NewTLSServer(originMux())
				trustOrigin(t, cfg, origin)
			} else {
				origin = httptest.NewServer(originMux())
			}
			defer origin.Close()
			h := startProxy(t, cfg)
			c := h.client("", "")

			resp, _ := get(t, c, origin.URL+"/set?name=uid&value=alice", "alice")
			if got := resp.Header.Get("X-Session-Id"); got != "alice" {
				t.Fatalf("session header = %q, want alice", got)
			}
			if sc := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "uid=alice") {
				t.Errorf("Set-Cookie not passed on to the client: %q", sc)
			}
			get(t, c, origin.URL+"/set?name=uid&value=bob", "bob")

			for _, who := range []string{"alice", "bob"} {
				resp, body := get(t, c, origin.URL+"/echo", who)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d: %s", who, resp.StatusCode, body)
				}
				if got := decodeSeen(t, body).Cookie; got != "uid="+who {
					t.Errorf("%s: origin saw Cookie %q, want uid=%s", who, got, who)
				}
			}
			// A session that was never told a cookie sends none.
			_, body := get(t, c, origin.URL+"/echo", "carol")
			if got := decodeSeen(t, body).Cookie; got != "" {
				t.Errorf("carol: origin saw Cookie %q, want none", got)
			}
		})
	}
}

// TestCookieModes checks merge (client wins per name), session (replaces)
// and client (injects nothing).
func TestCookieModes(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	tests := []struct {
		mode         string
		clientCookie []string // the client's Cookie lines; nil: none
		want         string
	}{
		{"merge", nil, "a=session; b=session"},
		{"merge", []string{"a=client"}, "a=client; b=session"},
		{"merge", []string{""}, "a=session; b=session"},
		{"merge", []string{" "}, "a=session; b=session"},
		{"session", []string{"a=client; z=1"}, "a=session; b=session"},
		{"client", []string{"a=client"}, "a=client"},
		{"client", nil, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%q", tt.mode, tt.clientCookie), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Cookies = config.CookieMode(tt.mode)
			h := startProxy(t, cfg)
			c := h.client("", "")
			get(t, c, origin.URL+"/set?name=a&value=session", "s1")
			get(t, c, origin.URL+"/set?name=b&value=session", "s1")
			req, _ := http.NewRequest(http.MethodGet, origin.URL+"/echo", nil)
			req.Header.Set("X-Session-Id", "s1")
			if tt.clientCookie != nil {
				req.Header["Cookie"] = tt.clientCookie
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := decodeSeen(t, string(body)).Cookie; got != tt.want {
				t.Errorf("origin saw Cookie %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHeadersLeaveClean: the session header and the proxy's credentials never
// reach the origin; Accept-Encoding is the client's own.
func TestHeadersLeaveClean(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	cfg := testConfig(t)
	cfg.Auth.Users = map[string]string{"u": "secret-pw"}
	h := startProxy(t, cfg)
	c := h.client("u-session-s9", "secret-pw")
	req, _ := http.NewRequest(http.MethodGet, origin.URL+"/echo", nil)
	req.Header.Set("X-Session-Id", "s9")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	seen := decodeSeen(t, string(body))
	for _, name := range []string{"X-Session-Id", "Proxy-Authorization", "Proxy-Connection"} {
		if v := seen.Header.Get(name); v != "" {
			t.Errorf("origin saw %s: %q", name, v)
		}
	}
	if seen.AcceptEncoding != "gzip, deflate, br, zstd" {
		t.Errorf("origin saw Accept-Encoding %q, want the client's", seen.AcceptEncoding)
	}
	if got := resp.Header.Get("X-Session-Id"); got != "s9" {
		t.Errorf("session = %q, want s9", got)
	}
}

// TestConnectionOptionsDropped: the headers a request's Connection names
// are for the client's hop and do not reach the origin (RFC 9110 7.6.1),
// plain or inside an intercepted tunnel: an h2c upgrade's Upgrade and
// HTTP2-Settings among them. Other headers go on.
func TestConnectionOptionsDropped(t *testing.T) {
	origin, tlsOrigin, cfg := origins(t, originMux())
	h := startProxy(t, cfg)
	for _, base := range []string{origin.URL, tlsOrigin.URL} {
		req, _ := http.NewRequest(http.MethodGet, base+"/echo", nil)
		req.Header.Set("Connection", "X-Hop, Upgrade, HTTP2-Settings")
		req.Header.Set("X-Hop", "1")
		req.Header.Set("Upgrade", "h2c")
		req.Header.Set("Http2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
		req.Header.Set("X-Kept", "1")
		resp, err := h.client("", "").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen := decodeSeen(t, string(body)).Header
		for _, name := range []string{"X-Hop", "Upgrade", "Http2-Settings"} { // Connection is rebuilt: keep-alive
			if v := seen.Get(name); v != "" {
				t.Errorf("%s: the origin saw %s: %q", base, name, v)
			}
		}
		if seen.Get("X-Kept") != "1" {
			t.Errorf("%s: the origin lacks X-Kept: %v", base, seen)
		}
	}
}

// TestNewAndRecreatedSessions: "new" gives a fresh generated session each
// time; a named session that was retired comes back afresh under its name,
// without the old cookies.
func TestNewAndRecreatedSessions(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	c := h.client("", "")

	r1, _ := get(t, c, origin.URL+"/echo", "new")
	r2, _ := get(t, c, origin.URL+"/echo", "new")
	id1, id2 := r1.Header.Get("X-Session-Id"), r2.Header.Get("X-Session-Id")
	if id1 == "" || id1 == id2 || !strings.HasPrefix(id1, "session_") {
		t.Errorf("new sessions: %q and %q, want two distinct generated ids", id1, id2)
	}

	get(t, c, origin.URL+"/set?name=k&value=v", "dave")
	resp, _ := get(t, c, origin.URL+"/status?code=403", "dave")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("pinned blocked request: status %d, want the 403 itself", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Session-Retries"); got != "0" {
		t.Errorf("a pinned request was retried: X-Session-Retries %q", got)
	}
	if _, err := h.pool().GetSessionByID(context.Background(), "dave"); err == nil {
		t.Fatal("dave is still usable after a 403")
	}
	_, body := get(t, c, origin.URL+"/echo", "dave")
	if got := decodeSeen(t, body).Cookie; got != "" {
		t.Errorf("recreated dave sent the old session's cookies: %q", got)
	}
	if _, err := h.pool().GetSessionByID(context.Background(), "dave"); err != nil {
		t.Errorf("dave was not recreated: %v", err)
	}
}

// A name's next session is another session: it never gets the last one's
// connections, whether that one expired (which evicts it without a
// retirement) or retired. The origin tells connections apart by the
// client's address.
func TestRecreatedSessionGetsNewConnections(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // guarded by mu
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Pool.Session.MaxAge = time.Minute
	h := startProxyOn(t, Options{Config: cfg, Now: now}, ln)
	c := h.client("", "")

	seen := func(name string) (addr string, created time.Time) {
		t.Helper()
		_, body := get(t, c, origin.URL+"/echo", name)
		return decodeSeen(t, body).RemoteAddr, stateOf(t, h, name).CreatedAt
	}
	for _, tc := range []struct {
		name string
		end  func() // ends the name's session
	}{
		{"expired", func() { mu.Lock(); clock = clock.Add(2 * time.Minute); mu.Unlock() }},
		{"retired", func() {
			get(t, c, origin.URL+"/status?code=403", "retired")
			mu.Lock()
			clock = clock.Add(time.Second) // so that CreatedAt tells the two apart
			mu.Unlock()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr1, created1 := seen(tc.name)
			if again, _ := seen(tc.name); again != addr1 {
				t.Fatalf("one session used two connections in turn (%s, %s): the test cannot tell sessions apart", addr1, again)
			}
			tc.end()
			addr2, created2 := seen(tc.name)
			if created2.Equal(created1) {
				t.Fatalf("%s was not recreated (created %v both times)", tc.name, created1)
			}
			if addr2 == addr1 {
				t.Errorf("the recreated %s session went out on its predecessor's connection (%s)", tc.name, addr1)
			}
		})
	}
}

// TestBadSessionName: a session header that cannot be an id is refused.
func TestBadSessionName(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	resp, body := get(t, h.client("", ""), origin.URL+"/echo", "bad name/../x")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid session name") {
		t.Errorf("status %d body %q, want 400 naming the problem", resp.StatusCode, body)
	}
}

// TestStickyUpstreams: sessions get the upstreams in turn and keep theirs,
// for plain HTTP and for intercepted HTTPS.
func TestStickyUpstreams(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	tlsOrigin := httptest.NewTLSServer(originMux())
	defer tlsOrigin.Close()

	upA, countA := startGoproxyUpstream(t, "", "")
	upB, countB := startGoproxyUpstream(t, "", "")
	cfg := testConfig(t)
	trustOrigin(t, cfg, tlsOrigin)
	cfg.Upstreams = []*url.URL{mustURL(t, upA), mustURL(t, upB)}
	h := startProxy(t, cfg)
	c := h.client("", "")

	// s1 is created first and gets upstream A, s2 gets B.
	for i := 0; i < 3; i++ {
		get(t, c, origin.URL+"/echo", "s1")
		get(t, c, tlsOrigin.URL+"/echo", "s1")
	}
	a, b := countA(), countB()
	if a < 4 || b != 0 {
		t.Fatalf("after s1's requests: upstream A saw %d, B saw %d; want all on A", a, b)
	}
	for i := 0; i < 3; i++ {
		get(t, c, origin.URL+"/echo", "s2")
	}
	if countA() != a || countB() < 3 {
		t.Errorf("s2's requests: A %d -> %d, B %d; want them all on B", a, countA(), countB())
	}
	st := stateOf(t, h, "s1")
	if st.ProxyURL != upA {
		t.Errorf("s1's persisted upstream = %q, want %q", st.ProxyURL, upA)
	}
}

// TestUpstreamCredentialsAndSOCKS5: an upstream that wants credentials gets
// them from the URL; SOCKS5 upstreams work for HTTP and HTTPS.
func TestUpstreamCredentialsAndSOCKS5(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	tlsOrigin := httptest.NewTLSServer(originMux())
	defer tlsOrigin.Close()

	authUp, authCount := startGoproxyUpstream(t, "up", "up-secret")
	socksAddr, socksCount := startSOCKS5(t, "sock", "sock-secret")
	cfg := testConfig(t)
	trustOrigin(t, cfg, tlsOrigin)
	u := mustURL(t, authUp)
	u.User = url.UserPassword("up", "up-secret")
	cfg.Upstreams = []*url.URL{u, {Scheme: "socks5", User: url.UserPassword("sock", "sock-secret"), Host: socksAddr}}
	h := startProxy(t, cfg)
	c := h.client("", "")

	for _, sess := range []string{"via-http", "via-socks"} {
		for _, o := range []string{origin.URL, tlsOrigin.URL} {
			resp, body := get(t, c, o+"/echo", sess)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s to %s: status %d: %s", sess, o, resp.StatusCode, body)
			}
		}
	}
	if authCount() < 2 || socksCount() < 2 {
		t.Errorf("upstream use: http %d, socks5 %d; want each at least 2", authCount(), socksCount())
	}
	// The admin API shows the upstream without its password.
	st := stateOf(t, h, "via-http")
	if strings.Contains(st.ProxyURL, "up-secret") || !strings.Contains(st.ProxyURL, "up:") {
		t.Errorf("admin shows upstream %q, want the user with the password redacted", st.ProxyURL)
	}
}

// TestDeadUpstream: an unreachable upstream marks the session bad and gives
// the client a one-line 502 naming the hop and never its credentials, over
// plain HTTP and inside an intercepted tunnel.
func TestDeadUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()

	origin := httptest.NewServer(originMux())
	defer origin.Close()
	tlsOrigin := httptest.NewTLSServer(originMux())
	defer tlsOrigin.Close()
	cfg := testConfig(t)
	trustOrigin(t, cfg, tlsOrigin)
	cfg.Upstreams = []*url.URL{{Scheme: "http", User: url.UserPassword("user", "hunter2"), Host: deadAddr}}
	h := startProxy(t, cfg)
	c := h.client("", "")

	for i, o := range []string{origin.URL, tlsOrigin.URL} {
		resp, body := get(t, c, o+"/echo", "doomed")
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("%s: status %d, want 502", o, resp.StatusCode)
		}
		if strings.Count(strings.TrimSpace(body), "\n") != 0 || !strings.Contains(body, deadAddr) {
			t.Errorf("%s: body %q, want one line naming %s", o, body, deadAddr)
		}
		if strings.Contains(body, "hunter2") {
			t.Errorf("%s: the 502 leaks the upstream password: %q", o, body)
		}
		if got := stateOf(t, h, "doomed").ErrorScore; got != float64(i+1) {
			t.Errorf("%s: error score %v, want %d", o, got, i+1)
		}
	}
}

// TestDeadUpstreamWhateverDefaultAction: default_action speaks for
// responses no rule matched; an upstream failure no rule matched is bad
// whatever it says.
func TestDeadUpstreamWhateverDefaultAction(t *testing.T) {
	for _, def := range []rules.Action{rules.ActionGood, rules.ActionNone, rules.ActionRetire, rules.ActionBad} {
		t.Run(string(def), func(t *testing.T) {
			cfg := testConfig(t)
			rs, err := rules.Compile([]rules.Spec{{Name: "blocked", Status: []string{"403"}, Action: rules.ActionRetire}}, def)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Rules, cfg.DefaultAction = rs, def
			h := startProxy(t, cfg)
			resp, _ := get(t, h.client("", ""), "http://"+closedPort(t)+"/", "down")
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", resp.StatusCode)
			}
			if st := stateOf(t, h, "down"); st.ErrorScore != 1 || st.UsageCount != 1 {
				t.Errorf("after a refused connection: error score %v, uses %d; want 1 and 1 (bad)", st.ErrorScore, st.UsageCount)
			}
		})
	}
}

// TestFailureResponseIs502: whatever failed on the way (a refused
// connection, TLS, a timeout, a broken response), the client's answer is a
// 502 whose one line says what and where.
func TestFailureResponseIs502(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	for _, kind := range []upstream.ErrorKind{upstream.KindConnect, upstream.KindTLS, upstream.KindTimeout, upstream.KindProtocol} {
		uerr := &upstream.Error{Hop: "origin example.com:80", Kind: kind, Err: errors.New("it failed")}
		resp := (&Server{}).failureResponse(req, uerr)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), string(kind)) || !strings.Contains(string(b), uerr.Hop) {
			t.Errorf("%s: %d %q; want 502 naming the kind and the hop", kind, resp.StatusCode, b)
		}
	}
}

// TestClientAuth: with users, requests without or with wrong credentials get
// 407 with Proxy-Authenticate, CONNECT included; the username carries the
// session name. With challenge and no users, any credentials pass.
func TestClientAuth(t *testing.T) {
	origin, tlsOrigin, cfg := origins(t, originMux())
	cfg.Auth.Users = map[string]string{"alice": "pw"}
	h := startProxy(t, cfg)

	for _, cred := range [][2]string{{"", ""}, {"alice", "wrong"}, {"mallory", "pw"}} {
		resp, _ := get(t, h.client(cred[0], cred[1]), origin.URL+"/echo", "")
		if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") == "" {
			t.Errorf("creds %q: status %d, Proxy-Authenticate %q; want 407 with a challenge",
				cred, resp.StatusCode, resp.Header.Get("Proxy-Authenticate"))
		}
	}
	// CONNECT without credentials: the tunnel is refused with 407.
	_, err := h.client("", "").Get(tlsOrigin.URL + "/echo")
	if err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
		t.Errorf("CONNECT without credentials: err %v, want 407", err)
	}
	resp, _ := get(t, h.client("alice-session-work", "pw"), tlsOrigin.URL+"/echo", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Session-Id") != "work" {
		t.Errorf("alice-session-work: status %d session %q, want 200 on session work",
			resp.StatusCode, resp.Header.Get("X-Session-Id"))
	}

	cfg2 := testConfig(t)
	cfg2.Auth.Challenge = true
	h2 := startProxy(t, cfg2)
	if resp, _ := get(t, h2.client("", ""), origin.URL+"/echo", ""); resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("challenge without credentials: status %d, want 407", resp.StatusCode)
	}
	resp, _ = get(t, h2.client("session-b7", "anything"), origin.URL+"/echo", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Session-Id") != "b7" {
		t.Errorf("challenge with session-b7: status %d session %q", resp.StatusCode, resp.Header.Get("X-Session-Id"))
	}
}

// TestAffinity: tunnel keeps one session for a tunnel's requests, request
// picks anew each time, client keeps one per client address and User-Agent.
func TestAffinity(t *testing.T) {
	tlsOrigin := httptest.NewTLSServer(originMux())
	defer tlsOrigin.Close()
	sessionsSeen := func(affinity string, fresh func(h *harness) *http.Client) (perConn, total map[string]bool) {
		cfg := testConfig(t)
		trustOrigin(t, cfg, tlsOrigin)
		cfg.Affinity = config.Affinity(affinity)
		h := startProxy(t, cfg)
		total = map[string]bool{}
		perConn = map[string]bool{}
		c := fresh(h)
		for i := 0; i < 8; i++ {
			resp, _ := get(t, c, tlsOrigin.URL+"/echo", "")
			perConn[resp.Header.Get("X-Session-Id")] = true
			total[resp.Header.Get("X-Session-Id")] = true
		}
		// A second client connection (a new tunnel).
		c2 := fresh(h)
		resp, _ := get(t, c2, tlsOrigin.URL+"/echo", "")
		total[resp.Header.Get("X-Session-Id")] = true
		return perConn, total
	}
	oneClient := func(h *harness) *http.Client { return h.client("", "") }

	if per, total := sessionsSeen("tunnel", oneClient); len(per) != 1 || len(total) != 2 {
		t.Errorf("tunnel: %d sessions in one tunnel, %d over two tunnels; want 1 and 2", len(per), len(total))
	}
	if per, _ := sessionsSeen("request", oneClient); len(per) < 5 {
		t.Errorf("request: %d sessions over 8 requests, want a fresh pick each time (pool of 1000)", len(per))
	}
	if per, total := sessionsSeen("client", oneClient); len(per) != 1 || len(total) != 1 {
		t.Errorf("client: %d sessions on one connection, %d over two; want 1 and 1", len(per), len(total))
	}
}

// burstFor is how long the tests of a race at the first requests of a
// tunnel or client repeat their burst: each round is a fresh tunnel or
// client, and a few seconds see the race without the fix many times over.
const burstFor = 3 * time.Second

// TestClientAffinityConcurrentFirstRequests: with affinity client, a
// browser's first requests, sent at once on several connections, go out as
// one session: the first of them picks it and the others take its pick.
// Each round is a new client (a fresh User-Agent).
func TestClientAffinityConcurrentFirstRequests(t *testing.T) {
	const conns = 12
	cfg := testConfig(t)
	cfg.Affinity = config.AffinityClient
	h := startProxy(t, cfg)
	end := time.Now().Add(burstFor)
	for round := 0; time.Now().Before(end); round++ {
		ua := fmt.Sprintf("Browser/%d", round)
		if ids := firstRequests(t, h, conns, ua); len(distinct(ids)) != 1 {
			t.Fatalf("round %d: one client (127.0.0.1, %q) went out as %d sessions on its %d first concurrent requests: %q", round, ua, len(distinct(ids)), conns, ids)
		}
	}
}

// firstRequests opens n connections to the proxy, then sends a plain
// request with User-Agent ua on each at once to a fresh origin, and
// returns the X-Session-Id of each answer.
func firstRequests(t *testing.T, h *harness, n int, ua string) []string {
	t.Helper()
	origin := gatedOrigin(n)
	origin.Start()
	defer origin.Close()
	cs := make([]net.Conn, n)
	for i := range cs {
		c, err := net.Dial("tcp", h.proxyURL.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		cs[i] = c
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range cs {
		wg.Go(func() {
			<-start
			fmt.Fprintf(c, "GET %s/ HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n", origin.URL, strings.TrimPrefix(origin.URL, "http://"), ua)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Errorf("%s: %v", ua, err)
				return
			}
			resp.Body.Close()
			ids[i] = resp.Header.Get("X-Session-Id")
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return ids
}

// TestTunnelAffinityConcurrentFirstStreams: with affinity tunnel, the
// first requests of an HTTP/2 client in an intercepted tunnel, concurrent
// streams, go out as one session: the first of them picks it and the
// others take its pick. Each stream's request picks its session in a
// goroutine of its own; the picks here are made as those requests make
// them, started together, since streams arriving one frame after another
// over a connection meet in the race too seldom to test it.
func TestTunnelAffinityConcurrentFirstStreams(t *testing.T) {
	const streams = 16
	h := startProxy(t, testConfig(t))
	cfg := h.srv.Config()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	end := time.Now().Add(burstFor)
	for round := 0; time.Now().Before(end); round++ {
		tun := &tunnel{client: clientInfo{addr: "127.0.0.1"}, host: "example.com:443"}
		ids := make([]string, streams)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range streams {
			wg.Go(func() {
				req := httptest.NewRequestWithContext(ctx, http.MethodGet, "https://example.com/", nil)
				<-start
				sel, err := h.srv.pick(ctx, cfg, "", "example.com", req, tun, nil)
				if err != nil {
					t.Errorf("round %d: pick: %v", round, err)
					return
				}
				sel.done()
				ids[i] = sel.sess.ID()
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		if n := len(distinct(ids)); n != 1 {
			t.Fatalf("round %d: one tunnel went out as %d sessions on its %d first concurrent streams: %q", round, n, streams, ids)
		}
	}
}

// distinct returns the set of ss.
func distinct(ss []string) map[string]bool {
	seen := make(map[string]bool, len(ss))
	for _, s := range ss {
		seen[s] = true
	}
	return seen
}

// gatedOrigin answers each request once n have arrived, so that n
// concurrent requests are all in flight (their sessions chosen) before any
// is answered; one that waits 5 seconds is answered anyway. Its caller
// starts and closes it.
func gatedOrigin(n int) *httptest.Server {
	var mu sync.Mutex
	arrived := 0
	gate := make(chan struct{})
	return httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		if arrived == n {
			close(gate)
		}
		mu.Unlock()
		select {
		case <-gate:
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
		io.WriteString(w, "ok")
	}))
}

// TestSkipHostsTunnel: a skipped host is tunnelled without interception (the
// client sees the origin's own certificate) but still through the session's
// upstream.
func TestSkipHostsTunnel(t *testing.T) {
	tlsOrigin := httptest.NewTLSServer(originMux())
	defer tlsOrigin.Close()
	up, count := startGoproxyUpstream(t, "", "")
	for _, mode := range []string{"skip_hosts", "mitm-disabled"} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Upstreams = []*url.URL{mustURL(t, up)}
			if mode == "skip_hosts" {
				cfg.MITM.SkipHosts = []string{"127.0.0.*"}
			} else {
				cfg.MITM.Enabled = false
			}
			h := startProxy(t, cfg)
			before := count()
			c := &http.Client{Transport: &http.Transport{
				Proxy:              http.ProxyURL(h.proxyURL),
				TLSClientConfig:    &tls.Config{RootCAs: tlsOrigin.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs},
				ProxyConnectHeader: http.Header{"X-Session-Id": {"tun"}},
			}}
			resp, err := c.Get(tlsOrigin.URL + "/echo")
			if err != nil {
				t.Fatalf("GET through a plain tunnel: %v", err)
			}
			resp.Body.Close()
			if resp.TLS == nil || !resp.TLS.PeerCertificates[0].Equal(tlsOrigin.Certificate()) {
				t.Errorf("the client did not see the origin's own certificate: the tunnel was intercepted")
			}
			if count() != before+1 {
				t.Errorf("upstream saw %d new tunnels, want 1", count()-before)
			}
			if _, err := h.pool().GetSessionByID(context.Background(), "tun"); err != nil {
				t.Errorf("the CONNECT's session header was not honoured: %v", err)
			}
		})
	}
}

// TestPlainTunnelRetriesUpstreamFailure: a tunnel that is not intercepted
// and cannot reach its target through the session's upstream is retried on
// another session, before the client is answered, as any request (the
// default rules: an upstream failure is bad and retried); a tunnel pinned
// to a named session is not moved and gets the 502.
func TestPlainTunnelRetriesUpstreamFailure(t *testing.T) {
	tlsOrigin := httptest.NewTLSServer(originMux())
	defer tlsOrigin.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	live, count := startGoproxyUpstream(t, "", "")
	cfg := testConfig(t)
	cfg.MITM.Enabled = false
	cfg.Upstreams = []*url.URL{mustURL(t, "http://"+dead), mustURL(t, live)} // new sessions take them in turn
	h := startProxy(t, cfg)
	client := func(session string) *http.Client {
		tr := &http.Transport{
			Proxy:           http.ProxyURL(h.proxyURL),
			TLSClientConfig: &tls.Config{RootCAs: tlsOrigin.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs},
		}
		if session != "" {
			tr.ProxyConnectHeader = http.Header{"X-Session-Id": {session}}
		}
		return &http.Client{Transport: tr}
	}

	resp, err := client("").Get(tlsOrigin.URL + "/echo")
	if err != nil {
		t.Fatalf("unpinned tunnel whose first session's upstream is down: %v", err)
	}
	resp.Body.Close()
	if count() != 1 {
		t.Errorf("the live upstream saw %d tunnels, want 1", count())
	}
	var bad, used []sessionpool.SessionState
	for _, st := range h.pool().State().Sessions {
		if st.ErrorScore == 1 {
			bad = append(bad, st)
		} else {
			used = append(used, st)
		}
	}
	if len(bad) != 1 || bad[0].ProxyURL != "http://"+dead || len(used) != 1 {
		t.Errorf("sessions after the retried tunnel: bad %+v, others %+v; want the dead upstream's marked bad and one more", bad, used)
	}

	_, err = client("pinned").Get(tlsOrigin.URL + "/echo")
	if err == nil {
		t.Fatal("a tunnel pinned to a session whose upstream is down got through")
	}
	if got := stateOf(t, h, "pinned"); got.ErrorScore != 1 || count() != 1 {
		t.Errorf("pinned: error score %v, live upstream tunnels %d; want 1 and still 1 (not moved to another session)", got.ErrorScore, count())
	}
}

// TestHTTP2InsideTunnel: a client may speak HTTP/2 inside an intercepted
// tunnel, and sessions still apply.
func TestHTTP2InsideTunnel(t *testing.T) {
	tlsOrigin := httptest.NewUnstartedServer(originMux())
	tlsOrigin.EnableHTTP2 = true
	tlsOrigin.StartTLS()
	defer tlsOrigin.Close()
	cfg := testConfig(t)
	trustOrigin(t, cfg, tlsOrigin)
	h := startProxy(t, cfg)
	c := h.client("", "")
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true

	get(t, c, tlsOrigin.URL+"/set?name=h2&value=yes", "h2s")
	resp, body := get(t, c, tlsOrigin.URL+"/echo", "h2s")
	if resp.ProtoMajor != 2 {
		t.Errorf("client spoke %s to the proxy, want HTTP/2", resp.Proto)
	}
	if got := decodeSeen(t, body).Cookie; got != "h2=yes" {
		t.Errorf("origin saw Cookie %q over HTTP/2, want h2=yes", got)
	}
}

// TestWebSocketThroughTunnel: a WebSocket upgrade inside an intercepted
// tunnel reaches an origin that also speaks HTTP/2 over HTTP/1.1, with its
// upgrade, in every identity (a browser profile offers h2, but a browser
// opens a WebSocket's connection offering http/1.1 alone), and its
// messages pass both ways, also after a request of the same session made
// an HTTP/2 connection; the upgrade counts one use.
func TestWebSocketThroughTunnel(t *testing.T) {
	upgrades := atomic.Int32{}
	ws := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			io.WriteString(w, "a page, over "+r.Proto)
			return
		}
		upgrades.Add(1)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprint(brw, "echo: "+line)
		brw.Flush()
	}))
	ws.EnableHTTP2 = true // the origin offers h2 too
	ws.StartTLS()
	defer ws.Close()
	captcha := rules.Spec{Name: "captcha", Body: "(?i)captcha", Action: rules.ActionRetire} // any status, 101 too
	captchaRetry := captcha
	captchaRetry.Retry = true
	for _, tt := range []struct {
		name  string
		fp    config.Fingerprint
		rules []rules.Spec // nil: the test config's
	}{
		{"mirror", config.FingerprintMirror, nil},
		{"chrome", config.FingerprintChrome, nil},
		{"firefox", config.FingerprintFirefox, nil},
		{"mirror/body-rule", config.FingerprintMirror, []rules.Spec{captcha}},
		{"mirror/body-rule-retry", config.FingerprintMirror, []rules.Spec{captchaRetry}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tt.rules != nil {
				cfg = rulesConfig(t, tt.rules...)
			}
			cfg.Fingerprint = tt.fp
			trustOrigin(t, cfg, ws)
			h := startProxy(t, cfg)
			before := upgrades.Load()

			conn, err := net.Dial("tcp", h.proxyURL.Host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			target := strings.TrimPrefix(ws.URL, "https://")
			fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("CONNECT: %v %v", resp, err)
			}
			tc := tls.Client(conn, &tls.Config{RootCAs: h.caPool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
			tbr := bufio.NewReader(tc)
			// A request first: a browser profile's connection for it is
			// HTTP/2, pooled with the session; the upgrade must not take it.
			fmt.Fprintf(tc, "GET /page HTTP/1.1\r\nHost: %s\r\nX-Session-Id: wss\r\n\r\n", target)
			if resp, err = http.ReadResponse(tbr, nil); err != nil {
				t.Fatalf("request before the upgrade: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			fmt.Fprintf(tc, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Session-Id: wss\r\n\r\n", target)
			resp, err = http.ReadResponse(tbr, nil)
			if err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Session-Id") != "wss" || upgrades.Load() != before+1 {
				t.Fatalf("upgrade: status %d session %q, origin upgrades %d; want 101 on wss, one upgrade", resp.StatusCode, resp.Header.Get("X-Session-Id"), upgrades.Load()-before)
			}
			io.WriteString(tc, "ping\n")
			line, err := tbr.ReadString('\n')
			if err != nil || line != "echo: ping\n" {
				t.Fatalf("websocket echo: %q %v", line, err)
			}
			if st := stateOf(t, h, "wss"); st.UsageCount != 2 {
				t.Errorf("a request and an upgrade counted %d uses, want 2", st.UsageCount)
			}
		})
	}
}

// TestRestartKeepsSessions: sessions survive a shutdown and start with their
// cookies and upstreams.
func TestRestartKeepsSessions(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	up, count := startGoproxyUpstream(t, "", "")
	cfg := testConfig(t)
	cfg.Upstreams = []*url.URL{mustURL(t, up)}
	h := startProxy(t, cfg)
	get(t, h.client("", ""), origin.URL+"/set?name=token&value=kept", "keeper")
	h.stop()

	cfg2 := testConfig(t)
	cfg2.DataDir = cfg.DataDir // same state, and no upstreams configured any more
	h2 := startProxy(t, cfg2)
	before := count()
	resp, body := get(t, h2.client("", ""), origin.URL+"/echo", "keeper")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := decodeSeen(t, body).Cookie; got != "token=kept" {
		t.Errorf("after restart the origin saw Cookie %q, want token=kept", got)
	}
	if count() != before+1 {
		t.Errorf("after restart the session did not use its saved upstream")
	}
	if !strings.HasPrefix(string(h2.srv.CA().CertPEM()), "-----BEGIN CERTIFICATE") ||
		h2.srv.CA().SPKIHash() != h.srv.CA().SPKIHash() {
		t.Errorf("the CA changed across a restart")
	}
}

// TestAdminAPI: health, sessions with filters, the CA, and the token.
func TestAdminAPI(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	cfg := testConfig(t)
	cfg.AdminToken = "tok"
	h := startProxy(t, cfg)
	c := h.client("", "")
	get(t, c, origin.URL+"/echo", "good1")
	get(t, c, origin.URL+"/status?code=429", "blocked1")

	if code := h.adminGet("/healthz", "", nil); code != http.StatusOK {
		t.Errorf("/healthz without token: %d, want 200", code)
	}
	var e map[string]string
	if code := h.adminGet("/sessions", "", &e); code != http.StatusUnauthorized || e["error"] == "" {
		t.Errorf("/sessions without token: %d %v, want 401 with a JSON error", code, e)
	}
	if code := h.adminGet("/sessions", "wrong", nil); code != http.StatusUnauthorized {
		t.Errorf("/sessions with a wrong token: %d, want 401", code)
	}
	for _, tt := range []struct {
		filter string
		want   []string
	}{{"", []string{"blocked1", "good1"}}, {"?state=usable", []string{"good1"}}, {"?state=retired", []string{"blocked1"}}, {"?state=all", []string{"blocked1", "good1"}}} {
		var st sessionpool.PoolState
		if code := h.adminGet("/sessions"+tt.filter, "tok", &st); code != http.StatusOK {
			t.Fatalf("/sessions%s: %d", tt.filter, code)
		}
		var ids []string
		for _, s := range st.Sessions {
			ids = append(ids, s.ID)
		}
		if strings.Join(slices.Sorted(slices.Values(ids)), ",") != strings.Join(tt.want, ",") {
			t.Errorf("/sessions%s = %v, want %v", tt.filter, ids, tt.want)
		}
	}
	if code := h.adminGet("/sessions?state=bogus", "tok", &e); code != http.StatusBadRequest {
		t.Errorf("/sessions?state=bogus: %d, want 400", code)
	}
	if code := h.adminGet("/sessions/nobody", "tok", &e); code != http.StatusNotFound {
		t.Errorf("/sessions/nobody: %d, want 404", code)
	}
	req, _ := http.NewRequest(http.MethodGet, h.adminURL+"/ca.pem", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(pemBytes) != string(h.srv.CA().CertPEM()) {
		t.Errorf("/ca.pem does not serve the CA")
	}
}

// TestShutdownPersists: Shutdown persists the pool into data_dir, and later
// requests inside an open tunnel are not served.
func TestShutdownPersists(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	cfg := testConfig(t)
	h := startProxy(t, cfg)
	get(t, h.client("", ""), origin.URL+"/set?name=a&value=b", "persisted")
	h.stop()
	store, err := sessionpool.NewFileStore(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := store.Get(context.Background(), cfg.Pool.PersistStateKey+"@"+originSite)
	if err != nil {
		t.Fatalf("no persisted state of the origin's site after Shutdown: %v", err)
	}
	if !strings.Contains(string(doc), `"persisted"`) || !strings.Contains(string(doc), `"a"`) {
		t.Errorf("persisted state lacks the session or its cookie: %.300s", doc)
	}
}

func stateOf(t *testing.T, h *harness, id string) sessionpool.SessionState {
	t.Helper()
	var st sessionpool.SessionState
	if code := h.adminGet("/sessions/"+id, h.cfg.AdminToken, &st); code != http.StatusOK {
		t.Fatalf("/sessions/%s: %d", id, code)
	}
	return st
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
