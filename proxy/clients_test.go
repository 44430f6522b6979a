package proxy

// Real clients through the proxy: Scrapy (Debian python3-scrapy), headless
// Chromium (Debian chromium, driven with chromedp) and curl. .ci/run
// installs the three packages; a test whose client is missing fails and
// names the package to install. Under go test -short they are skipped.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/sessionproxy/sessionproxy/proxy/record"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// requireProgram returns the path of a client program, or fails the test
// naming the Debian package that provides it. Under go test -short, the
// quick mode that runs no external program, it skips the test instead,
// naming the program.
func requireProgram(t *testing.T, name, debianPackage string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s (Debian package %s): skipped under -short", name, debianPackage)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v): install the Debian package %s (apt-get install -y %s); testdata/test.sh installs it",
			name, err, debianPackage, debianPackage)
	}
	return path
}

// clientEnv is the environment for a client process: this process's,
// without any proxy settings of the machine, plus extra.
func clientEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(name) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// lockedBuffer is a bytes.Buffer safe for the writers of a child process
// and a reader in the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// poolSession returns the session id holds in the pool's state, and whether
// it is held.
func poolSession(ps sessionpool.PoolState, id string) (sessionpool.SessionState, bool) {
	for _, s := range ps.Sessions {
		if s.ID == id {
			return s, true
		}
	}
	return sessionpool.SessionState{}, false
}

// cookieValue returns the value of the cookie name in a session's jar.
func cookieValue(ss sessionpool.SessionState, name string) (string, bool) {
	for _, c := range ss.Cookies {
		if c.Name == name {
			return c.Value, true
		}
	}
	return "", false
}

// sessionIDs lists the ids of the sessions in a pool state, for messages.
func sessionIDs(ps sessionpool.PoolState) []string {
	ids := make([]string, 0, len(ps.Sessions))
	for _, s := range ps.Sessions {
		ids = append(ids, fmt.Sprintf("%s(uses %d, retired %v)", s.ID, s.UsageCount, s.Retired))
	}
	return ids
}

// waitCtx is a context that ends after d or with the test.
func waitCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// runChild runs cmd (made with exec.CommandContext) and fails the test with
// its output when it does not exit 0 in time.
func runChild(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n--- output ---\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// decodeJSONFile decodes a JSON file into v.
func decodeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
}

// testdataClients is where the client scripts live.
func testdataClients(name string) string {
	return filepath.Join("testdata", "clients", name)
}

// siteHit is one request an origin of these tests served.
type siteHit struct {
	path   string
	cookie string // the Cookie header that arrived
	status int
}

// hitLog records an origin's requests. Safe for concurrent use.
type hitLog struct {
	mu   sync.Mutex
	hits []siteHit
}

func (l *hitLog) add(h siteHit) {
	l.mu.Lock()
	l.hits = append(l.hits, h)
	l.mu.Unlock()
}

func (l *hitLog) all() []siteHit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.hits)
}

// of returns the hits of one path, in order.
func (l *hitLog) of(path string) []siteHit {
	var out []siteHit
	for _, h := range l.all() {
		if h.path == path {
			out = append(out, h)
		}
	}
	return out
}

// scrapySite is a small multi-page site for a crawler:
//
//	/login    sets the cookie sid=login-N (N counts logins) and links to /p/1
//	/p/1../p/5 link to their neighbours and show the Cookie that arrived in #cookie
//	/blocked  answers the first request 403 (setting flag=blocked-here on
//	          the session that got it), later ones 200
type scrapySite struct {
	log hitLog

	mu      sync.Mutex // guards the counters
	logins  int
	blocked int
}

const scrapyPages = 5

func (s *scrapySite) handler() http.Handler {
	page := func(w http.ResponseWriter, r *http.Request, status int, links ...string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<!doctype html><title>%s</title><p>cookie: <span id=\"cookie\">%s</span></p>\n",
			html.EscapeString(r.URL.Path), html.EscapeString(r.Header.Get("Cookie")))
		for _, l := range links {
			fmt.Fprintf(w, "<a href=\"%s\">%s</a>\n", l, l)
		}
		s.log.add(siteHit{path: r.URL.Path, cookie: r.Header.Get("Cookie"), status: status})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.logins++
		n := s.logins
		s.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: fmt.Sprintf("login-%d", n), Path: "/", HttpOnly: true})
		page(w, r, http.StatusOK, "/p/1")
	})
	mux.HandleFunc("GET /p/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 1 || n > scrapyPages {
			page(w, r, http.StatusNotFound)
			return
		}
		var links []string
		if n > 1 {
			links = append(links, fmt.Sprintf("/p/%d", n-1))
		}
		if n < scrapyPages {
			links = append(links, fmt.Sprintf("/p/%d", n+1))
		}
		page(w, r, http.StatusOK, links...)
	})
	mux.HandleFunc("GET /blocked", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.blocked++
		first := s.blocked == 1
		s.mu.Unlock()
		if first {
			http.SetCookie(w, &http.Cookie{Name: "flag", Value: "blocked-here", Path: "/"})
			page(w, r, http.StatusForbidden)
			return
		}
		page(w, r, http.StatusOK)
	})
	return mux
}

// scrapyItem is what the spider (testdata/clients/spider.py) wrote for one
// response.
type scrapyItem struct {
	URL        string `json:"url"`
	Path       string `json:"path"`
	Status     int    `json:"status"`
	Session    string `json:"session"`
	Retries    string `json:"retries"`
	Rule       string `json:"rule"`
	CookieSeen string `json:"cookieSeen"`
	SentCookie string `json:"sentCookie"`
	Body       string `json:"body"`
}

// requireScrapy fails the test unless Debian's Scrapy is importable by
// /usr/bin/python3 (the package installs for that interpreter only).
func requireScrapy(t *testing.T) string {
	t.Helper()
	py := requireProgram(t, "/usr/bin/python3", "python3-scrapy")
	ctx := waitCtx(t, 30*time.Second)
	out, err := exec.CommandContext(ctx, py, "-c", "import scrapy; print(scrapy.__version__)").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import scrapy (%v): install the Debian package python3-scrapy "+
			"(apt-get install -y python3-scrapy); testdata/test.sh installs it\n%s", py, err, out)
	}
	t.Logf("Scrapy %s", strings.TrimSpace(string(out)))
	return py
}

