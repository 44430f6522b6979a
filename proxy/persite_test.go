package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
	"github.com/sessionproxy/sessionproxy/sessionpool"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// The tests of sessions per site (pool.scope site, the default): two sites
// on one loopback origin, reached by name through an upstream that connects
// every *.test name to 127.0.0.1 (proxytest.StartNamingUpstream).

// twoSites is one origin under two sites' names, and the config of a proxy
// that reaches them through the naming upstream.
type twoSites struct {
	a, b string // base URLs: http://www.shop-a.test:PORT, http://shop-b.test:PORT
	cfg  *config.Config
}

func newTwoSites(t *testing.T) *twoSites {
	t.Helper()
	origin := httptest.NewServer(originMux())
	t.Cleanup(origin.Close)
	_, port, _ := strings.Cut(strings.TrimPrefix(origin.URL, "http://"), ":")
	up, _ := proxytest.StartNamingUpstream(t)
	cfg := testConfig(t)
	cfg.Upstreams = []*url.URL{mustURL(t, up)}
	return &twoSites{a: "http://www.shop-a.test:" + port, b: "http://shop-b.test:" + port, cfg: cfg}
}

// secondUpstream adds a second naming upstream to the config: new sessions
// get the two in turn. It returns both and the second's count.
func (s *twoSites) secondUpstream(t *testing.T) (up1, up2 string, count2 func() int) {
	up2, count2 = proxytest.StartNamingUpstream(t)
	s.cfg.Upstreams = append(s.cfg.Upstreams, mustURL(t, up2))
	return s.cfg.Upstreams[0].String(), up2, count2
}

// sessionList is GET /sessions's answer.
func sessionList(t *testing.T, h *harness, query string) []sessionpool.SessionState {
	t.Helper()
	var st sessionpool.PoolState
	if code := h.adminGet("/sessions"+query, h.cfg.AdminToken, &st); code != http.StatusOK {
		t.Fatalf("GET /sessions%s: %d", query, code)
	}
	return st.Sessions
}

// TestSitePinnedBlock: a pinned session blocked on site A keeps its cookies
// and standing on site B, and starts afresh on A.
func TestSitePinnedBlock(t *testing.T) {
	s := newTwoSites(t)
	h := startProxy(t, s.cfg)
	c := h.client("", "")
	get(t, c, s.a+"/set?name=a&value=1", "alice")
	get(t, c, s.b+"/set?name=b&value=2", "alice")
	if _, body := get(t, c, s.b+"/echo", "alice"); decodeSeen(t, body).Cookie != "b=2" {
		t.Fatalf("alice on B sent %q, want only B's cookie", decodeSeen(t, body).Cookie)
	}
	if resp, _ := get(t, c, s.a+"/status?code=403", "alice"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("block on A: %d", resp.StatusCode)
	}
	if _, body := get(t, c, s.b+"/echo", "alice"); decodeSeen(t, body).Cookie != "b=2" {
		t.Errorf("after a block on A, alice on B sent %q, want b=2", decodeSeen(t, body).Cookie)
	}
	if _, body := get(t, c, s.a+"/echo", "alice"); decodeSeen(t, body).Cookie != "" {
		t.Errorf("alice on A after its block sent %q, want a fresh session", decodeSeen(t, body).Cookie)
	}
	b := stateOf(t, h, "alice?site=shop-b.test")
	if b.Site != "shop-b.test" || b.Retired || b.UsageCount != 3 || b.ErrorScore != 0 {
		t.Errorf("alice on B: %+v; want 3 uses, untouched", b)
	}
	a := stateOf(t, h, "alice?site=shop-a.test")
	if a.Site != "shop-a.test" || a.UsageCount != 1 || len(a.Cookies) != 0 {
		t.Errorf("alice on A: %+v; want a new session with one use", a)
	}
	// The name is on two sites: the admin API wants ?site=.
	if r := h.admin(http.MethodGet, "/sessions/alice", "", ""); r.status != http.StatusConflict || !strings.Contains(string(r.body), "?site=") {
		t.Errorf("GET /sessions/alice: %d %s; want 409 asking for ?site=", r.status, r.body)
	}
	if r := h.admin(http.MethodDelete, "/sessions/alice?site=shop-a.test", "", ""); r.status != http.StatusOK {
		t.Fatalf("DELETE on A: %d %s", r.status, r.body)
	}
	if st := stateOf(t, h, "alice?site=shop-b.test"); st.Retired {
		t.Error("retiring alice on A through the admin API retired it on B")
	}
}

