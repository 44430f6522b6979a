package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/cookiefile"
	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// adminReply is one admin API answer.
type adminReply struct {
	status int
	header http.Header
	body   []byte
}

// errorText returns the "error" of a JSON error body, failing the test when
// the body is not one.
func (r adminReply) errorText(t *testing.T) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error reply has Content-Type %q, want application/json", ct)
	}
	var e map[string]string
	if err := json.Unmarshal(r.body, &e); err != nil || e["error"] == "" || len(e) != 1 {
		t.Fatalf("error reply %q is not {\"error\": \"...\"}", r.body)
	}
	return e["error"]
}

// decode decodes a JSON reply into v.
func (r adminReply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("reply %q: %v", r.body, err)
	}
}

// admin sends a request to the admin API with the configured token.
func (h *harness) admin(method, path, contentType, body string) adminReply {
	h.t.Helper()
	return h.adminAs(h.cfg.AdminToken, method, path, contentType, body)
}

func (h *harness) adminAs(token, method, path, contentType, body string) adminReply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.adminURL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("admin %s %s: read: %v", method, path, err)
	}
	return adminReply{status: resp.StatusCode, header: resp.Header, body: b}
}

// addSession creates a session through the API and returns its state.
func (h *harness) addSession(body string) sessionpool.SessionState {
	h.t.Helper()
	r := h.admin(http.MethodPost, "/sessions", "application/json", body)
	if r.status != http.StatusCreated {
		h.t.Fatalf("POST /sessions %s: %d %s", body, r.status, r.body)
	}
	var st sessionpool.SessionState
	if err := json.Unmarshal(r.body, &st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

func startAdminProxy(t *testing.T) *harness {
	cfg := testConfig(t)
	cfg.AdminToken = "s3cret-token"
	return startProxy(t, cfg)
}

// TestAdminTokenEveryEndpoint: every endpoint but /healthz (and the
// dashboard page itself, GET /, which holds no data) wants the token.
func TestAdminTokenEveryEndpoint(t *testing.T) {
	h := startAdminProxy(t)
	h.addSession(`{"id": "held"}`)
	for _, ep := range []struct{ method, path string }{
		{"GET", "/sessions"}, {"GET", "/sessions/held"}, {"POST", "/sessions"}, {"DELETE", "/sessions/held"},
		{"POST", "/sessions/held/good"}, {"POST", "/sessions/held/bad"}, {"GET", "/sessions/held/cookies"},
		{"PUT", "/sessions/held/cookies"}, {"POST", "/persist"}, {"GET", "/stats"}, {"GET", "/ca.pem"},
		{"GET", "/ca.der"}, {"GET", "/ca.spki"}, {"POST", "/reload"}, {"GET", "/metrics"}, {"POST", "/"},
		{"GET", "/no-such-thing"},
	} {
		for _, token := range []string{"", "wrong"} {
			r := h.adminAs(token, ep.method, ep.path, "application/json", `{"id": "x"}`)
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", ep.method, ep.path, token, r.status)
				continue
			}
			if msg := r.errorText(t); !strings.Contains(msg, "bearer token") {
				t.Errorf("%s %s: error %q", ep.method, ep.path, msg)
			}
		}
	}
	if r := h.adminAs("", "GET", "/healthz", "", ""); r.status != http.StatusOK {
		t.Errorf("/healthz without token: %d", r.status)
	}
	// Nothing was done by the refused requests.
	st := stateOf(t, h, "held")
	if st.Retired || st.UsageCount != 0 || len(sitePoolOf(t, h.srv, "").Sessions()) != 1 {
		t.Errorf("refused requests changed the pool: %+v, %d sessions", st, len(sitePoolOf(t, h.srv, "").Sessions()))
	}
}

// TestAdminErrors: each endpoint's bad requests get a JSON error with the
// fitting status and a message that says what is wrong.
func TestAdminErrors(t *testing.T) {
	h := startAdminProxy(t)
	h.addSession(`{"id": "alive"}`)
	h.addSession(`{"id": "gone"}`)
	if r := h.admin("DELETE", "/sessions/gone", "", ""); r.status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	big := `{"id": "x", "userData": {"pad": "` + strings.Repeat("a", maxAdminBody) + `"}}`
	for _, tt := range []struct {
		method, path, contentType, body string
		status                          int
		want                            []string // substrings of the error
		absent                          string   // must not appear in the error
	}{
		// POST /sessions
		{"POST", "/sessions", "application/json", "{\n\"id\": \"x\",", 400, []string{"line 2", "ends too early"}, ""},
		{"POST", "/sessions", "application/json", `{"id": "x", "colour": "red"}`, 400, []string{`unknown field "colour"`}, ""},
		{"POST", "/sessions", "application/json", `{"id": "x", "id": "y"}`, 400, []string{`field "id" given twice`}, ""},
		{"POST", "/sessions", "application/json", `{"id": "bad id!"}`, 400, []string{"id must be", `"bad id!"`}, ""},
		{"POST", "/sessions", "application/json", `{"id": 7}`, 400, []string{"id must be a string"}, ""},
		{"POST", "/sessions", "application/json", `{"id": "new"}`, 400, []string{`id "new"`, "fresh session"}, ""},
		{"POST", "/sessions", "application/json", `{"proxyUrl": "ftp://bob:hunter2@127.0.0.1:21"}`, 400, []string{"proxyUrl", "scheme must be one of"}, "hunter2"},
		{"POST", "/sessions", "application/json", `{"proxyUrl": "127.0.0.1:3128"}`, 400, []string{"proxyUrl", "must be a URL like"}, ""},
		{"POST", "/sessions", "application/json", `{"proxyUrl": "http://bob:hunter2@127.0.0.1"}`, 400, []string{"proxyUrl", "needs a port"}, "hunter2"},
		{"POST", "/sessions", "application/json", `{"userData": [1]}`, 400, []string{"userData must be an object"}, ""},
		{"POST", "/sessions", "application/json", "{\"cookies\": [\n{\"name\": \"a\"}]}", 400, []string{"line 2", "domain is empty"}, ""},
		{"POST", "/sessions", "application/json", `{"cookies": [{"name": "a", "domain": ".com"}]}`, 400, []string{"line 1", "public suffix"}, ""},
		{"POST", "/sessions", "application/json", `{"cookies": {}}`, 400, []string{`"cookies" must be a list`}, ""},
		{"POST", "/sessions", "application/json", `[]`, 400, []string{"want a JSON object, got a list"}, ""},
		{"POST", "/sessions", "application/json", "{\"id\": \"x\"}\n{}", 400, []string{"line 2", "unexpected data"}, ""},
		{"POST", "/sessions", "application/json", `{"id": "alive"}`, 409, []string{`"alive"`, "already holds"}, ""},
		{"POST", "/sessions", "application/json", big, 413, []string{"larger than 1048576 bytes"}, ""},
		// DELETE, good, bad
		{"DELETE", "/sessions/nobody", "", "", 404, []string{`session not held: "nobody"`}, ""},
		{"POST", "/sessions/nobody/good", "", "", 404, []string{"not held"}, ""},
		{"POST", "/sessions/nobody/bad", "", "", 404, []string{"not held"}, ""},
		{"POST", "/sessions/gone/good", "", "", 409, []string{`"gone" is not usable`}, ""},
		{"POST", "/sessions/gone/bad", "", "", 409, []string{`"gone" is not usable`}, ""},
		// cookies
		{"GET", "/sessions/nobody/cookies", "", "", 404, []string{"not held"}, ""},
		{"GET", "/sessions/alive/cookies?format=xml", "", "", 400, []string{"format must be json, netscape or playwright", `"xml"`}, ""},
		{"PUT", "/sessions/nobody/cookies", "text/plain", "", 404, []string{"not held"}, ""},
		{"PUT", "/sessions/gone/cookies", "text/plain", "", 409, []string{`"gone" is not usable`}, ""},
		{"PUT", "/sessions/alive/cookies?format=xml", "text/plain", "", 400, []string{"format must be", `"xml"`}, ""},
		{"PUT", "/sessions/alive/cookies", "text/plain", "# Netscape HTTP Cookie File\nexample.com\tMAYBE\t/\tFALSE\t0\ta\t1\n", 400,
			[]string{"netscape: bad cookies: line 2", "include-subdomains"}, ""},
		{"PUT", "/sessions/alive/cookies", "application/json", "[\n{\"name\": \"a\", \"domain\": \"x.com\", \"size\": 1}]", 400,
			[]string{"json: bad cookies: line 2", `unknown field "size"`}, ""},
		{"PUT", "/sessions/alive/cookies", "application/json", "{\"cookies\": [\n{\"name\": \"a\", \"domain\": \"x.com\", \"expires\": \"soon\"}]}", 400,
			[]string{"playwright: bad cookies: line 2", "expires"}, ""},
		{"PUT", "/sessions/alive/cookies", "application/json", "a=1", 400, []string{"a JSON body must be"}, ""},
		{"PUT", "/sessions/alive/cookies", "text/plain", strings.Repeat("#", maxAdminBody+1), 413, []string{"larger than"}, ""},
		// methods and paths
		{"PUT", "/stats", "", "", 405, []string{"PUT not allowed on /stats", "GET"}, ""},
		{"DELETE", "/sessions", "", "", 405, []string{"allowed: GET, HEAD, POST"}, ""},
		{"PATCH", "/sessions/alive/cookies", "", "", 405, []string{"allowed: GET, HEAD, PUT"}, ""},
		{"GET", "/persist", "", "", 405, []string{"allowed: POST"}, ""},
		{"GET", "/nope", "", "", 404, []string{"no such endpoint: GET /nope"}, ""},
		{"GET", "/sessions/alive/cookies/more", "", "", 404, []string{"no such endpoint"}, ""},
	} {
		name := tt.method + " " + tt.path + " " + strconv.Itoa(tt.status)
		t.Run(name, func(t *testing.T) {
			r := h.admin(tt.method, tt.path, tt.contentType, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.status, r.body)
			}
			msg := r.errorText(t)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if tt.absent != "" && strings.Contains(msg, tt.absent) {
				t.Errorf("error %q shows %q", msg, tt.absent)
			}
			if tt.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
		})
	}
	// None of the refused requests added a session or touched one.
	if n := len(sitePoolOf(t, h.srv, "").Sessions()); n != 2 {
		t.Errorf("pool holds %d sessions after the refused requests, want 2", n)
	}
	if st := stateOf(t, h, "alive"); st.UsageCount != 0 || len(st.Cookies) != 0 {
		t.Errorf("alive was changed: %+v", st)
	}
}