// runSpider runs the Scrapy spider testdata/clients/NAME with -a base=BASE
// through the proxy of h (http_proxy, https_proxy and HTTP_PROXY), with
// env added to the environment, and returns the JSON file of its items and
// its log.
func runSpider(t *testing.T, py string, h *harness, name, base string, env ...string) (outFile, crawlLog string) {
	t.Helper()
	spider, err := filepath.Abs(testdataClients(name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	outFile = filepath.Join(dir, "out.json")
	cmd := exec.CommandContext(waitCtx(t, 90*time.Second), py, "-m", "scrapy", "runspider", spider,
		"-a", "base="+base, "-O", outFile)
	cmd.Dir = dir
	proxyURL := h.proxyURL.String()
	cmd.Env = clientEnv(append([]string{"HTTP_PROXY=" + proxyURL, "http_proxy=" + proxyURL, "https_proxy=" + proxyURL}, env...)...)
	cmd.WaitDelay = 5 * time.Second
	return outFile, runChild(t, cmd)
}

// TestScrapyThroughProxy crawls a multi-page site with Scrapy through the
// proxy (HTTP_PROXY). Scrapy keeps no cookies (COOKIES_ENABLED = False):
// the pages pinned to session scrapy-a see the login cookie only because
// the proxy keeps it in the session's jar. An unpinned request that the
// origin blocks (403) is retried by the proxy on a fresh session, and the
// blocked session is retired.
func TestScrapyThroughProxy(t *testing.T) {
	py := requireScrapy(t)
	site := &scrapySite{}
	origin := httptest.NewServer(site.handler())
	defer origin.Close()
	h := startProxy(t, testConfig(t))

	start := time.Now()
	outFile, crawlLog := runSpider(t, py, h, "spider.py", origin.URL)
	t.Logf("scrapy ran in %v", time.Since(start).Round(time.Millisecond))
	defer func() {
		if t.Failed() {
			t.Logf("--- scrapy output ---\n%s", crawlLog)
		}
	}()

	var items []scrapyItem
	decodeJSONFile(t, outFile, &items)
	byPath := make(map[string]scrapyItem)
	for _, it := range items {
		if _, dup := byPath[it.Path]; dup {
			t.Errorf("Scrapy saw %s twice", it.Path)
		}
		byPath[it.Path] = it
	}
	pinned := []string{"/login"}
	for n := 1; n <= scrapyPages; n++ {
		pinned = append(pinned, fmt.Sprintf("/p/%d", n))
	}
	if want := len(pinned) + 1; len(items) != want {
		t.Errorf("Scrapy wrote %d items, want %d (login, %d pages, blocked): %+v", len(items), want, scrapyPages, items)
	}

	// Scrapy sent no cookie of its own, ever.
	for _, it := range items {
		if it.SentCookie != "" {
			t.Errorf("Scrapy sent Cookie %q to %s itself: the spider must leave cookies to the proxy", it.SentCookie, it.Path)
		}
	}

	// Pinned: every response came from scrapy-a, first time, and every
	// page after the login saw the login cookie, which Scrapy never kept.
	site.mu.Lock()
	logins := site.logins
	site.mu.Unlock()
	if logins != 1 {
		t.Errorf("logins = %d, want 1", logins)
	}
	for _, path := range pinned {
		it, ok := byPath[path]
		if !ok {
			t.Errorf("Scrapy never got %s", path)
			continue
		}
		if it.Status != http.StatusOK || it.Session != "scrapy-a" || it.Retries != "0" {
			t.Errorf("%s: status %d, X-Session-Id %q, X-Session-Retries %q; want 200 from scrapy-a, no retry",
				path, it.Status, it.Session, it.Retries)
		}
		hits := site.log.of(path)
		if len(hits) != 1 {
			t.Errorf("origin served %s %d times, want once", path, len(hits))
			continue
		}
		wantCookie := "sid=login-1"
		if path == "/login" {
			wantCookie = "" // Scrapy sends none, and the session had none yet
		}
		if hits[0].cookie != wantCookie {
			t.Errorf("origin saw Cookie %q on %s, want %q", hits[0].cookie, path, wantCookie)
		}
		if path != "/login" && it.CookieSeen != wantCookie {
			t.Errorf("page %s told Scrapy it saw Cookie %q, want %q", path, it.CookieSeen, wantCookie)
		}
	}

	// Unpinned and blocked: the proxy retried on a fresh session.
	blocked, ok := byPath["/blocked"]
	if !ok {
		t.Fatalf("Scrapy never got /blocked: %+v", items)
	}
	if blocked.Status != http.StatusOK || blocked.Retries != "1" {
		t.Errorf("/blocked: status %d, X-Session-Retries %q; want 200 after 1 retry", blocked.Status, blocked.Retries)
	}
	if blocked.Session == "" || blocked.Session == "scrapy-a" {
		t.Errorf("/blocked came from session %q, want a session of the pool's own", blocked.Session)
	}
	bh := site.log.of("/blocked")
	if len(bh) != 2 || bh[0].status != http.StatusForbidden || bh[1].status != http.StatusOK {
		t.Fatalf("origin's /blocked hits = %+v, want a 403 then a 200", bh)
	}
	for i, hit := range bh {
		if hit.cookie != "" {
			t.Errorf("/blocked attempt %d carried Cookie %q: another session's cookies leaked", i+1, hit.cookie)
		}
	}

	// The pool: scrapy-a used once per pinned request and holding the login
	// cookie; the blocked session retired with the cookie of its 403; the
	// retry's session usable.
	var ps sessionpool.PoolState
	if code := h.adminGet("/sessions", "", &ps); code != http.StatusOK {
		t.Fatalf("GET /sessions: %d", code)
	}
	if len(ps.Sessions) != 3 || ps.RetiredSessionsCount != 1 {
		t.Errorf("pool holds %v (retired count %d), want scrapy-a, the blocked one (retired) and the retry's",
			sessionIDs(ps), ps.RetiredSessionsCount)
	}
	a, ok := poolSession(ps, "scrapy-a")
	if !ok {
		t.Fatalf("scrapy-a not in the pool: %v", sessionIDs(ps))
	}
	if a.Retired || a.UsageCount != len(pinned) {
		t.Errorf("scrapy-a: retired %v, %d uses; want usable with %d uses", a.Retired, a.UsageCount, len(pinned))
	}
	if v, _ := cookieValue(a, "sid"); v != "login-1" {
		t.Errorf("scrapy-a's jar has sid=%q, want login-1", v)
	}
	retry, ok := poolSession(ps, blocked.Session)
	if !ok || retry.Retired || len(retry.Cookies) != 0 {
		t.Errorf("the retry's session %q: held %v, %+v; want usable and without cookies", blocked.Session, ok, retry)
	}
	var retired []sessionpool.SessionState
	for _, s := range ps.Sessions {
		if s.Retired {
			retired = append(retired, s)
		}
	}
	if len(retired) != 1 {
		t.Fatalf("retired sessions: %v, want exactly the blocked one", sessionIDs(ps))
	}
	if v, _ := cookieValue(retired[0], "flag"); v != "blocked-here" || retired[0].ID == blocked.Session || retired[0].ID == "scrapy-a" {
		t.Errorf("retired session %q has flag=%q; want the session that got the 403 (flag=blocked-here)", retired[0].ID, v)
	}
	var st Stats
	h.adminGet("/stats", "", &st)
	if st.Retries != 1 || st.Requests != int64(len(pinned)+1) {
		t.Errorf("stats: %d requests, %d retries; want %d and 1", st.Requests, st.Retries, len(pinned)+1)
	}
}

// pageSite is an HTTPS page with subresources for a browser:
//
//	/           the page; sets visit=vN (N counts the visits without it)
//	/style.css  colours #css rgb(10, 200, 30)
//	/app.js     sets the title and #js, then fetches /api/data into #xhr
//	/img.png    a 24x16 PNG
//	/api/data   {"value": "xhr-ok"}
//
// Every response says Cache-Control: no-store, and every request is
// recorded with the Cookie that came with it.
type pageSite struct {
	log hitLog

	mu     sync.Mutex // guards visits
	visits int
}

// pagePaths are the requests one load of the page makes.
var pagePaths = []string{"/", "/style.css", "/app.js", "/img.png", "/api/data"}

const pageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/style.css">
<script src="/app.js" defer></script>
</head><body>
<h1 id="css">styled by /style.css</h1>
<p id="js">the script did not run</p>
<p id="xhr">no fetch yet</p>
<img id="img" src="/img.png" alt="pixels">
</body></html>
`

const pageJS = `document.title = 'page-ok';
document.getElementById('js').textContent = 'js-ok';
fetch('/api/data')
  .then(r => r.json())
  .then(d => { document.getElementById('xhr').textContent = d.value; })
  .catch(e => { document.getElementById('xhr').textContent = 'fetch failed: ' + e; });
`

func (s *pageSite) handler(t *testing.T) http.Handler {
	var img bytes.Buffer
	m := image.NewRGBA(image.Rect(0, 0, 24, 16))
	for y := range 16 {
		for x := range 24 {
			m.Set(x, y, color.RGBA{uint8(x * 10), uint8(y * 15), 200, 255})
		}
	}
	if err := png.Encode(&img, m); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	static := map[string]struct {
		ctype string
		body  []byte
	}{
		"/style.css": {"text/css", []byte("#css { color: rgb(10, 200, 30); }\n")},
		"/app.js":    {"text/javascript", []byte(pageJS)},
		"/img.png":   {"image/png", img.Bytes()},
		"/api/data":  {"application/json", []byte(`{"value": "xhr-ok"}` + "\n")},
	}
	for path, f := range static {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			s.log.add(siteHit{path: r.URL.Path, cookie: r.Header.Get("Cookie"), status: http.StatusOK})
			w.Header().Set("Content-Type", f.ctype)
			w.Header().Set("Cache-Control", "no-store")
			w.Write(f.body)
		})
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s.log.add(siteHit{path: r.URL.Path, cookie: r.Header.Get("Cookie"), status: http.StatusOK})
		if _, err := r.Cookie("visit"); err != nil {
			s.mu.Lock()
			s.visits++
			n := s.visits
			s.mu.Unlock()
			http.SetCookie(w, &http.Cookie{Name: "visit", Value: fmt.Sprintf("v%d", n), Path: "/", Secure: true})
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, pageHTML)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.log.add(siteHit{path: r.URL.Path, cookie: r.Header.Get("Cookie"), status: http.StatusNotFound})
		http.NotFound(w, r)
	})
	return mux
}

// chromiumTabUserAgent is the User-Agent of the tabs startChromium opens.
const chromiumTabUserAgent = "sessionproxy-clients-test HeadlessChromium"

// browser is one headless Chromium using the proxy.
type browser struct {
	ctx context.Context // the browser's chromedp context (no deadline); it ends with the test
}

// startChromium starts headless Chromium (Debian chromium) with the proxy as
// its proxy for everything, loopback included, except the admin listener.
// With trustCA it trusts the proxy's CA through
// --ignore-certificate-errors-spki-list and nothing else. The browser keeps
// no cookies (content setting "block"), so every cookie an origin sees comes
// from the proxy's session. It stops when the test ends.
func startChromium(t *testing.T, h *harness, trustCA bool) *browser {
	t.Helper()
	bin := requireProgram(t, "chromium", "chromium")
	profile := t.TempDir()
	if err := os.MkdirAll(filepath.Join(profile, "Default"), 0o700); err != nil {
		t.Fatal(err)
	}
	prefs := `{"profile": {"default_content_setting_values": {"cookies": 2}}}`
	if err := os.WriteFile(filepath.Join(profile, "Default", "Preferences"), []byte(prefs), 0o600); err != nil {
		t.Fatal(err)
	}
	adminHost := strings.TrimPrefix(h.adminURL, "http://")
	out := &lockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
		chromedp.ProxyServer(h.proxyURL.String()),
		// Loopback goes through the proxy too; the admin API does not, nor
		// the browser's own calls to Google (time, updates, accounts).
		chromedp.Flag("proxy-bypass-list", "<-loopback>;"+adminHost+";*.google.com;*.googleapis.com;*.gstatic.com;*.gvt1.com"),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,NetworkTimeServiceQuerying,OptimizationHints,MediaRouter"),
		chromedp.Env(clientEnv()...),
		chromedp.NoInheritEnv,
		chromedp.CombinedOutput(out),
	)
	if trustCA {
		opts = append(opts, chromedp.Flag("ignore-certificate-errors-spki-list", h.srv.CA().SPKIHash()))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(func(string, ...any) {}),
		chromedp.WithErrorf(func(format string, args ...any) { fmt.Fprintf(out, "chromedp: "+format+"\n", args...) }))
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the process to end
		if t.Failed() {
			t.Logf("--- chromium output ---\n%s", out.String())
		}
	})
	start := time.Now()
	// Start the browser, and give the tab a User-Agent of its own: with
	// affinity "client" a client is its address and User-Agent, so the
	// browser's own background requests (same address, Chromium's
	// User-Agent) are another client and never share the page's session.
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride,
		emulation.SetUserAgentOverrideParams{UserAgent: chromiumTabUserAgent}); err != nil {
		t.Fatalf("start %s: %v\n%s", bin, err, out.String())
	}
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))
	return &browser{ctx: ctx}
}

// within returns a context of the browser that ends after d.
func (b *browser) within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	t.Cleanup(cancel)
	return ctx
}

// headerValue reads a header from CDP's headers (names as sent: any case).
func headerValue(hs network.Headers, name string) string {
	for k, v := range hs {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// pageView is what the loaded page shows.
type pageView struct {
	Title    string `json:"title"`
	JS       string `json:"js"`
	XHR      string `json:"xhr"`
	Color    string `json:"color"`
	ImgWidth int    `json:"imgWidth"`
	Cookie   string `json:"cookie"`
}

// TestChromiumThroughProxy loads an HTTPS page with a stylesheet, a script,
// an image and a fetch in headless Chromium through the proxy, with
// affinity: client. The browser trusts the proxy's CA only through the SPKI
// flag (without it the page fails with a certificate error). The whole
// page goes out as one session: every response carries its id, the origin
// sees that session's cookie on every subresource though the browser keeps
// no cookies, and the pool counts one use per request. Then the same
// browser opens the dashboard and it shows live data.
func TestChromiumThroughProxy(t *testing.T) {
	site := &pageSite{}
	origin, originCA := tlsOriginWithCA(t, site.handler(t))
	cfg := testConfig(t)
	cfg.Affinity = "client"
	cfg.AdminToken = "browser-admin-token-51c2"
	caFile := filepath.Join(t.TempDir(), "origin-ca.pem")
	if err := os.WriteFile(caFile, originCA, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.MITM.UpstreamCA = []string{caFile}
	h := startProxy(t, cfg)
	b := startChromium(t, h, true)

	var sessionID string
	t.Run("page", func(t *testing.T) {
		ctx := b.within(t, 20*time.Second)
		responses := chromedp.Events(ctx, network.ResponseReceived)
		if err := chromedp.Do(ctx, chromedp.Navigate(origin.URL+"/")); err != nil {
			t.Fatalf("navigate %s: %v", origin.URL, err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
			`document.getElementById('xhr').textContent !== 'no fetch yet' && document.getElementById('img').complete`,
			chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			t.Fatalf("the page did not finish loading: %v", err)
		}
		view, err := chromedp.Run(ctx, chromedp.Evaluate[pageView](`({
			title: document.title,
			js: document.getElementById('js').textContent,
			xhr: document.getElementById('xhr').textContent,
			color: getComputedStyle(document.getElementById('css')).color,
			imgWidth: document.getElementById('img').naturalWidth,
			cookie: document.cookie,
		})`))
		if err != nil {
			t.Fatal(err)
		}
		// Cookie is document.cookie: empty, the browser keeps no cookie.
		want := pageView{Title: "page-ok", JS: "js-ok", XHR: "xhr-ok", Color: "rgb(10, 200, 30)", ImgWidth: 24}
		if view != want {
			t.Errorf("page shows %+v, want %+v", view, want)
		}

		// Every response the browser got from the origin, with the
		// session the proxy named on it.
		sessions := make(map[string]string) // path -> X-Session-Id
		for ev, err := range responses {
			if err != nil {
				t.Fatalf("responses seen %v, then: %v", sessions, err)
			}
			path, ok := strings.CutPrefix(ev.Response.URL, origin.URL)
			if !ok {
				continue
			}
			if ev.Response.Status != http.StatusOK {
				t.Errorf("%s: status %d", path, ev.Response.Status)
			}
			sessions[path] = headerValue(ev.Response.Headers, "X-Session-Id")
			if len(sessions) == len(pagePaths) {
				break
			}
		}
		sessionID = sessions["/"]
		if sessionID == "" {
			t.Fatalf("the page's response carried no X-Session-Id: %v", sessions)
		}
		for _, p := range pagePaths {
			if got, ok := sessions[p]; !ok || got != sessionID {
				t.Errorf("%s came from session %q (seen %v), want %q like the page", p, got, ok, sessionID)
			}
		}

		// The origin: each resource once, the page's cookie on every
		// subresource. The browser itself holds no cookie, so it was the
		// session's jar that sent it.
		hits := site.log.all()
		var paths []string
		for _, hit := range hits {
			paths = append(paths, hit.path)
		}
		if !sameElements(paths, pagePaths) {
			t.Errorf("origin served %v, want each of %v once", paths, pagePaths)
		}
		for _, hit := range hits {
			want := "visit=v1"
			if hit.path == "/" {
				want = ""
			}
			if hit.cookie != want {
				t.Errorf("origin saw Cookie %q on %s, want %q", hit.cookie, hit.path, want)
			}
		}
		jar, err := chromedp.Call(ctx, storage.GetCookies, storage.GetCookiesParams{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range jar.Cookies {
			t.Errorf("the browser kept cookie %s=%s (%s): the test wants the proxy to be the only jar", c.Name, c.Value, c.Domain)
		}

		// The pool: the page's session used once per request and holding
		// the page's cookie; no other session ever got it.
		ps := h.pool().State()
		ss, ok := poolSession(ps, sessionID)
		if !ok {
			t.Fatalf("pool holds %v, not the page's %s", sessionIDs(ps), sessionID)
		}
		if ss.UsageCount != len(pagePaths) || ss.Retired {
			t.Errorf("session %s: %d uses, retired %v; want %d uses, one per request of the page",
				ss.ID, ss.UsageCount, ss.Retired, len(pagePaths))
		}
		if v, _ := cookieValue(ss, "visit"); v != "v1" {
			t.Errorf("session's jar has visit=%q, want v1", v)
		}
		for _, other := range ps.Sessions {
			if _, has := cookieValue(other, "visit"); has && other.ID != sessionID {
				t.Errorf("session %s also holds the page's cookie: the page was split across sessions", other.ID)
			}
		}
		if len(ps.Sessions) != 1 {
			t.Logf("sessions held (the others are the browser's own traffic): %v", sessionIDs(ps))
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		if sessionID == "" {
			t.Fatal("no session from the page load to look for")
		}
		checkDashboardInBrowser(t, h, b, sessionID)
	})

	t.Run("onboarding", func(t *testing.T) {
		checkOnboardingInBrowser(t, h, b)
	})

	t.Run("without-spki-flag", func(t *testing.T) {
		before := len(site.log.all())
		nb := startChromium(t, h, false)
		ctx := nb.within(t, 20*time.Second)
		err := chromedp.Do(ctx, chromedp.Navigate(origin.URL+"/"))
		if err == nil || !strings.Contains(err.Error(), "ERR_CERT_AUTHORITY_INVALID") {
			t.Errorf("navigate without the SPKI flag: %v, want net::ERR_CERT_AUTHORITY_INVALID", err)
		}
		if after := len(site.log.all()); after != before {
			t.Errorf("origin served %d requests to a browser that refused the proxy's certificate", after-before)
		}
	})
}

// sameElements reports whether got holds exactly the elements of want,
// each as often, in any order.
func sameElements(got, want []string) bool {
	a, b := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// checkDashboardInBrowser opens the admin listener's dashboard in b. The
// admin API wants h.cfg.AdminToken: the page first asks for it and shows no
// data; once it is typed into the page's form, the page fetches the live
// data. The test waits until #requests shows the proxy's count, checks that
// the page names sessionID, that the block rate counts a block a retry hid
// (over attempts, not requests), and that a screenshot of it and of its
// chart is not blank.
func checkDashboardInBrowser(t *testing.T, h *harness, b *browser, sessionID string) {
	blocking := newBlockingOrigin(1) // a 403 the default rules retry: the client sees a 200
	defer blocking.Close()
	if resp, body := get(t, h.client("", ""), blocking.URL+"/page", ""); resp.StatusCode != http.StatusOK ||
		resp.Header.Get("X-Session-Retries") != "1" {
		t.Fatalf("blocked page: status %d after %q retries: %s; want 200 after 1", resp.StatusCode, resp.Header.Get("X-Session-Retries"), body)
	}
	ctx := b.within(t, 20*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(h.adminURL+"/")); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	for _, id := range []string{"usable", "retired", "requests", "block-rate", "sessions", "chart"} {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#`+id+`').length`))
		if err != nil || n != 1 {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
			t.Fatalf("dashboard has %d elements #%s (%v); page:\n%.2000s", n, id, err, html)
		}
	}

	// Without the token: the form, and no data.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.getElementById('token-form').hidden`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the dashboard never asked for the admin token: %v", err)
	}
	if shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("requests"))); err != nil || strings.ContainsAny(shown, "0123456789") {
		t.Errorf("#requests shows %q (%v) before the token was given", shown, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token-input"), h.cfg.AdminToken),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
	); err != nil {
		t.Fatalf("give the dashboard the token: %v", err)
	}

	requests, err := chromedp.Run(ctx, chromedp.Poll[int](
		`parseInt(document.getElementById('requests').textContent.replace(/[^0-9]/g, ''), 10) || 0`,
		chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("#requests never showed a count above 0: %v; page text:\n%.2000s", err, shown)
	}
	if want := int(h.srv.Stats().Requests); requests != want {
		t.Errorf("#requests shows %d, want the proxy's %d", requests, want)
	}
	if usable, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("usable"))); err != nil ||
		strings.TrimSpace(usable) != strconv.Itoa(h.pool().UsableSessionsCount()) {
		t.Errorf("#usable shows %q (%v), want the pool's %d", usable, err, h.pool().UsableSessionsCount())
	}
	attempts := h.srv.Stats().Attempts.ByOutcome
	var all int64
	for _, n := range attempts {
		all += n
	}
	wantRate := fmt.Sprintf("%d bad + retire of %d attempts", attempts["bad"]+attempts["retire"], all)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`document.getElementById('block-rate-sub').textContent.includes(`+strconv.Quote(wantRate)+`)`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil || attempts["retire"] < 1 {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('block-rate-sub').textContent`))
		t.Errorf("#block-rate-sub shows %q (%v), want it to say %q (the proxy's attempts: %v)", shown, err, wantRate, attempts)
	}
	text, err := chromedp.Run(ctx, chromedp.Poll[string](
		`document.body.innerText.includes(`+strconv.Quote(sessionID)+`) ? document.body.innerText : ''`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		text, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Errorf("the dashboard never named session %s: %v; page text:\n%.2000s", sessionID, err, text)
	}
	if shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('sessions-body').innerText`)); err != nil ||
		!strings.Contains(shown, sessionID) || !strings.Contains(shown, originSite) {
		t.Errorf("the sessions table does not show session %s with its site %s (%v):\n%.2000s", sessionID, originSite, err, shown)
	}

	// The request log: the blocked page's request with both its attempts,
	// and the host filter narrowing the table to it.
	blockedHost := strings.TrimPrefix(blocking.URL, "http://")
	blockedHost = blockedHost[:strings.LastIndexByte(blockedHost, ':')]
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`document.getElementById('request-log-body').innerText.includes('GET '+`+strconv.Quote(blockedHost)+`+'/page')`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('request-log').innerText`))
		t.Errorf("the request log never showed GET %s/page: %v; table:\n%.2000s", blockedHost, err, shown)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("filter-status"), "404")); err != nil {
		t.Fatalf("type a filter: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`document.getElementById('request-log-body').innerText.includes('No request matches the filters.')`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('request-log').innerText`))
		t.Errorf("status filter 404 still lists requests: %v; table:\n%.2000s", err, shown)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const e = document.getElementById('filter-status'); e.value = ''; return true; })()`)); err != nil {
		t.Fatalf("clear the status filter: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("filter-rule"), "blocked-status")); err != nil {
		t.Fatalf("type a filter: %v", err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Poll[string](
		`(() => { const t = document.getElementById('request-log-body').innerText; return t.includes('/page') && t.includes('403 retire (blocked-status)') ? t : ''; })()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Errorf("rule filter blocked-status does not show the blocked page with its retired attempt: %v; table:\n%.2000s", err, rows)
	}
	logShot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#request-log")))
	if err != nil {
		t.Fatal(err)
	}
	if ls := pictureStats(t, logShot); ls.width < 300 || ls.colours < 8 {
		t.Errorf("request log screenshot looks empty: %+v", ls)
	}

	full, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	chart, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#chart")))
	if err != nil {
		t.Fatal(err)
	}
	for name, buf := range map[string][]byte{"dashboard.png": full, "chart.png": chart, "requests.png": logShot} {
		keepScreenshot(t, name, buf)
	}
	fs := pictureStats(t, full)
	t.Logf("screenshot %dx%d: %d colours, %.1f%% not background", fs.width, fs.height, fs.colours, 100*fs.foreground)
	if fs.colours < 16 || fs.foreground < 0.02 {
		t.Errorf("dashboard screenshot looks blank: %d colours, %.2f%% not background", fs.colours, 100*fs.foreground)
	}
	// The chart's axes, grid and labels are grey; the outcomes are drawn in
	// colour, so coloured pixels mean the page's requests were plotted.
	cs := pictureStats(t, chart)
	t.Logf("chart %dx%d: %d colours, %.1f%% not background, %d coloured pixels",
		cs.width, cs.height, cs.colours, 100*cs.foreground, cs.coloured)
	if cs.width < 50 || cs.height < 20 || cs.coloured < 100 {
		t.Errorf("the chart plots nothing: %dx%d, %d colours, %d coloured pixels", cs.width, cs.height, cs.colours, cs.coloured)
	}
}