// TestSiteUnpinnedBlocks: unpinned requests blocked on site A retire A's
// sessions only; B's sessions stay as they were.
func TestSiteUnpinnedBlocks(t *testing.T) {
	s := newTwoSites(t)
	s.cfg.Pool.MaxPoolSize = 3
	h := startProxy(t, s.cfg)
	c := h.client("", "")
	for range 6 {
		if resp, _ := get(t, c, s.b+"/echo", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("B: %d", resp.StatusCode)
		}
	}
	before := sessionList(t, h, "?site=shop-b.test&state=usable")
	if len(before) != 3 {
		t.Fatalf("B holds %d usable sessions, want 3", len(before))
	}
	for range 6 {
		get(t, c, s.a+"/status?code=403", "")
	}
	if retired := sessionList(t, h, "?site=shop-a.test&state=retired"); len(retired) == 0 {
		t.Fatal("the blocks on A retired nothing on A")
	}
	after := sessionList(t, h, "?site=shop-b.test&state=usable")
	if len(after) != 3 {
		t.Fatalf("after A's blocks B holds %d usable sessions, want its 3", len(after))
	}
	for i := range before {
		if after[i].ID != before[i].ID || after[i].UsageCount != before[i].UsageCount || after[i].ErrorScore != 0 {
			t.Errorf("B's session %s changed: %+v -> %+v", before[i].ID, before[i], after[i])
		}
	}
	for _, st := range sessionList(t, h, "") {
		if st.Site != "shop-a.test" && st.Site != "shop-b.test" {
			t.Errorf("session %s has site %q", st.ID, st.Site)
		}
	}
}

// TestSiteNamedUpstream: a named session keeps one upstream across its
// sites, while new sessions still get the upstreams in turn.
func TestSiteNamedUpstream(t *testing.T) {
	s := newTwoSites(t)
	up1, up2, count2 := s.secondUpstream(t)
	h := startProxy(t, s.cfg)
	c := h.client("", "")
	get(t, c, s.a+"/echo", "alice") // upstream 1
	get(t, c, s.a+"/echo", "bob")   // upstream 2
	n := count2()
	get(t, c, s.b+"/echo", "alice")
	if count2() != n {
		t.Error("alice on B went through upstream 2, not alice's upstream 1")
	}
	for _, site := range []string{"shop-a.test", "shop-b.test"} {
		if st := stateOf(t, h, "alice?site="+site); st.ProxyURL != up1 {
			t.Errorf("alice on %s: upstream %q, want %q", site, st.ProxyURL, up1)
		}
	}
	if st := stateOf(t, h, "bob"); st.ProxyURL != up2 {
		t.Errorf("bob: upstream %q, want the second %q", st.ProxyURL, up2)
	}
}

// TestSiteScopeGlobal: pool.scope global is one pool for every site, as
// before sites: a block on A retires the session for B too.
func TestSiteScopeGlobal(t *testing.T) {
	s := newTwoSites(t)
	s.cfg.Pool.Scope = config.ScopeGlobal
	h := startProxy(t, s.cfg)
	c := h.client("", "")
	get(t, c, s.b+"/set?name=b&value=2", "alice")
	get(t, c, s.a+"/status?code=403", "alice")
	if _, body := get(t, c, s.b+"/echo", "alice"); decodeSeen(t, body).Cookie != "" {
		t.Errorf("with scope global, alice on B after a block on A sent %q, want a fresh session", decodeSeen(t, body).Cookie)
	}
	if st := stateOf(t, h, "alice"); st.Site != "" {
		t.Errorf("site %q with scope global, want \"\"", st.Site)
	}
}

// TestSiteAdminSessionEverywhere: a session the admin API adds without a
// site serves its name on every site; one added with a site serves that
// site only.
func TestSiteAdminSessionEverywhere(t *testing.T) {
	s := newTwoSites(t)
	h := startProxy(t, s.cfg)
	c := h.client("", "")
	h.addSession(`{"id": "acct", "cookies": [{"name": "login", "value": "x", "domain": "shop-a.test", "hostOnly": false},
		{"name": "login", "value": "y", "domain": "shop-b.test", "hostOnly": false}]}`)
	if st := h.addSession(`{"id": "onb", "site": "www.shop-b.test"}`); st.Site != "shop-b.test" {
		t.Errorf("site www.shop-b.test was kept as %q, want its site shop-b.test", st.Site)
	}
	for base, want := range map[string]string{s.a: "login=x", s.b: "login=y"} {
		if _, body := get(t, c, base+"/echo", "acct"); decodeSeen(t, body).Cookie != want {
			t.Errorf("acct on %s sent %q, want %q", base, decodeSeen(t, body).Cookie, want)
		}
	}
	if st := stateOf(t, h, "acct"); st.Site != "" || st.UsageCount != 2 {
		t.Errorf("acct: %+v; want the one site-less session, used twice", st)
	}
	get(t, c, s.b+"/echo", "onb")
	get(t, c, s.a+"/echo", "onb")
	if got := sessionList(t, h, "?site=shop-a.test"); len(got) != 1 || got[0].ID != "onb" {
		t.Errorf("onb on A: %v; want a session of its own on A", got)
	}
	if st := stateOf(t, h, "onb?site=shop-b.test"); st.UsageCount != 1 {
		t.Errorf("onb on B: %d uses, want 1", st.UsageCount)
	}
	for _, bad := range []string{`{"site": 5}`, `{"site": "a..b"}`, `{"site": "a/b"}`} {
		if r := h.admin(http.MethodPost, "/sessions", "application/json", bad); r.status != http.StatusBadRequest {
			t.Errorf("POST /sessions %s: %d %s, want 400", bad, r.status, r.body)
		}
	}
}