// TestAdminAddSession: POST /sessions with and without its optional fields.
func TestAdminAddSession(t *testing.T) {
	cfg := testConfig(t)
	cfg.AdminToken = "tok"
	for _, u := range []string{"http://amy:pw1@127.0.0.1:3128", "socks5://127.0.0.1:1080"} {
		pu, err := upstream.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Upstreams = append(cfg.Upstreams, pu)
	}
	h := startProxy(t, cfg)

	// Without a proxyUrl, sessions get the configured upstreams in turn.
	first, second := h.addSession(""), h.addSession("{}")
	if first.ProxyURL != "http://amy:xxxxx@127.0.0.1:3128" || second.ProxyURL != "socks5://127.0.0.1:1080" {
		t.Errorf("upstreams %q, %q; want the configured ones in turn, redacted", first.ProxyURL, second.ProxyURL)
	}
	if first.ID == "" || first.ID == second.ID || first.Retired {
		t.Errorf("generated ids %q, %q", first.ID, second.ID)
	}

	body := `{"id": "mine", "proxyUrl": "http://bob:hunter2@127.0.0.1:8888",
		"userData": {"account": "bob", "n": 2},
		"cookies": [{"name": "sid", "value": "x1", "domain": "example.com", "path": "/", "hostOnly": false,
		             "secure": true, "httpOnly": true, "sameSite": "Lax", "expires": "2099-01-01T00:00:00Z"}]}`
	r := h.admin("POST", "/sessions", "application/json", body)
	if r.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if loc := r.header.Get("Location"); loc != "/sessions/mine" {
		t.Errorf("Location %q", loc)
	}
	if strings.Contains(string(r.body), "hunter2") {
		t.Errorf("reply shows the upstream password: %s", r.body)
	}
	var st sessionpool.SessionState
	r.decode(t, &st)
	want := sessionpool.Cookie{Name: "sid", Value: "x1", Domain: "example.com", Path: "/", Secure: true, HTTPOnly: true,
		SameSite: "Lax", Expires: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)}
	if st.ID != "mine" || st.ProxyURL != "http://bob:xxxxx@127.0.0.1:8888" || st.UserData["account"] != "bob" ||
		st.UserData["n"] != 2.0 || len(st.Cookies) != 1 || !proxytest.SameCookie(st.Cookies[0], want) {
		t.Errorf("state %+v", st)
	}
	// The pool keeps the whole upstream URL: it is what the session dials.
	sess, err := sitePoolOf(t, h.srv, "").GetSessionByID(context.Background(), "mine")
	if err != nil || sess.ProxyURL() != "http://bob:hunter2@127.0.0.1:8888" {
		t.Errorf("held session: %v, proxy %q", err, sess.ProxyURL())
	}
	if got := stateOf(t, h, "mine"); got.ID != "mine" || len(got.Cookies) != 1 {
		t.Errorf("GET /sessions/mine = %+v", got)
	}

	// The id is taken while its session is usable, and free once it is not.
	if r := h.admin("POST", "/sessions", "application/json", `{"id": "mine"}`); r.status != http.StatusConflict {
		t.Errorf("second POST of mine: %d", r.status)
	}
	h.admin("DELETE", "/sessions/mine", "", "")
	again := h.addSession(`{"id": "mine"}`)
	if again.Retired || len(again.Cookies) != 0 || again.ProxyURL != "http://amy:xxxxx@127.0.0.1:3128" {
		t.Errorf("re-added mine: %+v", again)
	}

	var stats Stats
	h.admin("GET", "/stats", "", "").decode(t, &stats)
	if stats.UsableSessions != 3 || stats.SessionsCreated != 4 {
		t.Errorf("stats: %d usable, %d created; want 3, 4", stats.UsableSessions, stats.SessionsCreated)
	}
}