// checkOnboardingInBrowser opens http://sessionproxy/ in the browser,
// through the proxy: the page shows the CA's SPKI hash and the Chromium flag
// that carries it, and renders as a page (not a blank or an error).
func checkOnboardingInBrowser(t *testing.T, h *harness, b *browser) {
	ctx := b.within(t, 20*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://sessionproxy/")); err != nil {
		t.Fatalf("open http://sessionproxy/: %v", err)
	}
	spki, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("spki")))
	if err != nil || strings.TrimSpace(spki) != h.srv.CA().SPKIHash() {
		t.Errorf("the onboarding page shows SPKI %q (%v), want %q", spki, err, h.srv.CA().SPKIHash())
	}
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil || !strings.Contains(body, "--ignore-certificate-errors-spki-list="+h.srv.CA().SPKIHash()) || !strings.Contains(body, "Download the CA") {
		t.Errorf("the onboarding page lacks the flag or the download (%v):\n%.1500s", err, body)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if ps := pictureStats(t, shot); ps.colours < 16 || ps.foreground < 0.02 {
		t.Errorf("onboarding screenshot looks blank: %+v", ps)
	}
	keepScreenshot(t, "onboarding.png", shot)
}

// keepScreenshot writes a screenshot to $CLIENTS_TEST_SCREENSHOTS, when set,
// for a human to look at (proxy/testdata/screenshots holds the last ones
// kept).
func keepScreenshot(t *testing.T, name string, png []byte) {
	if dir := os.Getenv("CLIENTS_TEST_SCREENSHOTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Errorf("keep the screenshot: %v", err)
		}
	}
}