// TestSiteAdminAddConflicts: POST /sessions answers 409 when a usable
// session would serve the name where the new one would: a site's own for
// a site-less one (it is found first there, and the new one would never
// serve that site), the site-less one for a site's. A name on another
// site is no conflict.
func TestSiteAdminAddConflicts(t *testing.T) {
	s := newTwoSites(t)
	h := startProxy(t, s.cfg)
	get(t, h.client("", ""), s.a+"/echo", "alice") // alice on shop-a.test
	h.addSession(`{"id": "acct"}`)                 // acct on every site

	for _, tc := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"id": "alice"}`, http.StatusConflict, `\"alice\" (on site \"shop-a.test\")`},
		{`{"id": "acct", "site": "shop-b.test"}`, http.StatusConflict, `\"acct\" (on site \"\")`},
		{`{"id": "acct"}`, http.StatusConflict, `\"acct\"`},
		{`{"id": "alice", "site": "shop-b.test"}`, http.StatusCreated, `"site": "shop-b.test"`},
		{`{"id": "bob"}`, http.StatusCreated, `"id": "bob"`},
	} {
		if r := h.admin(http.MethodPost, "/sessions", "application/json", tc.body); r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("POST /sessions %s: %d %s; want %d with %s", tc.body, r.status, r.body, tc.status, tc.want)
		}
	}
	if got := sessionList(t, h, "?site="); len(got) != 2 {
		t.Errorf("site-less sessions: %v; want acct and bob only", got)
	}
}

// TestSitesPersistAcrossRestart: each site's sessions come back after a
// restart, each with its own cookies.
func TestSitesPersistAcrossRestart(t *testing.T) {
	s := newTwoSites(t)
	h := startProxy(t, s.cfg)
	c := h.client("", "")
	get(t, c, s.a+"/set?name=a&value=1", "alice")
	get(t, c, s.b+"/set?name=b&value=2", "alice")
	h.stop()
	h = startProxy(t, s.cfg)
	// Listed before any request: the index brought both sites back.
	got := sessionList(t, h, "")
	if len(got) != 2 || got[0].Site != "shop-a.test" || got[1].Site != "shop-b.test" || got[0].ID != "alice" || got[1].ID != "alice" {
		t.Fatalf("after a restart: %+v; want alice on each site", got)
	}
	c = h.client("", "")
	for base, want := range map[string]string{s.a: "a=1", s.b: "b=2"} {
		if _, body := get(t, c, base+"/echo", "alice"); decodeSeen(t, body).Cookie != want {
			t.Errorf("after a restart alice on %s sent %q, want %q", base, decodeSeen(t, body).Cookie, want)
		}
	}
}

// TestSitesRedisTwoProxies: two proxies on one Redis share each site's
// pool: a block through one proxy on A retires alice on A for both, and
// leaves alice on B, made through the other, alone.
func TestSitesRedisTwoProxies(t *testing.T) {
	rs := sessionpooltest.Start(t)
	s := newTwoSites(t)
	s.cfg.Pool.Store = config.Store(rs.URL(0))
	cfg2 := *s.cfg
	cfg2.DataDir = t.TempDir()
	one, two := startProxy(t, s.cfg), startProxy(t, &cfg2)
	c1, c2 := one.client("", ""), two.client("", "")
	get(t, c1, s.a+"/set?name=a&value=1", "alice")
	get(t, c2, s.b+"/set?name=b&value=2", "alice")
	if _, body := get(t, c2, s.a+"/echo", "alice"); decodeSeen(t, body).Cookie != "a=1" {
		t.Fatalf("proxy two sent %q for alice on A, want proxy one's a=1", decodeSeen(t, body).Cookie)
	}
	get(t, c2, s.a+"/status?code=403", "alice")
	if _, body := get(t, c1, s.a+"/echo", "alice"); decodeSeen(t, body).Cookie != "" {
		t.Errorf("proxy one still sent %q for alice on A after proxy two's block", decodeSeen(t, body).Cookie)
	}
	if _, body := get(t, c1, s.b+"/echo", "alice"); decodeSeen(t, body).Cookie != "b=2" {
		t.Errorf("proxy one sent %q for alice on B, want b=2", decodeSeen(t, body).Cookie)
	}
}