// TestAdminRetireAndMark: DELETE retires (idempotently); good and bad mark
// a usable session and are refused on a spent one.
func TestAdminRetireAndMark(t *testing.T) {
	h := startAdminProxy(t)
	h.addSession(`{"id": "s1"}`)

	var st sessionpool.SessionState
	step := func(method, path string, status int) {
		t.Helper()
		r := h.admin(method, path, "", "")
		if r.status != status {
			t.Fatalf("%s %s: %d, want %d (%s)", method, path, r.status, status, r.body)
		}
		if status == http.StatusOK {
			r.decode(t, &st)
		}
	}
	step("POST", "/sessions/s1/good", 200)
	if st.UsageCount != 1 || st.ErrorScore != 0 {
		t.Errorf("after good: usage %d, error score %v", st.UsageCount, st.ErrorScore)
	}
	step("POST", "/sessions/s1/bad", 200)
	if st.UsageCount != 2 || st.ErrorScore != 1 {
		t.Errorf("after bad: usage %d, error score %v", st.UsageCount, st.ErrorScore)
	}
	step("DELETE", "/sessions/s1", 200)
	if !st.Retired || st.UsageCount != 3 {
		t.Errorf("after DELETE: retired %v, usage %d", st.Retired, st.UsageCount)
	}
	step("DELETE", "/sessions/s1", 200)
	if !st.Retired || st.UsageCount != 3 {
		t.Errorf("second DELETE changed the session: retired %v, usage %d", st.Retired, st.UsageCount)
	}
	step("POST", "/sessions/s1/good", 409)
	var list sessionpool.PoolState
	h.admin("GET", "/sessions?state=retired", "", "").decode(t, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].ID != "s1" {
		t.Errorf("retired list %+v", list.Sessions)
	}

	// Three bad marks block a session (max_error_score 3): the fourth is refused.
	h.addSession(`{"id": "s2"}`)
	for range 3 {
		step("POST", "/sessions/s2/bad", 200)
	}
	if st.ErrorScore != 3 || st.Retired != true {
		t.Errorf("after three bad marks: %+v", st)
	}
	step("POST", "/sessions/s2/bad", 409)
}