// picture is what pictureStats found in a PNG.
type picture struct {
	width, height int
	colours       int     // distinct colours
	foreground    float64 // share of pixels not of the most common colour
	coloured      int     // pixels far from grey (channels 60 or more apart)
}

func pictureStats(t *testing.T, pngBytes []byte) picture {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	r := img.Bounds()
	counts := make(map[color.RGBA]int)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	most, coloured := 0, 0
	for c, n := range counts {
		most = max(most, n)
		if max(c.R, c.G, c.B)-min(c.R, c.G, c.B) >= 60 {
			coloured += n
		}
	}
	total := r.Dx() * r.Dy()
	p := picture{width: r.Dx(), height: r.Dy(), colours: len(counts), coloured: coloured}
	if total > 0 {
		p.foreground = float64(total-most) / float64(total)
	}
	return p
}

// curlResult is one curl transfer: the status and headers of the last
// response (after any CONNECT) and its body.
type curlResult struct {
	status int
	header http.Header
	body   string
}

// runCurl runs the curl binary with args, capturing the response; it
// returns curl's exit code (0 on success) and its error output.
func runCurl(t *testing.T, args ...string) (res curlResult, exitCode int, stderr string) {
	t.Helper()
	bin := requireProgram(t, "curl", "curl")
	dir := t.TempDir()
	hdrFile, bodyFile := filepath.Join(dir, "headers"), filepath.Join(dir, "body")
	ctx := waitCtx(t, 20*time.Second)
	full := append([]string{"-sS", "--max-time", "15", "-D", hdrFile, "-o", bodyFile}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = clientEnv()
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	err := cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
		}
		return curlResult{}, ee.ExitCode(), errOut.String()
	}
	rawHeaders, err := os.ReadFile(hdrFile)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(bodyFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) { // no file: empty body
		t.Fatal(err)
	}
	res = parseCurlHeaders(t, string(rawHeaders))
	res.body = string(body)
	return res, 0, errOut.String()
}