// TestSiteDelayPerSite: a sites entry's delay spaces one session's
// requests to a site, not its requests to another site the same entry
// matches.
func TestSiteDelayPerSite(t *testing.T) {
	s := newTwoSites(t)
	s.cfg.Sites = []config.Site{{Host: "*.test", Delay: time.Minute}}
	s.cfg.Pacing.MaxWait = time.Second
	h := startProxy(t, s.cfg)
	c := h.client("", "")
	if resp, _ := get(t, c, s.a+"/echo", "alice"); resp.StatusCode != http.StatusOK {
		t.Fatalf("alice on A: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, s.b+"/echo", "alice"); resp.StatusCode != http.StatusOK {
		t.Errorf("alice on B right after A: %d, want 200 (the delay is per site)", resp.StatusCode)
	}
	if resp, _ := get(t, c, s.a+"/echo", "alice"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("alice on A again: %d, want 429 (a minute's delay, max_wait 1s)", resp.StatusCode)
	}
}

// TestSiteBadHost: a host whose site no store key can name is a 400, not a
// store failure.
func TestSiteBadHost(t *testing.T) {
	s := newTwoSites(t)
	h := startProxy(t, s.cfg)
	_, port, _ := strings.Cut(strings.TrimPrefix(s.b, "http://"), ":")
	resp, body := get(t, h.client("", ""), "http://a..shop-b.test:"+port+"/echo", "")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `".."`) {
		t.Errorf("a..shop-b.test: %d %q, want 400 naming the problem", resp.StatusCode, body)
	}
}

// TestSiteOwnHostMarks: a mark through the proxy's own host goes to the
// name on every site that holds it, or with ?site= to that site's only.
func TestSiteOwnHostMarks(t *testing.T) {
	s := newTwoSites(t)
	h := startProxy(t, s.cfg)
	c := h.client("", "")
	for _, name := range []string{"alice", "bob"} {
		get(t, c, s.a+"/echo", name)
		get(t, c, s.b+"/echo", name)
	}
	code, body := ownHostDo(t, c, http.MethodPost, "/sessions/bob/retire?site=shop-a.test", nil)
	if code != http.StatusOK {
		t.Fatalf("retire bob on A: %d %s", code, body)
	}
	if a, b := stateOf(t, h, "bob?site=shop-a.test"), stateOf(t, h, "bob?site=shop-b.test"); !a.Retired || b.Retired {
		t.Errorf("?site=shop-a.test retired bob on A %v, on B %v; want A only", a.Retired, b.Retired)
	}
	code, body = ownHostDo(t, c, http.MethodPost, "/sessions/alice/retire", nil)
	var marked []sessionpool.SessionState
	if code != http.StatusOK || json.Unmarshal([]byte(body), &marked) != nil || len(marked) != 2 {
		t.Fatalf("retire alice: %d %s; want the two sessions marked", code, body)
	}
	for _, site := range []string{"shop-a.test", "shop-b.test"} {
		if st := stateOf(t, h, "alice?site="+site); !st.Retired {
			t.Errorf("alice on %s not retired by a mark without ?site=", site)
		}
	}
}

// TestSiteNamedRetiredGetsNextUpstream: a name blocked on its only site
// starts afresh with the next upstream, as any replaced session does; while
// the name is in use on another site, its replacement keeps that upstream.
func TestSiteNamedRetiredGetsNextUpstream(t *testing.T) {
	s := newTwoSites(t)
	up1, up2, _ := s.secondUpstream(t)
	h := startProxy(t, s.cfg)
	c := h.client("", "")
	get(t, c, s.a+"/echo", "alice")            // upstream 1
	get(t, c, s.a+"/status?code=403", "alice") // retired on its only site
	get(t, c, s.a+"/echo", "alice")            // a fresh alice
	if st := stateOf(t, h, "alice?site=shop-a.test"); st.ProxyURL != up2 {
		t.Errorf("alice replaced on her only site: upstream %q, want the next one %q", st.ProxyURL, up2)
	}
	get(t, c, s.b+"/echo", "alice")            // alice on B: upstream 2, hers
	get(t, c, s.a+"/status?code=403", "alice") // retired on A, in use on B
	get(t, c, s.a+"/echo", "alice")
	if st := stateOf(t, h, "alice?site=shop-a.test"); st.ProxyURL != up2 {
		t.Errorf("alice replaced on A while in use on B: upstream %q, want B's %q (not %q)", st.ProxyURL, up2, up1)
	}
}