// TestAdminCookieImportReachesOrigin: cookies imported in each format are
// sent by the proxy to the origin on requests made as that session.
func TestAdminCookieImportReachesOrigin(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	h := startAdminProxy(t)
	c := h.client("", "")
	h.addSession(`{"id": "imp"}`)

	future := time.Now().Add(24 * time.Hour).Unix()
	txt := "# Netscape HTTP Cookie File\n" +
		"127.0.0.1\tFALSE\t/\tFALSE\t0\ta\t1\n" +
		"127.0.0.1\tFALSE\t/other\tFALSE\t0\tb\t2\n" + // another path: not sent to /echo
		"127.0.0.1\tFALSE\t/\tFALSE\t1000000000\told\tx\n" + // expired in 2001: skipped
		"#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t" + strconv.FormatInt(future, 10) + "\tc\t3\n" +
		"other.example\tFALSE\t/\tFALSE\t0\tfar\tz\n" // another host: not sent
	r := h.admin("PUT", "/sessions/imp/cookies", "text/plain; charset=utf-8", txt)
	if r.status != http.StatusOK {
		t.Fatalf("PUT netscape: %d %s", r.status, r.body)
	}
	var res struct {
		Imported       int                      `json:"imported"`
		SkippedExpired int                      `json:"skippedExpired"`
		Format         string                   `json:"format"`
		Session        sessionpool.SessionState `json:"session"`
	}
	r.decode(t, &res)
	if res.Imported != 4 || res.SkippedExpired != 1 || res.Format != "netscape" || len(res.Session.Cookies) != 4 {
		t.Errorf("PUT netscape: %+v", res)
	}
	resp, body := get(t, c, origin.URL+"/echo", "imp")
	if got := decodeSeen(t, body).Cookie; got != "a=1; c=3" {
		t.Errorf("origin got Cookie %q, want %q", got, "a=1; c=3")
	}
	if id := resp.Header.Get("X-Session-Id"); id != "imp" {
		t.Errorf("request went as session %q", id)
	}

	// Playwright, told by its shape under application/json; a cookie of the
	// same name, domain and path replaces the earlier one.
	pw := `{"cookies": [{"name": "a", "value": "new", "domain": "127.0.0.1", "path": "/", "expires": -1,
		"httpOnly": false, "secure": false, "sameSite": "Lax"},
		{"name": "d", "value": "4", "domain": "127.0.0.1", "path": "/echo", "expires": -1,
		"httpOnly": false, "secure": false, "sameSite": "Strict"}], "origins": []}`
	if r := h.admin("PUT", "/sessions/imp/cookies", "application/json", pw); r.status != http.StatusOK {
		t.Fatalf("PUT playwright: %d %s", r.status, r.body)
	}
	// JSON, named by ?format= whatever the content type.
	js := `[{"name": "e", "value": "5", "domain": "127.0.0.1", "hostOnly": true}]`
	if r := h.admin("PUT", "/sessions/imp/cookies?format=json", "application/octet-stream", js); r.status != http.StatusOK {
		t.Fatalf("PUT json: %d %s", r.status, r.body)
	}
	_, body = get(t, c, origin.URL+"/echo", "imp")
	if got, want := decodeSeen(t, body).Cookie, "d=4; a=new; c=3; e=5"; got != want {
		t.Errorf("origin got Cookie %q, want %q", got, want)
	}

	// Cookies given with POST /sessions are there from the first request.
	h.addSession(`{"id": "imp2", "cookies": [{"name": "z", "value": "9", "domain": "127.0.0.1", "hostOnly": true}]}`)
	_, body = get(t, c, origin.URL+"/echo", "imp2")
	if got := decodeSeen(t, body).Cookie; got != "z=9" {
		t.Errorf("origin got Cookie %q for imp2, want z=9", got)
	}
}