// parseCurlHeaders reads the last header block curl dumped with -D (a
// CONNECT's block comes first when a proxy was used).
func parseCurlHeaders(t *testing.T, raw string) curlResult {
	t.Helper()
	blocks := strings.Split(strings.ReplaceAll(raw, "\r\n", "\n"), "\n\n")
	last := ""
	for _, b := range blocks {
		if strings.TrimSpace(b) != "" {
			last = b
		}
	}
	lines := strings.Split(strings.TrimSpace(last), "\n")
	fields := strings.Fields(lines[0]) // "HTTP/1.1 200 OK" or "HTTP/2 200"
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "HTTP/") {
		t.Fatalf("curl's headers start with %q", lines[0])
	}
	status, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatalf("curl's status line %q: %v", lines[0], err)
	}
	res := curlResult{status: status, header: make(http.Header)}
	for _, l := range lines[1:] {
		if name, value, ok := strings.Cut(l, ":"); ok {
			res.header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}
	return res
}

// mustCurl is runCurl that fails the test unless curl exits 0.
func mustCurl(t *testing.T, args ...string) curlResult {
	t.Helper()
	res, code, stderr := runCurl(t, args...)
	if code != 0 {
		t.Fatalf("curl %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return res
}

// curlJSON decodes a curl body as JSON into v.
func curlJSON(t *testing.T, res curlResult, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(res.body), v); err != nil {
		t.Fatalf("body %q: %v", res.body, err)
	}
}

// TestCurlAdminAPI drives the admin API and the proxy with the curl binary:
// the bearer token is wanted everywhere but /healthz, the CA certificate
// curl downloads from /ca.pem is the only thing that lets it through the
// interception, and what it sends through the proxy under a session shows
// up in /sessions, /sessions/{id} and /stats.
func TestCurlAdminAPI(t *testing.T) {
	const token = "curl-admin-token-7f3a"
	origin, originCA := tlsOriginWithCA(t, originMux())
	cfg := testConfig(t)
	cfg.AdminToken = token
	dir := t.TempDir()
	originCAFile := filepath.Join(dir, "origin-ca.pem")
	if err := os.WriteFile(originCAFile, originCA, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.MITM.UpstreamCA = []string{originCAFile}
	h := startProxy(t, cfg)
	admin := h.adminURL
	auth := []string{"-H", "Authorization: Bearer " + token}
	withAuth := func(args ...string) []string { return append(slices.Clone(auth), args...) }

	// The token: /healthz is open, the rest wants it.
	if res := mustCurl(t, admin+"/healthz"); res.status != http.StatusOK || res.body != "ok\n" {
		t.Errorf("/healthz: %d %q, want 200 ok", res.status, res.body)
	}
	for _, tc := range []struct{ name, header string }{
		{"no token", ""},
		{"wrong token", "Authorization: Bearer not-" + token},
		{"not bearer", "Authorization: Basic " + token},
	} {
		args := []string{admin + "/sessions"}
		if tc.header != "" {
			args = append([]string{"-H", tc.header}, args...)
		}
		res := mustCurl(t, args...)
		var e struct{ Error string }
		curlJSON(t, res, &e)
		if res.status != http.StatusUnauthorized || e.Error == "" || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %q (WWW-Authenticate %q), want 401 with a JSON error and a Bearer challenge",
				tc.name, res.status, res.body, res.header.Get("WWW-Authenticate"))
		}
		assertNoSecret(t, res.body, token)
	}

	// The CA, as curl downloads it: PEM, DER and the SPKI hash.
	pemRes := mustCurl(t, withAuth(admin+"/ca.pem")...)
	if pemRes.status != http.StatusOK || pemRes.body != string(h.srv.CA().CertPEM()) {
		t.Fatalf("/ca.pem: %d, %d bytes; want 200 with the CA's PEM", pemRes.status, len(pemRes.body))
	}
	caFile := filepath.Join(dir, "proxy-ca.pem")
	if err := os.WriteFile(caFile, []byte(pemRes.body), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := mustCurl(t, withAuth(admin+"/ca.der")...); res.status != http.StatusOK || res.body != string(h.srv.CA().CertDER()) {
		t.Errorf("/ca.der: %d, %d bytes; want 200 with the CA's DER", res.status, len(res.body))
	}
	if res := mustCurl(t, withAuth(admin+"/ca.spki")...); strings.TrimSpace(res.body) != h.srv.CA().SPKIHash() {
		t.Errorf("/ca.spki = %q, want %q", res.body, h.srv.CA().SPKIHash())
	}

	// Through the proxy over HTTPS. Without the CA, curl refuses the
	// intercepted certificate (exit 60); with only the downloaded CA it
	// works, and the session keeps the cookie curl itself never stores.
	proxyArgs := []string{"-x", h.proxyURL.String(), "-H", "X-Session-Id: c1"}
	_, code, stderr := runCurl(t, append(slices.Clone(proxyArgs), origin.URL+"/echo")...)
	if code != 60 {
		t.Errorf("curl through the proxy without its CA: exit %d (%s), want 60 (certificate problem)", code, strings.TrimSpace(stderr))
	}
	trusted := append(slices.Clone(proxyArgs), "--cacert", caFile)
	res := mustCurl(t, append(slices.Clone(trusted), origin.URL+"/set?name=k&value=v1")...)
	if res.status != http.StatusOK || res.header.Get("X-Session-Id") != "c1" || !strings.HasPrefix(res.header.Get("Set-Cookie"), "k=v1") {
		t.Errorf("/set through the proxy: %d, X-Session-Id %q, Set-Cookie %q; want 200 from c1 passing the cookie on",
			res.status, res.header.Get("X-Session-Id"), res.header.Get("Set-Cookie"))
	}
	res = mustCurl(t, append(slices.Clone(trusted), origin.URL+"/echo")...)
	if seen := decodeSeen(t, res.body); seen.Cookie != "k=v1" || seen.Header.Get("X-Session-Id") != "" {
		t.Errorf("origin saw Cookie %q and X-Session-Id %q; want the session's k=v1 and no session header",
			seen.Cookie, seen.Header.Get("X-Session-Id"))
	}

	// What the admin API says about it.
	var ps sessionpool.PoolState
	res = mustCurl(t, withAuth(admin+"/sessions")...)
	curlJSON(t, res, &ps)
	c1, ok := poolSession(ps, "c1")
	if res.status != http.StatusOK || !ok || len(ps.Sessions) != 1 || c1.UsageCount != 2 {
		t.Errorf("/sessions: %d, sessions %v; want 200 with c1 used twice", res.status, sessionIDs(ps))
	}
	var one sessionpool.SessionState
	res = mustCurl(t, withAuth(admin+"/sessions/c1")...)
	curlJSON(t, res, &one)
	if v, _ := cookieValue(one, "k"); res.status != http.StatusOK || one.ID != "c1" || v != "v1" {
		t.Errorf("/sessions/c1: %d, %+v; want 200, c1 holding k=v1", res.status, one)
	}
	for _, tc := range []struct {
		args   []string
		status int
		want   string // in the body
	}{
		{[]string{admin + "/sessions/nobody"}, http.StatusNotFound, `"error"`},
		{[]string{admin + "/sessions?state=usable"}, http.StatusOK, `"c1"`},
		{[]string{admin + "/sessions?state=retired"}, http.StatusOK, `"sessions": []`},
		{[]string{admin + "/sessions?state=bogus"}, http.StatusBadRequest, `state must be`},
		{[]string{admin + "/metrics"}, http.StatusOK, "sessionproxy_requests_total"},
		{[]string{"-X", "POST", admin + "/reload"}, http.StatusConflict, `"error"`},
		{[]string{admin + "/no/such/endpoint"}, http.StatusNotFound, `no such endpoint`},
	} {
		res := mustCurl(t, withAuth(tc.args...)...)
		if res.status != tc.status || !strings.Contains(res.body, tc.want) {
			t.Errorf("curl %s: %d %.300q; want %d containing %q", strings.Join(tc.args, " "), res.status, res.body, tc.status, tc.want)
		}
	}
	var st Stats
	res = mustCurl(t, withAuth(admin+"/stats")...)
	curlJSON(t, res, &st)
	if st.Requests != 2 || st.UsableSessions != 1 || st.RetiredSessions != 0 {
		t.Errorf("/stats: %+v; want 2 requests, 1 usable session, none retired", st)
	}

	curlSessionLifecycle(t, h, curlAdminEnv{
		admin: admin, auth: auth, trusted: func(session string) []string {
			return []string{"-x", h.proxyURL.String(), "--cacert", caFile, "-H", "X-Session-Id: " + session}
		},
		origin: origin.URL, originCA: originCAFile, dir: dir,
	})
}

// curlAdminEnv is what curlSessionLifecycle needs of TestCurlAdminAPI.
type curlAdminEnv struct {
	admin    string                        // the admin API's base URL
	auth     []string                      // curl arguments sending the bearer token
	trusted  func(session string) []string // curl arguments going through the proxy as session, trusting its CA
	origin   string                        // the TLS origin (originMux)
	originCA string                        // its CA certificate file
	dir      string                        // for files
}

// curlSessionLifecycle adds, marks, exports, imports and retires sessions
// with curl, checks cookie files in both directions with curl itself (the
// export as its -b input, its -c jar as an import), and persists the pool.
// Session c1 exists already, holding k=v1.
func curlSessionLifecycle(t *testing.T, h *harness, e curlAdminEnv) {
	withAuth := func(args ...string) []string { return append(slices.Clone(e.auth), args...) }
	echo := func(session string) originSeen {
		t.Helper()
		res := mustCurl(t, append(e.trusted(session), e.origin+"/echo")...)
		if res.status != http.StatusOK || res.header.Get("X-Session-Id") != session {
			t.Fatalf("/echo as %s: %d from %q", session, res.status, res.header.Get("X-Session-Id"))
		}
		return decodeSeen(t, res.body)
	}

	// POST /sessions with a cookie: the origin gets it through the proxy.
	add := withAuth("-X", "POST", "-H", "Content-Type: application/json", "--data-binary",
		`{"id": "c2", "cookies": [{"name": "imported", "value": "yes", "domain": "127.0.0.1", "path": "/", "hostOnly": true}]}`,
		e.admin+"/sessions")
	res := mustCurl(t, add...)
	var c2 sessionpool.SessionState
	curlJSON(t, res, &c2)
	if res.status != http.StatusCreated || c2.ID != "c2" || res.header.Get("Location") != "/sessions/c2" {
		t.Errorf("POST /sessions: %d, Location %q, %+v; want 201 with c2", res.status, res.header.Get("Location"), c2)
	}
	if res := mustCurl(t, add...); res.status != http.StatusConflict {
		t.Errorf("POST /sessions for the held c2 again: %d %q, want 409", res.status, res.body)
	}
	if res := mustCurl(t, withAuth("-X", "POST", "-H", "Content-Type: application/json", "--data-binary", `{"id": "c3", "colour": "red"}`, e.admin+"/sessions")...); res.status != http.StatusBadRequest || !strings.Contains(res.body, "colour") {
		t.Errorf("POST /sessions with an unknown field: %d %q, want 400 naming it", res.status, res.body)
	}
	if got := echo("c2").Cookie; got != "imported=yes" {
		t.Errorf("c2 sent Cookie %q, want the imported imported=yes", got)
	}

	// Export c1 as cookies.txt and give it to curl itself (-b), straight
	// to the origin: curl reads the export as its own format.
	res = mustCurl(t, withAuth(e.admin+"/sessions/c1/cookies?format=netscape")...)
	if res.status != http.StatusOK || !strings.HasPrefix(res.body, "# Netscape HTTP Cookie File") {
		t.Fatalf("netscape export: %d %q", res.status, res.body)
	}
	exported := filepath.Join(e.dir, "c1-cookies.txt")
	if err := os.WriteFile(exported, []byte(res.body), 0o600); err != nil {
		t.Fatal(err)
	}
	res = mustCurl(t, "--cacert", e.originCA, "-b", exported, e.origin+"/echo")
	if got := decodeSeen(t, res.body).Cookie; got != "k=v1" {
		t.Errorf("curl -b with c1's export sent Cookie %q, want k=v1", got)
	}

	// A jar curl wrote itself (-c) imported into c2 (PUT, text/plain).
	jar := filepath.Join(e.dir, "curl-jar.txt")
	mustCurl(t, "--cacert", e.originCA, "-c", jar, e.origin+"/set?name=fromcurl&value=x1")
	res = mustCurl(t, withAuth("-X", "PUT", "-H", "Content-Type: text/plain", "--data-binary", "@"+jar,
		e.admin+"/sessions/c2/cookies")...)
	var imp struct {
		Imported int    `json:"imported"`
		Format   string `json:"format"`
	}
	curlJSON(t, res, &imp)
	if res.status != http.StatusOK || imp.Imported != 1 || imp.Format != "netscape" {
		t.Errorf("PUT curl's jar into c2: %d %q, want 200 importing 1 netscape cookie", res.status, res.body)
	}
	if got := echo("c2").Cookie; !sameElements(strings.Split(got, "; "), []string{"imported=yes", "fromcurl=x1"}) {
		t.Errorf("c2 sent Cookie %q, want imported=yes and curl's fromcurl=x1", got)
	}
	res = mustCurl(t, withAuth(e.admin+"/sessions/c2/cookies?format=playwright")...)
	var storageState struct {
		Cookies []struct{ Name, Value, Domain string } `json:"cookies"`
		Origins []any                                  `json:"origins"`
	}
	curlJSON(t, res, &storageState)
	if res.status != http.StatusOK || len(storageState.Cookies) != 2 || storageState.Origins == nil {
		t.Errorf("playwright export of c2: %d %q, want a storageState with 2 cookies", res.status, res.body)
	}
	if res := mustCurl(t, withAuth(e.admin+"/sessions/c2/cookies?format=yaml")...); res.status != http.StatusBadRequest {
		t.Errorf("export as yaml: %d %q, want 400", res.status, res.body)
	}

	// Marks, then retirement: a retired session takes no marks nor
	// cookies, and the next request under its name starts it afresh.
	var c1 sessionpool.SessionState
	res = mustCurl(t, withAuth("-X", "POST", e.admin+"/sessions/c1/bad")...)
	curlJSON(t, res, &c1)
	if res.status != http.StatusOK || c1.ErrorScore != 1 {
		t.Errorf("POST /sessions/c1/bad: %d, error score %v; want 200 and 1", res.status, c1.ErrorScore)
	}
	res = mustCurl(t, withAuth("-X", "POST", e.admin+"/sessions/c1/good")...)
	curlJSON(t, res, &c1)
	if res.status != http.StatusOK || c1.ErrorScore >= 1 {
		t.Errorf("POST /sessions/c1/good: %d, error score %v; want 200 and below 1", res.status, c1.ErrorScore)
	}
	res = mustCurl(t, withAuth("-X", "DELETE", e.admin+"/sessions/c2")...)
	curlJSON(t, res, &c2)
	if res.status != http.StatusOK || !c2.Retired {
		t.Errorf("DELETE /sessions/c2: %d %+v, want 200 and retired", res.status, c2)
	}
	for _, args := range [][]string{
		{"-X", "POST", e.admin + "/sessions/c2/good"},
		{"-X", "PUT", "-H", "Content-Type: text/plain", "--data-binary", "@" + jar, e.admin + "/sessions/c2/cookies"},
	} {
		if res := mustCurl(t, withAuth(args...)...); res.status != http.StatusConflict {
			t.Errorf("curl %s on retired c2: %d %q, want 409", strings.Join(args, " "), res.status, res.body)
		}
	}
	if res := mustCurl(t, withAuth("-X", "DELETE", e.admin+"/sessions/nobody")...); res.status != http.StatusNotFound {
		t.Errorf("DELETE /sessions/nobody: %d, want 404", res.status)
	}
	if got := echo("c2").Cookie; got != "" {
		t.Errorf("c2 after retirement sent Cookie %q, want a fresh session without cookies", got)
	}

	// 405 for a known path with another method.
	if res := mustCurl(t, withAuth("-X", "DELETE", e.admin+"/stats")...); res.status != http.StatusMethodNotAllowed || !strings.Contains(res.header.Get("Allow"), "GET") {
		t.Errorf("DELETE /stats: %d, Allow %q; want 405 allowing GET", res.status, res.header.Get("Allow"))
	}

	// POST /persist writes the pool to data_dir now.
	res = mustCurl(t, withAuth("-X", "POST", e.admin+"/persist")...)
	var pr struct {
		Persisted bool `json:"persisted"`
		Sessions  int  `json:"sessions"`
	}
	curlJSON(t, res, &pr)
	if res.status != http.StatusOK || !pr.Persisted {
		t.Errorf("POST /persist: %d %q, want 200 persisted", res.status, res.body)
	}
	// c1 and the fresh c2 were made by requests, so they are the origin's
	// site's; the c2 the API added (to serve every site) is retired in the
	// site "" until its pool evicts it.
	doc, err := os.ReadFile(filepath.Join(h.cfg.DataDir, h.cfg.Pool.PersistStateKey+"@"+originSite+".json"))
	if err != nil {
		t.Fatalf("no persisted state after POST /persist: %v", err)
	}
	var persisted sessionpool.PoolState
	if err := json.Unmarshal(doc, &persisted); err != nil {
		t.Fatalf("persisted state: %v", err)
	}
	p1, ok1 := poolSession(persisted, "c1")
	p2, ok2 := poolSession(persisted, "c2")
	if v, _ := cookieValue(p1, "k"); !ok1 || v != "v1" || !ok2 || len(p2.Cookies) != 0 || p2.Retired || len(persisted.Sessions) != 2 || pr.Sessions != 3 {
		t.Errorf("persisted %v (response said %d); want c1 with k=v1 and the fresh c2 without cookies, 3 sessions held",
			sessionIDs(persisted), pr.Sessions)
	}
}

// TestScrapyRetiresSoftBlocks runs the README's Scrapy middleware
// (testdata/clients/retire_blocked.py): a 200 page that is a block no rule
// sees makes the middleware retire the session through the proxy's own host
// (http://sessionproxy/) and send the request again, which a fresh session
// answers.
func TestScrapyRetiresSoftBlocks(t *testing.T) {
	py := requireScrapy(t)
	var soft atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if soft.Add(1) == 1 {
			fmt.Fprintln(w, "<!doctype html><p>Please verify you are a human</p>")
			return
		}
		fmt.Fprintln(w, "<!doctype html><p>the page</p>")
	}))
	defer origin.Close()
	h := startProxy(t, testConfig(t))

	clients, err := filepath.Abs(testdataClients(""))
	if err != nil {
		t.Fatal(err)
	}
	outFile, crawlLog := runSpider(t, py, h, "soft_block_spider.py", origin.URL, "PYTHONPATH="+clients) // for retire_blocked.py

	var items []struct {
		Status  int    `json:"status"`
		Session string `json:"session"`
		Body    string `json:"body"`
		Tries   int    `json:"tries"`
	}
	decodeJSONFile(t, outFile, &items)
	if len(items) != 1 || items[0].Status != http.StatusOK || !strings.Contains(items[0].Body, "the page") || items[0].Tries != 1 {
		t.Fatalf("items %+v, want one: the real page after one retirement\n%s", items, crawlLog)
	}
	if n := soft.Load(); n != 2 {
		t.Errorf("origin served /soft %d times, want 2 (the block, then the page)", n)
	}
	var ps sessionpool.PoolState
	if code := h.adminGet("/sessions", "", &ps); code != http.StatusOK {
		t.Fatalf("GET /sessions: %d", code)
	}
	var retired []string
	for _, st := range ps.Sessions {
		if st.Retired {
			retired = append(retired, st.ID)
		}
	}
	if len(retired) != 1 || retired[0] == items[0].Session {
		t.Errorf("retired sessions %v, want exactly the one that served the block (not %s, which served the page)", retired, items[0].Session)
	}
}

