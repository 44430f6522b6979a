package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// dashboardIDs are the elements the page fills with live data; the browser
// test asserts on them.
var dashboardIDs = []string{
	"usable", "retired", "requests", "block-rate", "sessions", "sessions-body", "sessions-more",
	"chart", "legend", "spki", "chromium-flag", "ca-pem", "ca-der", "status", "token-form",
}

// adminFetch sends a GET to the admin API and returns the response with its
// body read.
func adminFetch(t *testing.T, h *harness, path, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.adminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("admin GET %s: read body: %v", path, err)
	}
	return resp, string(body)
}

// inlineOf returns the text of the page's only <elem>…</elem>.
func inlineOf(t *testing.T, page, elem string) string {
	t.Helper()
	re := regexp.MustCompile(`(?s)<` + elem + `>(.*?)</` + elem + `>`)
	m := re.FindAllStringSubmatch(page, -1)
	if len(m) != 1 {
		t.Fatalf("page has %d inline <%s> elements, want 1", len(m), elem)
	}
	return m[0][1]
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// TestDashboardPage: GET / serves one self-contained HTML page (no URL of
// another host anywhere, script and style inline and allowed by the CSP by
// hash) holding the elements the live data goes into, and every admin path
// the page fetches or links exists.
func TestDashboardPage(t *testing.T) {
	h := startProxy(t, testConfig(t))
	resp, page := adminFetch(t, h, "/", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d, want 200: %s", resp.StatusCode, page)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}

	for _, id := range dashboardIDs {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("page has no element with id %q", id)
		}
	}
	for _, want := range []string{
		"<!doctype html>", `<html lang="en">`, "<noscript>", `<table id="sessions"`, `<th scope="col">`,
		`<svg id="chart"`, "Trust the CA", "--ignore-certificate-errors-spki-list=",
		`href="ca.pem"`, `href="ca.der"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	// Self-contained: no absolute URL at all, nothing loaded from elsewhere.
	if m := regexp.MustCompile(`(?i)\b(?:https?|wss?|ftp)://`).FindAllString(page, -1); m != nil {
		t.Errorf("page names absolute URLs (%v): it must not load or link anything from another host", m)
	}
	if strings.Contains(page, `<script src`) || strings.Contains(page, `rel="stylesheet"`) {
		t.Error("page still loads its script or style sheet from a separate URL; they must be inline")
	}
	for _, m := range regexp.MustCompile(`(?i)\b(?:src|href|action|xlink:href)\s*=\s*["']?([^"'\s>]*)`).FindAllStringSubmatch(page, -1) {
		ref := m[1]
		if strings.HasPrefix(ref, "//") || (strings.Contains(ref, ":") && !strings.HasPrefix(ref, "data:")) {
			t.Errorf("page refers to %q: not a path on the admin listener", ref)
		}
	}

	// The CSP lets exactly the inline script and style run, and fetches go
	// only to the admin listener itself.
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'none'",
		"script-src " + cspHash(inlineOf(t, page, "script")),
		"style-src " + cspHash(inlineOf(t, page, "style")),
		"connect-src 'self'",
		"frame-ancestors 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}

	// What the script fetches and the page links, relative to /.
	script := inlineOf(t, page, "script")
	for _, path := range []string{"stats", "sessions", "stats/history", "ca.spki", "ca.pem", "ca.der"} {
		if !strings.Contains(script, `'`+path+`'`) && !strings.Contains(page, `href="`+path+`"`) {
			t.Errorf("page neither fetches nor links %q", path)
		}
		if r, body := adminFetch(t, h, "/"+path, ""); r.StatusCode != http.StatusOK {
			t.Errorf("GET /%s, which the page uses, = %d: %s", path, r.StatusCode, body)
		}
	}
}

// TestDashboardHistory: after real requests through the proxy, GET
// /stats/history has the documented JSON shape and counts each request once
// under its outcome, as /stats does.
func TestDashboardHistory(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	tlsOrigin := httptest.NewTLSServer(originMux())
	defer tlsOrigin.Close()
	cfg := testConfig(t)
	cfg.MITM.SkipHosts = []string{"127.0.0.*"} // the HTTPS request is a plain tunnel
	h := startProxy(t, cfg)
	before := time.Now()

	c := h.client("", "")
	for range 3 {
		if resp, _ := get(t, c, origin.URL+"/echo", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /echo = %d", resp.StatusCode)
		}
	}
	for _, code := range []string{"403", "500", "404"} {
		get(t, c, origin.URL+"/status?code="+code, "")
	}
	tc := &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(h.proxyURL),
		TLSClientConfig: &tls.Config{RootCAs: tlsOrigin.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs},
	}}
	if resp, _ := get(t, tc, tlsOrigin.URL+"/echo", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET through a tunnel = %d", resp.StatusCode)
	}
	tc.CloseIdleConnections()

	resp, body := adminFetch(t, h, "/stats/history", "")
	after := time.Now()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /stats/history = %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}

	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &top); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, body)
	}
	for _, k := range []string{"now", "intervalSeconds", "outcomes", "buckets"} {
		if _, ok := top[k]; !ok {
			t.Errorf("no %q in %s", k, body)
		}
	}
	if len(top) != 4 {
		t.Errorf("keys of /stats/history: got %d, want 4", len(top))
	}
	var hist struct {
		Now             time.Time
		IntervalSeconds int
		Outcomes        []string
		Buckets         []struct {
			Start    time.Time        `json:"start"`
			Counts   map[string]int64 `json:"counts"`
			Attempts map[string]int64 `json:"attempts"`
		}
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hist); err != nil {
		t.Fatalf("decode /stats/history: %v", err)
	}
	if hist.Now.Before(before) || hist.Now.After(after) {
		t.Errorf("now = %v, want between %v and %v", hist.Now, before, after)
	}
	if hist.IntervalSeconds != 10 {
		t.Errorf("intervalSeconds = %d, want 10", hist.IntervalSeconds)
	}
	wantOutcomes := []string{"good", "bad", "retire", "none", "error", "rejected", "canceled", "tunnel"}
	if strings.Join(hist.Outcomes, ",") != strings.Join(wantOutcomes, ",") {
		t.Errorf("outcomes = %v, want %v", hist.Outcomes, wantOutcomes)
	}
	if len(hist.Buckets) != 90 {
		t.Fatalf("%d buckets, want 90 (15 minutes of 10 s)", len(hist.Buckets))
	}
	newest := hist.Buckets[len(hist.Buckets)-1].Start
	if hist.Now.Before(newest) || !hist.Now.Before(newest.Add(10*time.Second)) {
		t.Errorf("newest bucket starts %v: it does not hold now %v", newest, hist.Now)
	}
	sums, attempts := make(map[string]int64), make(map[string]int64)
	for i, b := range hist.Buckets {
		if i > 0 && b.Start.Sub(hist.Buckets[i-1].Start) != 10*time.Second {
			t.Fatalf("bucket %d starts %v, after %v: not 10 s apart, oldest first", i, b.Start, hist.Buckets[i-1].Start)
		}
		if len(b.Counts) != len(wantOutcomes) {
			t.Errorf("bucket %d counts %d outcomes, want %d", i, len(b.Counts), len(wantOutcomes))
		}
		for o, n := range b.Counts {
			sums[o] += n
		}
		if len(b.Attempts) != 5 {
			t.Errorf("bucket %d counts attempts %v, want good, bad, retire, none and error", i, b.Attempts)
		}
		for o, n := range b.Attempts {
			attempts[o] += n
		}
	}
	// Every attempt: the 403 three times (two retries), the tunnel never.
	if want := map[string]int64{"good": 3, "retire": 3, "bad": 1, "none": 1, "error": 0}; !maps.Equal(attempts, want) {
		t.Errorf("history counts attempts %v, want %v", attempts, want)
	}
	want := map[string]int64{"good": 3, "retire": 1, "bad": 1, "none": 1, "tunnel": 1}
	for _, o := range wantOutcomes {
		if sums[o] != want[o] {
			t.Errorf("history counts %d %q, want %d (all: %v)", sums[o], o, want[o], sums)
		}
	}
	var stats Stats
	h.adminGet("/stats", "", &stats)
	for _, o := range wantOutcomes {
		if sums[o] != stats.ByOutcome[o] {
			t.Errorf("history counts %d %q, /stats %d", sums[o], o, stats.ByOutcome[o])
		}
		if attempts[o] != stats.Attempts.ByOutcome[o] {
			t.Errorf("history counts %d %q attempts, /stats %d", attempts[o], o, stats.Attempts.ByOutcome[o])
		}
	}
}