// TestAdminCookieFormatRoundTrip: for each format, export → import into a
// fresh session → export gives the same document.
func TestAdminCookieFormatRoundTrip(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	h := startAdminProxy(t)
	h.addSession(`{"id": "src"}`)
	// One cookie from a real Set-Cookie, the others of every kind imported.
	get(t, h.client("", ""), origin.URL+"/set?name=fromorigin&value=v1", "src")
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second).Add(123456 * time.Microsecond).UTC().Format(time.RFC3339Nano)
	js := `[
	  {"name": "dom", "value": "d1", "domain": "example.com", "path": "/", "secure": true, "httpOnly": true,
	   "sameSite": "Strict", "expires": "` + exp + `"},
	  {"name": "host", "value": "\"quoted v\"", "domain": "www.example.com", "path": "/app", "hostOnly": true, "sameSite": "None"},
	  {"name": "__Host-id", "value": "h", "domain": "example.com", "path": "/", "hostOnly": true, "secure": true},
	  {"name": "plain", "value": "", "domain": "sub.example.org", "path": "/a/b"}
	]`
	if r := h.admin("PUT", "/sessions/src/cookies", "application/json", js); r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if n := len(stateOf(t, h, "src").Cookies); n != 5 {
		t.Fatalf("src holds %d cookies, want 5", n)
	}

	for _, tt := range []struct{ format, contentType string }{
		{"json", "application/json"},
		{"netscape", "text/plain; charset=utf-8"},
		{"playwright", "application/json"},
	} {
		t.Run(tt.format, func(t *testing.T) {
			first := h.admin("GET", "/sessions/src/cookies?format="+tt.format, "", "")
			if first.status != http.StatusOK || first.header.Get("Content-Type") != tt.contentType {
				t.Fatalf("export: %d %q %s", first.status, first.header.Get("Content-Type"), first.body)
			}
			dst := "dst-" + tt.format
			h.addSession(`{"id": "` + dst + `"}`)
			// Imported with the content type it was exported with: the
			// format is told from it and the body.
			r := h.admin("PUT", "/sessions/"+dst+"/cookies", first.header.Get("Content-Type"), string(first.body))
			if r.status != http.StatusOK {
				t.Fatalf("import: %d %s", r.status, r.body)
			}
			var res struct {
				Imported int    `json:"imported"`
				Format   string `json:"format"`
			}
			r.decode(t, &res)
			if res.Imported != 5 || res.Format != tt.format {
				t.Errorf("import: %+v, want 5 cookies as %s", res, tt.format)
			}
			second := h.admin("GET", "/sessions/"+dst+"/cookies?format="+tt.format, "", "")
			if tt.format == "json" {
				// Creation is the time of the import; all else is kept.
				var a, b []sessionpool.Cookie
				first.decode(t, &a)
				second.decode(t, &b)
				if len(a) != 5 || len(b) != len(a) {
					t.Fatalf("exports of %d and %d cookies", len(a), len(b))
				}
				for i := range a {
					if !proxytest.SameCookie(a[i], b[i]) {
						t.Errorf("cookie %d: %+v after the round trip, was %+v", i, b[i], a[i])
					}
				}
				return
			}
			if string(second.body) != string(first.body) {
				t.Errorf("second export differs:\n%s\nfirst:\n%s", second.body, first.body)
			}
		})
	}
}