// TestReadmeShowsTestedExamples: the client examples the README shows are
// the files these tests run, verbatim.
func TestReadmeShowsTestedExamples(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shop.py", "retire_blocked.py", filepath.Join("node", "crawl.mjs"),
		filepath.Join("node", "puppeteer.mjs"), filepath.Join("node", "playwright.mjs")} {
		src, err := os.ReadFile(testdataClients(name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(readme, src) {
			t.Errorf("README.md does not show testdata/clients/%s as it is", name)
		}
	}
}

// requireNodeModules returns node's path and the directory of the node
// clients, or fails the test saying how to install them.
func requireNodeModules(t *testing.T) (node, dir string) {
	t.Helper()
	node = requireProgram(t, "node", "nodejs")
	dir, err := filepath.Abs(testdataClients("node"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "crawlee")); err != nil {
		t.Fatalf("the node clients are not installed (%v): run npm ci in %s; testdata/test.sh does", err, dir)
	}
	return node, dir
}

// TestCrawleeThroughProxy runs Crawlee itself (an HttpCrawler,
// testdata/clients/node/crawl.mjs) through the proxy: Crawlee's session ids
// are the proxy's sessions (the proxy username session-<id>), and the
// session Crawlee retires on a block page only it can see is retired in the
// proxy too, through http://sessionproxy/.
func TestCrawleeThroughProxy(t *testing.T) {
	node, dir := requireNodeModules(t)
	var soft atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /p/{n}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<!doctype html><p>page %s</p>\n", r.PathValue("n"))
	})
	mux.HandleFunc("GET /soft", func(w http.ResponseWriter, r *http.Request) {
		if soft.Add(1) == 1 {
			fmt.Fprintln(w, "<!doctype html><p>Please verify you are a human</p>")
			return
		}
		fmt.Fprintln(w, "<!doctype html><p>the page</p>")
	})
	origin := httptest.NewServer(mux)
	defer origin.Close()
	h := startProxy(t, testConfig(t))

	work := t.TempDir()
	outFile := filepath.Join(work, "out.json")
	cmd := exec.CommandContext(waitCtx(t, 90*time.Second), node, filepath.Join(dir, "crawl.mjs"), origin.URL, h.proxyURL.Host, outFile)
	cmd.Dir = work
	cmd.Env = clientEnv("CRAWLEE_STORAGE_DIR="+filepath.Join(work, "storage"), "CRAWLEE_PURGE_ON_START=1")
	cmd.WaitDelay = 5 * time.Second
	crawlLog := runChild(t, cmd)

	var out struct {
		Results []struct {
			URL            string `json:"url"`
			CrawleeSession string `json:"crawleeSession"`
			ProxySession   string `json:"proxySession"`
		} `json:"results"`
		Retired        []string `json:"retired"`
		RetireStatuses []int    `json:"retireStatuses"`
	}
	decodeJSONFile(t, outFile, &out)
	if len(out.Results) != 3 {
		t.Fatalf("Crawlee handled %d pages, want 3: %+v\n%s", len(out.Results), out.Results, crawlLog)
	}
	softSession := ""
	for _, r := range out.Results {
		if r.CrawleeSession == "" || r.ProxySession != r.CrawleeSession {
			t.Errorf("%s: Crawlee session %q, proxy session %q; want the same", r.URL, r.CrawleeSession, r.ProxySession)
		}
		if strings.HasSuffix(r.URL, "/soft") {
			softSession = r.CrawleeSession
		}
	}
	if n := soft.Load(); n != 2 {
		t.Errorf("origin served /soft %d times, want 2 (the block, then the page)", n)
	}
	// Crawlee may announce one retirement more than once; the proxy's
	// retire is idempotent.
	if ids := slices.Compact(slices.Clone(out.Retired)); len(ids) != 1 || slices.ContainsFunc(out.RetireStatuses, func(c int) bool { return c != http.StatusOK }) {
		t.Fatalf("retirements of %v sent to the proxy answered %v, want one session, every answer 200\n%s", out.Retired, out.RetireStatuses, crawlLog)
	}
	var ps sessionpool.PoolState
	if code := h.adminGet("/sessions", "", &ps); code != http.StatusOK {
		t.Fatalf("GET /sessions: %d", code)
	}
	var retired []string
	for _, st := range ps.Sessions {
		if st.Retired {
			retired = append(retired, st.ID)
		}
	}
	if len(retired) != 1 || retired[0] != out.Retired[0] || retired[0] == softSession {
		t.Errorf("retired in the proxy: %v; want %s, the one Crawlee retired (not %s, which served the page)", retired, out.Retired[0], softSession)
	}
}