// TestDashboardAdminToken: with admin_token set, the page itself (which
// holds no data) loads without the token, since a browser cannot send a
// bearer header when it navigates; every endpoint it fetches still wants it.
func TestDashboardAdminToken(t *testing.T) {
	cfg := testConfig(t)
	cfg.AdminToken = "s3cret-token"
	h := startProxy(t, cfg)

	resp, page := adminFetch(t, h, "/", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="token-form"`) {
		t.Errorf("GET / without the token = %d, want 200 and the page (with its token form)", resp.StatusCode)
	}
	if strings.Contains(page, cfg.AdminToken) {
		t.Error("the page contains the admin token")
	}
	for _, path := range []string{"/stats/history", "/stats", "/sessions", "/ca.spki", "/ca.pem", "/index.html", "//stats"} {
		if r, _ := adminFetch(t, h, path, ""); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token = %d, want 401", path, r.StatusCode)
		}
	}
	if r, body := adminFetch(t, h, "/stats/history", cfg.AdminToken); r.StatusCode != http.StatusOK {
		t.Errorf("GET /stats/history with the token = %d: %s", r.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, h.adminURL+"/", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST / without the token = %d, want 401: only GET / is open", r.StatusCode)
	}
}

// TestBuildDashboard: assets that cannot make a page are reported with
// errDashboard, never served half-built.
func TestBuildDashboard(t *testing.T) {
	good := fstest.MapFS{
		"dashboard/index.html": {Data: []byte("<html><head>" + dashboardStyleTag + "</head><body>" + dashboardScriptTag + "</body></html>")},
		"dashboard/style.css":  {Data: []byte("body{color:red}")},
		"dashboard/app.js":     {Data: []byte("let x = 1;")},
	}
	with := func(name, data string) fstest.MapFS {
		m := fstest.MapFS{}
		for k, v := range good {
			m[k] = v
		}
		if data == "" {
			delete(m, name)
		} else {
			m[name] = &fstest.MapFile{Data: []byte(data)}
		}
		return m
	}
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		wantErr string
	}{
		{"complete", good, ""},
		{"no page", with("dashboard/index.html", ""), "read index.html"},
		{"no script", with("dashboard/app.js", ""), "read app.js"},
		{"no style sheet", with("dashboard/style.css", ""), "read style.css"},
		{"page without the script tag", with("dashboard/index.html", "<html>"+dashboardStyleTag+"</html>"), dashboardScriptTag},
		{"page with the style tag twice", with("dashboard/index.html", dashboardStyleTag+dashboardStyleTag+dashboardScriptTag), dashboardStyleTag},
		{"script that would end the script element", with("dashboard/app.js", "x = '</SCRIPT>';"), "app.js contains"},
		{"style sheet that would end the style element", with("dashboard/style.css", "/* </style> */"), "style.css contains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := buildDashboard(tt.fsys)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("buildDashboard: %v", err)
				}
				want := "<html><head><style>body{color:red}</style></head><body><script>let x = 1;</script></body></html>"
				if string(p.html) != want {
					t.Errorf("page = %q, want %q", p.html, want)
				}
				if !strings.Contains(p.csp, "script-src "+cspHash("let x = 1;")) || !strings.Contains(p.csp, "style-src "+cspHash("body{color:red}")) {
					t.Errorf("CSP %q does not allow the inline script and style by hash", p.csp)
				}
				return
			}
			if !errors.Is(err, errDashboard) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("buildDashboard error = %v, want errDashboard mentioning %q", err, tt.wantErr)
			}
		})
	}
}