// TestAdminCookieExportFormats: the exports carry what the formats say, for
// a session whose cookies are known.
func TestAdminCookieExportFormats(t *testing.T) {
	h := startAdminProxy(t)
	h.addSession(`{"id": "x", "cookies": [
		{"name": "a", "value": "1", "domain": "example.com", "expires": "2099-01-01T00:00:00Z", "httpOnly": true},
		{"name": "b", "value": "2", "domain": "example.com", "hostOnly": true, "sameSite": "Strict"}]}`)
	nets := h.admin("GET", "/sessions/x/cookies?format=netscape", "", "")
	wantNets := "#HttpOnly_.example.com\tTRUE\t/\tFALSE\t4070908800\ta\t1\nexample.com\tFALSE\t/\tFALSE\t0\tb\t2\n"
	if !strings.HasPrefix(string(nets.body), cookiefile.NetscapeHeader+"\n") || !strings.HasSuffix(string(nets.body), wantNets) {
		t.Errorf("netscape export:\n%s", nets.body)
	}
	var pw cookiefile.PlaywrightState
	h.admin("GET", "/sessions/x/cookies?format=playwright", "", "").decode(t, &pw)
	if len(pw.Cookies) != 2 || pw.Cookies[0].Domain != ".example.com" || pw.Cookies[0].Expires != "4070908800" ||
		pw.Cookies[0].SameSite != "Lax" || pw.Cookies[1].Domain != "example.com" || pw.Cookies[1].Expires != "-1" ||
		pw.Cookies[1].SameSite != "Strict" || pw.Origins == nil {
		t.Errorf("playwright export: %+v", pw)
	}
	var js []sessionpool.Cookie
	def := h.admin("GET", "/sessions/x/cookies", "", "") // json by default
	def.decode(t, &js)
	if len(js) != 2 || js[0].HostOnly || !js[1].HostOnly || js[1].SameSite != "Strict" {
		t.Errorf("json export: %+v", js)
	}
	// A retired session's cookies can still be exported.
	h.admin("DELETE", "/sessions/x", "", "")
	if r := h.admin("GET", "/sessions/x/cookies?format=json", "", ""); r.status != http.StatusOK || string(r.body) != string(def.body) {
		t.Errorf("export of the retired session: %d %s", r.status, r.body)
	}
}