// TestBrowserExamples runs the README's Puppeteer and Playwright examples
// (testdata/clients/node/puppeteer.mjs, playwright.mjs) as written, against
// an HTTPS origin through the proxy with auth.challenge on: each browser
// trusts the CA by its SPKI hash and is served by the session its proxy
// user name names.
func TestBrowserExamples(t *testing.T) {
	node, dir := requireNodeModules(t)
	requireProgram(t, "/usr/bin/chromium", "chromium")
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "<!doctype html><title>checkout page</title><p>hello")
	}))
	defer origin.Close()
	cfg := testConfig(t)
	cfg.Auth.Challenge = true
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)

	for _, script := range []string{"puppeteer.mjs", "playwright.mjs"} {
		t.Run(script, func(t *testing.T) {
			cmd := exec.CommandContext(waitCtx(t, 90*time.Second), node, filepath.Join(dir, script),
				origin.URL+"/", h.proxyURL.Host, h.adminURL)
			cmd.Dir = t.TempDir()
			cmd.Env = clientEnv("HOME=" + cmd.Dir)
			cmd.WaitDelay = 5 * time.Second
			out := runChild(t, cmd)
			var got struct {
				Status  int    `json:"status"`
				Session string `json:"session"`
				Title   string `json:"title"`
			}
			line := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			if got.Status != http.StatusOK || got.Session != "checkout-7" || got.Title != "checkout page" {
				t.Errorf("%s got %+v, want 200 from session checkout-7 with the page's title", script, got)
			}
		})
	}
	// The browsers' own background requests to other sites made checkout-7
	// sessions there too: the shop's is its site's.
	if st := stateOf(t, h, "checkout-7?site="+originSite); st.UsageCount < 2 {
		t.Errorf("session checkout-7 used %d times, want at least once by each browser", st.UsageCount)
	}
}