// TestAdminPersist: POST /persist writes the pool to data_dir now, and
// reports a store that fails.
func TestAdminPersist(t *testing.T) {
	h := startAdminProxy(t)
	h.addSession(`{"id": "p1", "cookies": [{"name": "k", "value": "v", "domain": "example.com"}]}`)
	h.addSession(`{"id": "p2"}`)
	r := h.admin("POST", "/persist", "", "")
	var res struct {
		Persisted bool `json:"persisted"`
		Sessions  int  `json:"sessions"`
	}
	r.decode(t, &res)
	if r.status != http.StatusOK || !res.Persisted || res.Sessions != 2 {
		t.Fatalf("POST /persist: %d %s", r.status, r.body)
	}
	store, err := sessionpool.NewFileStore(h.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := store.Get(context.Background(), h.cfg.Pool.PersistStateKey)
	if err != nil {
		t.Fatalf("nothing persisted: %v", err)
	}
	for _, w := range []string{`"p1"`, `"p2"`, `"k"`} {
		if !strings.Contains(string(doc), w) {
			t.Errorf("persisted state lacks %s: %.300s", w, doc)
		}
	}

	// A data_dir that is gone: 500 with the store's error. It is put back
	// so that the final persist at shutdown works.
	moved := h.cfg.DataDir + ".moved"
	if err := os.Rename(h.cfg.DataDir, moved); err != nil {
		t.Fatal(err)
	}
	r = h.admin("POST", "/persist", "", "")
	if err := os.Rename(moved, h.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusInternalServerError {
		t.Fatalf("persist into a missing directory: %d %s", r.status, r.body)
	}
	if msg := r.errorText(t); !strings.Contains(msg, "persist") || !strings.Contains(msg, "no such file") {
		t.Errorf("error %q", msg)
	}
}

// TestAdminSessionIDEscaping: ids are taken from the decoded path, and
// answers name them quoted.
func TestAdminSessionIDEscaping(t *testing.T) {
	h := startAdminProxy(t)
	h.addSession(`{"id": "a.b_c-1"}`)
	if r := h.admin("GET", "/sessions/"+url.PathEscape("a.b_c-1")+"/cookies", "", ""); r.status != http.StatusOK || string(r.body) != "[]\n" {
		t.Errorf("export of a.b_c-1: %d %s", r.status, r.body)
	}
	if r := h.admin("GET", "/sessions/a.b_c-1", "", ""); !strings.Contains(string(r.body), `"cookies": [],`) {
		t.Errorf("a session without cookies shows them as %s, want []", r.body)
	}
	r := h.admin("DELETE", "/sessions/"+url.PathEscape(`x"y`), "", "")
	if msg := r.errorText(t); r.status != http.StatusNotFound || msg != fmt.Sprintf("session not held: %q", `x"y`) {
		t.Errorf("DELETE x\"y: %d %q", r.status, msg)
	}
}

// TestAdminSessionFingerprint: a session made by the pool shows the
// configured mode, POST /sessions may set one (random draws a browser),
// a bad one is refused naming the choices, and a session keeps its own
// across a reload to another mode and a restart.
func TestAdminSessionFingerprint(t *testing.T) {
	cfg := testConfig(t)
	cfg.Fingerprint = config.FingerprintChrome
	h := startProxy(t, cfg)
	if s := h.addSession(""); s.Fingerprint != "chrome" {
		t.Errorf("a new session's fingerprint %q, want the configured chrome", s.Fingerprint)
	}
	if s := h.addSession(`{"id": "ff", "fingerprint": "firefox"}`); s.Fingerprint != "firefox" {
		t.Errorf("asked for firefox, got %q", s.Fingerprint)
	}
	if s := h.addSession(`{"fingerprint": "random"}`); !slices.Contains([]string{"chrome", "firefox", "safari", "edge"}, s.Fingerprint) {
		t.Errorf("random gave %q, want one of the browsers", s.Fingerprint)
	}
	r := h.admin("POST", "/sessions", "application/json", `{"fingerprint": "netscape"}`)
	if r.status != http.StatusBadRequest || !strings.Contains(r.errorText(t), `fingerprint must be one of mirror, chrome, firefox, safari, edge, random, go (got "netscape")`) {
		t.Errorf("bad fingerprint: %d %s", r.status, r.body)
	}
	h.stop()
	cfg.Fingerprint = config.FingerprintSafari
	h2 := startProxy(t, cfg)
	var got sessionpool.SessionState
	if status := h2.adminGet("/sessions/ff", "", &got); status != http.StatusOK || got.Fingerprint != "firefox" {
		t.Errorf("after a restart with safari configured: %d, fingerprint %q, want firefox", status, got.Fingerprint)
	}
}

// TestAdminBodyStalls: an admin request whose body stops coming gets 408
// once idle_timeout has passed without a byte, and its connection closed;
// a body sent in pieces (chunked) is read whole.
func TestAdminBodyStalls(t *testing.T) {
	cfg := testConfig(t)
	cfg.IdleTimeout = 300 * time.Millisecond
	h := startProxy(t, cfg)
	addr := strings.TrimPrefix(h.adminURL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "POST /sessions HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "300ms") {
		t.Errorf("stalled body: %d %s, want 408 naming the timeout", resp.StatusCode, body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the connection stayed open after a stalled body: %v", err)
	}

	// A body in pieces, each within the timeout: read, and the session added.
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		for _, part := range []string{`{"id":`, `"slow-body"}`} {
			if _, err := io.WriteString(pw, part); err != nil {
				return
			}
		}
	}()
	req, _ := http.NewRequest(http.MethodPost, h.adminURL+"/sessions", pr)
	req.Header.Set("Content-Type", "application/json")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusCreated {
		t.Errorf("a whole body: %d, want 201", r2.StatusCode)
	}
}

// TestAdminSiteQueryNamesTheSite: ?site= takes a host as POST /sessions'
// site does (its registrable domain, case aside).
func TestAdminSiteQueryNamesTheSite(t *testing.T) {
	h := startAdminProxy(t)
	if r := h.admin(http.MethodPost, "/sessions", "application/json", `{"id": "s1", "site": "www.Example.com"}`); r.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	for _, q := range []string{"example.com", "www.Example.com", "EXAMPLE.COM"} {
		if g := h.admin(http.MethodGet, "/sessions/s1?site="+q, "", ""); g.status != http.StatusOK {
			t.Errorf("GET /sessions/s1?site=%s: %d %s, want 200", q, g.status, g.body)
		}
		var list struct{ Sessions []struct{ ID string } }
		h.admin(http.MethodGet, "/sessions?site="+q, "", "").decode(t, &list)
		if len(list.Sessions) != 1 {
			t.Errorf("GET /sessions?site=%s lists %d sessions, want 1", q, len(list.Sessions))
		}
	}
	if g := h.admin(http.MethodGet, "/sessions/s1?site=other.example", "", ""); g.status != http.StatusNotFound {
		t.Errorf("GET /sessions/s1?site=other.example: %d, want 404", g.status)
	}
}

// TestAdminSiteTooLongToStore: a site whose pool's file name would be too
// long is a bad request (400), not the store failing (503), and the answer
// names no path of the server's.
func TestAdminSiteTooLongToStore(t *testing.T) {
	h := startAdminProxy(t)
	long := strings.Repeat("a", 250) + ".com"
	r := h.admin(http.MethodPost, "/sessions", "application/json", `{"site": "`+long+`"}`)
	if r.status != http.StatusBadRequest || strings.Contains(string(r.body), "/") {
		t.Errorf("POST /sessions with a site of %d bytes: %d %.120s; want 400 naming no path", len(long), r.status, r.body)
	}
}