// TestReadmeScrapyExample runs the README's Scrapy spider
// (testdata/clients/shop.py) against a local shop: the pinned account pages
// all go out as buyer-1 and see its login cookie, which Scrapy never keeps;
// the 50 product pages come from the pool, the one the shop blocks after a
// retry.
func TestReadmeScrapyExample(t *testing.T) {
	py := requireScrapy(t)
	var blocked atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "buyer", Path: "/"})
		fmt.Fprintln(w, "welcome")
	})
	for _, p := range []string{"/account", "/orders"} {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			if c, err := r.Cookie("sid"); err != nil || c.Value != "buyer" {
				http.Error(w, "log in first", http.StatusUnauthorized)
				return
			}
			fmt.Fprintln(w, "your", p)
		})
	}
	mux.HandleFunc("GET /p/{n}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("n") == "7" && blocked.Add(1) == 1 {
			http.Error(w, "blocked", http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, "product", r.PathValue("n"))
	})
	origin := httptest.NewServer(mux)
	defer origin.Close()
	h := startProxy(t, testConfig(t))

	outFile, crawlLog := runSpider(t, py, h, "shop.py", origin.URL)

	var items []struct{ URL, Session, Retries string }
	decodeJSONFile(t, outFile, &items)
	if len(items) != 53 {
		t.Fatalf("Scrapy wrote %d items, want 53 (3 account pages, 50 products)\n%s", len(items), crawlLog)
	}
	retried := 0
	for _, it := range items {
		path := strings.TrimPrefix(it.URL, origin.URL)
		pinned := path == "/login" || path == "/account" || path == "/orders"
		if pinned != (it.Session == "buyer-1") {
			t.Errorf("%s came from session %q", path, it.Session)
		}
		if it.Retries != "0" {
			retried++
		}
	}
	if retried != 1 || blocked.Load() < 1 {
		t.Errorf("%d items were retried (the shop blocked %d), want the one blocked product page", retried, blocked.Load())
	}
}

// readmeBlock returns the fenced code block of README.md that starts with
// first (its first line, after the fence).
func readmeBlock(t *testing.T, first string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```sh\n"+first)
	if !ok {
		t.Fatalf("README.md has no sh block starting %q", first)
	}
	block, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatal("the README block does not end")
	}
	return first + block + "\n"
}

// TestReadmeAdminSnippet runs the README's admin API block as it is, with
// bash and curl, against a proxy with an admin token: every line works in
// order, the session it adds is held (and retired by its DELETE), and the
// files it downloads are what they claim.
func TestReadmeAdminSnippet(t *testing.T) {
	bash := requireProgram(t, "bash", "bash")
	requireProgram(t, "curl", "curl")
	script := readmeBlock(t, "A=http://127.0.0.1:8081;")
	cfg := testConfig(t)
	cfg.AdminToken = "readme-token"
	h := startProxy(t, cfg)
	script = strings.Replace(script, "A=http://127.0.0.1:8081;", "A="+h.adminURL+";", 1)

	dir := t.TempDir()
	cmd := exec.CommandContext(waitCtx(t, 60*time.Second), bash, "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = clientEnv("TOKEN=" + cfg.AdminToken)
	out := runChild(t, cmd)

	if !strings.HasPrefix(out, "ok\n") {
		t.Errorf("the block's first answer is not /healthz's ok:\n%.500s", out)
	}
	if strings.Contains(out, "missing or wrong bearer token") || strings.Contains(out, "Content-Type") {
		t.Errorf("a line of the block was refused:\n%s", out)
	}
	st := stateOf(t, h, "shop1")
	if !st.Retired || st.UserData["account"] != "a1" || st.Fingerprint != "chrome" {
		t.Errorf("shop1 after the block: %+v; want it added with its user data and fingerprint, then retired", st)
	}
	if pem, err := os.ReadFile(filepath.Join(dir, "ca.pem")); err != nil || !bytes.Equal(pem, h.srv.CA().CertPEM()) {
		t.Errorf("ca.pem is not the CA (%v)", err)
	}
	var har record.HAR
	decodeJSONFile(t, filepath.Join(dir, "shop1.har"), &har)
	if har.Log.Version != "1.2" {
		t.Errorf("shop1.har is not HAR 1.2: %+v", har)
	}
	for _, f := range []string{"cookies.txt", "state.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the block did not write %s: %v", f, err)
		}
	}
}
