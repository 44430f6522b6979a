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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/profile"
	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// identityProxy starts a proxy with fingerprint mode fp that trusts the
// wire origin, and returns it with the path of its CA's PEM file.
func identityProxy(t *testing.T, origin *proxytest.WireOrigin, fp config.Fingerprint, upstreams ...*url.URL) (*harness, string) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Fingerprint = fp
	cfg.Upstreams = upstreams
	trustCA(t, cfg, origin.CAPEM)
	h := startProxy(t, cfg)
	proxyCA := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(proxyCA, h.srv.CA().CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return h, proxyCA
}

// curlTo runs curl with args against the wire origin, through the proxy
// when proxyCA is not "" (trusting it), else directly (trusting origin's
// CA), and returns what the origin recorded.
func curlTo(t *testing.T, origin *proxytest.WireOrigin, h *harness, proxyCA, scheme string, args ...string) proxytest.WireRecord {
	t.Helper()
	return curlURL(t, origin, h, proxyCA, scheme+"://"+origin.Addr+"/p?q=1", args...)
}

// curlURL is curlTo for a URL of the origin.
func curlURL(t *testing.T, origin *proxytest.WireOrigin, h *harness, proxyCA, target string, args ...string) proxytest.WireRecord {
	t.Helper()
	bin := requireProgram(t, "curl", "curl")
	all := append([]string{"-sS", "--max-time", "20", "-o", "/dev/null"}, args...)
	if proxyCA != "" {
		all = append(all, "--proxy", h.proxyURL.String(), "--cacert", proxyCA)
	} else {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(caFile, origin.CAPEM, 0o644)
		all = append(all, "--cacert", caFile)
	}
	all = append(all, target)
	cmd := exec.Command(bin, all...)
	cmd.Env = clientEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	return origin.Next()
}

// oddHeaders are request headers in an order and case no library would
// choose.
var oddHeaders = []string{"-H", "zebra: 1", "-H", "Accept-Language: en", "-H", "X-lower-Mixed: 2", "-H", "aCCept: */*"}

// TestMirrorCurl: through the proxy in mirror mode, curl's requests reach
// the origin as they would directly: the same header lines in the same
// order and case over HTTP/1.1 (plain and in a tunnel), the same
// ClientHello, and over HTTP/2 the same preface and header order.
func TestMirrorCurl(t *testing.T) {
	for _, tc := range []struct {
		name   string
		plain  bool
		scheme string
		args   []string
	}{
		{"http", true, "http", nil},
		{"https-h1", false, "https", []string{"--http1.1"}},
		{"https-h2", false, "https", []string{"--http2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := proxytest.StartWireOrigin(t, tc.plain)
			h, proxyCA := identityProxy(t, origin, config.FingerprintMirror)
			args := append(append([]string{}, tc.args...), oddHeaders...)
			direct := curlTo(t, origin, h, "", tc.scheme, args...)
			proxied := curlTo(t, origin, h, proxyCA, tc.scheme, args...)
			if direct.Head != proxied.Head {
				t.Errorf("HTTP/1.1 head through the proxy\n%q\ndirect\n%q", proxied.Head, direct.Head)
			}
			if direct.ALPN != proxied.ALPN {
				t.Errorf("ALPN %q through the proxy, %q direct", proxied.ALPN, direct.ALPN)
			}
			if !tc.plain {
				if d, p := proxytest.HelloShape(t, direct.Hello), proxytest.HelloShape(t, proxied.Hello); d != p {
					t.Errorf("ClientHello through the proxy\n%s\ndirect\n%s", p, d)
				}
				if direct.JA4 == "" || direct.JA4 != proxied.JA4 {
					t.Errorf("JA4 %q through the proxy, %q direct", proxied.JA4, direct.JA4)
				}
			}
			if direct.Preface != proxied.Preface || fmt.Sprint(direct.Fields) != fmt.Sprint(proxied.Fields) {
				t.Errorf("HTTP/2 through the proxy %s %v, direct %s %v", proxied.Preface, proxied.Fields, direct.Preface, direct.Fields)
			}
			if tc.name == "https-h2" && (direct.ALPN != "h2" || direct.Preface == "") {
				t.Errorf("curl --http2 direct: ALPN %q, preface %q", direct.ALPN, direct.Preface)
			}
		})
	}
}

// TestChromeProfileForCurl: with fingerprint chrome, curl's requests carry
// Chrome's ClientHello, Chrome's HTTP/2 preface and pseudo-header order.
func TestChromeProfileForCurl(t *testing.T) {
	origin := proxytest.StartWireOrigin(t, false)
	h, proxyCA := identityProxy(t, origin, config.FingerprintChrome)
	// By name: a browser sends a server name (SNI) for names, not for addresses.
	named := "https://localhost:" + strings.Split(origin.Addr, ":")[1] + "/"
	rec := curlURL(t, origin, h, proxyCA, named, append([]string{"--http1.1"}, oddHeaders...)...)
	chrome := profile.Profiles()[profile.Chrome]
	if got, want := proxytest.HelloShape(t, rec.Hello), proxytest.HelloShape(t, chrome.Hello); got != want {
		t.Errorf("ClientHello\n%s\nwant Chrome's\n%s", got, want)
	}
	if want := "t13d1517h2_8daaf6152771_cb7bf5808d99"; rec.JA4 != want { // Chromium 156's, measured elsewhere
		t.Errorf("JA4 %s, want Chromium's %s", rec.JA4, want)
	}
	if rec.ALPN != "h2" {
		t.Fatalf("ALPN %q, want h2: Chrome offers it, whatever the client", rec.ALPN)
	}
	if want := "1:65536;2:0;4:6291456;6:262144|15663105|0"; rec.Preface != want {
		t.Errorf("HTTP/2 preface %s, want Chrome's %s", rec.Preface, want)
	}
	if ua := rec.Values["user-agent"]; len(ua) != 1 || !strings.HasPrefix(ua[0], "curl/") {
		t.Errorf("user-agent %q: a profile keeps the client's header values", ua)
	}
	if got := strings.Join(rec.Fields, ","); !strings.HasPrefix(got, ":method,:authority,:scheme,:path,user-agent,accept,accept-language,zebra,x-lower-mixed,priority 1:0:255") {
		t.Errorf("fields %s: want Chrome's pseudo-header order, then the headers Chrome knows in its order, then curl's others", got)
	}
}

// TestMirrorThroughUpstreams: through an http and a socks5 upstream, the
// origin sees the client's ClientHello, not Go's or the upstream's.
func TestMirrorThroughUpstreams(t *testing.T) {
	origin := proxytest.StartWireOrigin(t, false)
	httpUp, _ := proxytest.StartGoproxyUpstream(t, "u", "p")
	socksAddr, _ := proxytest.StartSOCKS5(t, "s", "q")
	for name, up := range map[string]*url.URL{
		"http":   mustURL(t, httpUp),
		"socks5": {Scheme: "socks5", User: url.UserPassword("s", "q"), Host: socksAddr},
	} {
		t.Run(name, func(t *testing.T) {
			h, proxyCA := identityProxy(t, origin, config.FingerprintMirror, up)
			direct := curlTo(t, origin, h, "", "https", "--http2")
			proxied := curlTo(t, origin, h, proxyCA, "https", "--http2")
			if d, p := proxytest.HelloShape(t, direct.Hello), proxytest.HelloShape(t, proxied.Hello); d != p || direct.JA4 != proxied.JA4 {
				t.Errorf("ClientHello through %s upstream (JA4 %s)\n%s\ndirect (JA4 %s)\n%s", name, proxied.JA4, p, direct.JA4, d)
			}
			if direct.Preface != proxied.Preface {
				t.Errorf("HTTP/2 preface through %s upstream %s, direct %s", name, proxied.Preface, direct.Preface)
			}
		})
	}
}

// TestRandomFingerprint: with random, sessions go out as different
// browsers, and one session as the same one on every request and after a
// restart.
func TestRandomFingerprint(t *testing.T) {
	origin := proxytest.StartWireOrigin(t, false)
	h, proxyCA := identityProxy(t, origin, config.FingerprintRandom)
	// Drawn at random, per session: Chrome and Edge share a ClientHello
	// shape, so 8 sessions were all one shape once in 256 runs; of 24, once
	// in 16 million.
	shapes := map[string]string{}
	for i := range 24 {
		s := fmt.Sprintf("s%d", i)
		rec := curlTo(t, origin, h, proxyCA, "https", "--http1.1", "-H", "X-Session-Id: "+s)
		shapes[s] = proxytest.HelloShape(t, rec.Hello)
	}
	distinct := map[string]bool{}
	for _, s := range shapes {
		distinct[s] = true
	}
	if len(distinct) < 2 {
		t.Errorf("%d sessions all sent the same ClientHello", len(shapes))
	}
	again := curlTo(t, origin, h, proxyCA, "https", "--http1.1", "-H", "X-Session-Id: s3")
	if got := proxytest.HelloShape(t, again.Hello); got != shapes["s3"] {
		t.Errorf("session s3 changed its ClientHello between two requests:\n%s\nthen\n%s", shapes["s3"], got)
	}
	cfg := h.cfg
	h.stop()
	h2 := startProxy(t, cfg)
	os.WriteFile(proxyCA, h2.srv.CA().CertPEM(), 0o644)
	after := curlTo(t, origin, h2, proxyCA, "https", "--http1.1", "-H", "X-Session-Id: s3")
	if proxytest.HelloShape(t, after.Hello) != shapes["s3"] {
		t.Error("session s3 changed its ClientHello across a restart")
	}
}

// TestMirrorChromium: headless Chromium through the proxy gives the origin
// the same ClientHello, HTTP/2 preface and header order as directly.
func TestMirrorChromium(t *testing.T) {
	bin := requireProgram(t, "chromium", "chromium")
	origin := proxytest.StartWireOrigin(t, false)
	h, _ := identityProxy(t, origin, config.FingerprintMirror)
	visit := func(viaProxy bool) proxytest.WireRecord {
		args := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
			"--user-data-dir=" + t.TempDir(), "--disable-background-networking", "--disable-component-update",
			"--disable-quic", "--disable-features=Translate,OptimizationHints,MediaRouter", "--dump-dom"}
		if viaProxy {
			args = append(args, "--proxy-server="+h.proxyURL.String(), "--proxy-bypass-list=<-loopback>")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, "https://localhost:"+strings.Split(origin.Addr, ":")[1]+"/")...)
		cmd.Env = clientEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, out)
		}
		return origin.NextFor("/")
	}
	direct, proxied := visit(false), visit(true)
	if d, p := proxytest.HelloShape(t, direct.Hello), proxytest.HelloShape(t, proxied.Hello); d != p {
		t.Errorf("ClientHello through the proxy\n%s\ndirect\n%s", p, d)
	}
	if direct.JA4 == "" || direct.JA4 != proxied.JA4 {
		t.Errorf("JA4 %q through the proxy, %q direct", proxied.JA4, direct.JA4)
	}
	if direct.Preface != proxied.Preface {
		t.Errorf("HTTP/2 preface through the proxy %s, direct %s", proxied.Preface, direct.Preface)
	}
	if fmt.Sprint(direct.Fields) != fmt.Sprint(proxied.Fields) {
		t.Errorf("fields through the proxy\n%v\ndirect\n%v", proxied.Fields, direct.Fields)
	}
}

func TestWithCookieSlot(t *testing.T) {
	for _, tc := range []struct {
		names []string
		ua    string
		want  []string
	}{
		{[]string{"sec-ch-ua", "user-agent", "accept", "accept-encoding", "accept-language", "priority"}, "Mozilla/5.0 Chrome/156.0 Safari/537.36",
			[]string{"sec-ch-ua", "user-agent", "accept", "accept-encoding", "accept-language", "cookie", "priority"}},
		{[]string{"Host", "User-Agent", "Accept"}, "curl/7.88.1", []string{"Host", "User-Agent", "Accept", "Cookie"}},
		{[]string{"Host", "User-Agent", "Accept", "Accept-Language", "Accept-Encoding", "Connection", "Upgrade-Insecure-Requests", "Sec-Fetch-Dest"},
			"Mozilla/5.0 Gecko/20100101 Firefox/135.0",
			[]string{"Host", "User-Agent", "Accept", "Accept-Language", "Accept-Encoding", "Connection", "Cookie", "Upgrade-Insecure-Requests", "Sec-Fetch-Dest"}},
		{[]string{"accept", "sec-fetch-site", "sec-fetch-dest", "user-agent"}, "Mozilla/5.0 Version/18.5 Safari/605.1.15",
			[]string{"accept", "sec-fetch-site", "cookie", "sec-fetch-dest", "user-agent"}},
		{[]string{"Host", "cookie", "Accept"}, "", []string{"Host", "cookie", "Accept"}},
		{nil, "curl", nil},
	} {
		in := slices.Clone(tc.names)
		if got := withCookieSlot(tc.names, tc.ua, beforeCookie()); !slices.Equal(got, tc.want) {
			t.Errorf("withCookieSlot(%q, %q) = %q, want %q", tc.names, tc.ua, got, tc.want)
		}
		if !slices.Equal(in, tc.names) {
			t.Errorf("withCookieSlot changed its argument to %q", tc.names)
		}
	}
}

// TestMirrorPlacesSessionCookie: a session's cookie goes where the client's
// browser would put a Cookie header: for a client that is none, Chrome's
// place, after the headers Chrome sends before it and before the others;
// curl puts a cookie of its own (-b) there too, before -H headers.
func TestMirrorPlacesSessionCookie(t *testing.T) {
	origin := proxytest.StartWireOrigin(t, false)
	h, proxyCA := identityProxy(t, origin, config.FingerprintMirror)
	h.addSession(`{"id": "c", "cookies": [{"name": "sid", "value": "1", "domain": "127.0.0.1", "path": "/", "hostOnly": true}]}`)
	rec := curlTo(t, origin, h, proxyCA, "https", "--http1.1", "-H", "X-Session-Id: c", "-H", "zebra: 1")
	if !strings.HasSuffix(rec.Head, "Accept: */*\r\nCookie: sid=1\r\nzebra: 1\r\n\r\n") {
		t.Errorf("HTTP/1.1 head %q: want the session's Cookie after Accept, before zebra", rec.Head)
	}
	rec = curlTo(t, origin, h, proxyCA, "https", "--http2", "-H", "X-Session-Id: c", "-H", "zebra: 1")
	if got := strings.Join(rec.Fields, ","); !strings.HasSuffix(got, "accept,cookie,zebra") {
		t.Errorf("HTTP/2 fields %s: want the session's cookie after accept, before zebra", got)
	}
	// A client that sends two Cookie lines still sends two; the session's
	// cookie follows on the last.
	rec = curlTo(t, origin, h, proxyCA, "https", "--http1.1", "-H", "X-Session-Id: c", "-H", "Cookie: a=1", "-H", "zebra: 1", "-H", "Cookie: b=2")
	if !strings.HasSuffix(rec.Head, "Cookie: a=1\r\nzebra: 1\r\nCookie: b=2; sid=1\r\n\r\n") {
		t.Errorf("HTTP/1.1 head %q: want the client's two Cookie lines where they were, the session's cookie on the last", rec.Head)
	}
}

// TestProfileSendsConnection: a browser profile sends Connection:
// keep-alive over HTTP/1.1 where that browser does, though the proxy took
// the client's own Connection header off (Chrome: right after Host;
// Firefox: after Accept-Encoding, as neither sends Content-Type or Origin
// on a GET).
func TestProfileSendsConnection(t *testing.T) {
	origin := proxytest.StartWireOrigin(t, true)
	for _, tc := range []struct {
		fp   config.Fingerprint
		want string
	}{
		{config.FingerprintChrome, "Host: " + origin.Addr + "\r\nConnection: keep-alive\r\n"},
		{config.FingerprintFirefox, "Accept-Encoding: gzip\r\nConnection: keep-alive\r\n"},
	} {
		t.Run(string(tc.fp), func(t *testing.T) {
			h, _ := identityProxy(t, origin, tc.fp)
			req, err := http.NewRequest(http.MethodGet, "http://"+origin.Addr+"/p", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept-Encoding", "gzip")
			req.Header.Set("User-Agent", "test")
			resp, err := h.client("", "").Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if head := origin.Next().Head; !strings.Contains(head, tc.want) || strings.Count(head, "Connection:") != 1 {
				t.Errorf("head:\n%s\nwant one Connection line, in %q", head, tc.want)
			}
		})
	}
}

// TestMirrorSharesConnectionsOnlyForTheSameHello: two clients of one
// session whose ClientHellos differ in their data only (here the groups
// they offer) never share an origin connection: each request reaches the
// origin with its own client's hello.
func TestMirrorSharesConnectionsOnlyForTheSameHello(t *testing.T) {
	caPEM, keyPEM, _ := proxytest.NewCA(t)
	var mu sync.Mutex
	groups := map[string]string{} // by the proxy's address at the origin: the groups its hello offered
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		io.WriteString(w, groups[r.RemoteAddr])
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{proxytest.NewLeaf(t, caPEM, keyPEM, "127.0.0.1")},
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			defer mu.Unlock()
			groups[chi.Conn.RemoteAddr().String()] = fmt.Sprint(chi.SupportedCurves)
			return nil, nil
		},
	}
	srv.StartTLS()
	defer srv.Close()
	cfg := testConfig(t)
	trustCA(t, cfg, caPEM)
	h := startProxy(t, cfg)
	client := func(c tls.CurveID) *http.Client {
		return &http.Client{Transport: &http.Transport{
			Proxy:           http.ProxyURL(h.proxyURL),
			TLSClientConfig: &tls.Config{RootCAs: h.caPool, CurvePreferences: []tls.CurveID{c}},
		}, Timeout: 10 * time.Second}
	}
	for _, c := range []tls.CurveID{tls.X25519, tls.CurveP256, tls.X25519} {
		if _, got := get(t, client(c), srv.URL+"/", "s"); got != fmt.Sprint([]tls.CurveID{c}) {
			t.Errorf("a client offering %v reached the origin with a hello offering %s", c, got)
		}
	}
}

// TestRequestOrderAfterUnforwarded: a request that never reaches an origin
// (net/http's own answer to OPTIONS *, a target refused inside a tunnel)
// or whose framing net/http reads its own way (HTTP/1.0 with
// Transfer-Encoding) leaves the next request of the connection its own
// header order.
func TestRequestOrderAfterUnforwarded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tunnel bool
		first  func(origin, proxy string) string // the request before; %s none
		status int                               // its answer's
	}{
		{"OPTIONS *", false, func(o, _ string) string {
			return "OPTIONS * HTTP/1.1\r\nHost: " + o + "\r\nzzz-first: 1\r\naaa-second: 2\r\n\r\n"
		}, http.StatusOK},
		{"HTTP/1.0 with Transfer-Encoding", false, func(o, _ string) string {
			return "POST http://" + o + "/first HTTP/1.0\r\nHost: " + o + "\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"
		}, http.StatusOK},
		{"refused inside a tunnel", true, func(_, p string) string {
			return "GET /refused HTTP/1.1\r\nHost: " + p + "\r\nzzz-first: 1\r\naaa-second: 2\r\n\r\n"
		}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := proxytest.StartWireOrigin(t, !tc.tunnel)
			h, _ := identityProxy(t, origin, config.FingerprintMirror)
			var conn net.Conn
			var br *bufio.Reader
			target := "http://" + origin.Addr + "/p"
			if tc.tunnel {
				conn, br = dialTunnel(t, h, origin.Addr)
				target = "/p"
			} else {
				conn, br = plainConn(t, h)
			}
			io.WriteString(conn, tc.first(origin.Addr, h.proxyURL.Host))
			if st := statusOf(conn, br); st != tc.status {
				t.Fatalf("the first request: status %d, want %d", st, tc.status)
			}
			if tc.status == http.StatusOK && !strings.HasPrefix(tc.first(origin.Addr, ""), "OPTIONS") {
				origin.Next()
			}
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nx-b: 1\r\nx-a: 2\r\n\r\n", target, origin.Addr)
			if st := statusOf(conn, br); st != http.StatusOK {
				t.Fatalf("the next request: status %d", st)
			}
			if head := origin.Next().Head; !strings.Contains(head, "\r\nx-b: 1\r\nx-a: 2\r\n") {
				t.Errorf("the origin got\n%s\nwant the client's lines x-b, x-a in its order and case", head)
			}
		})
	}
}

// TestPipelinedPlainOrder: a client that pipelines more plain-HTTP
// requests than the scanner keeps names for (net/http reads them in one
// go) gets each its own order as far as the queue holds, and no other
// request's after that; dropping the oldest gave each the next one's.
func TestPipelinedPlainOrder(t *testing.T) {
	origin := proxytest.StartWireOrigin(t, true)
	h, _ := identityProxy(t, origin, config.FingerprintMirror)
	conn, br := plainConn(t, h)
	const n = maxHeadsKept + 5
	lines := func(i int) string { // even requests: x-b first; odd: x-a first
		if i%2 == 0 {
			return "x-b: 1\r\nx-a: 2\r\n"
		}
		return "x-a: 2\r\nx-b: 1\r\n"
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "GET http://%s/p%d HTTP/1.1\r\nHost: %s\r\n%s\r\n", origin.Addr, i, origin.Addr, lines(i))
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	heads := map[string]string{} // by path: two sessions' connections may reach the origin out of order
	for i := range n {
		if st := statusOf(conn, br); st != http.StatusOK {
			t.Fatalf("request %d: status %d", i, st)
		}
		rec := origin.Next()
		heads[rec.Path] = rec.Head
	}
	for i := range n {
		head := heads[fmt.Sprintf("/p%d", i)]
		if i%2 == 1 && strings.Contains(head, "\r\nx-b: 1\r\nx-a: 2\r\n") || i < maxHeadsKept && !strings.Contains(head, "\r\n"+lines(i)) {
			t.Errorf("request %d: the origin got\n%s\nwant the client's own lines %q (or, past the queue, none of another request's)", i, head, lines(i))
		}
	}
}

// TestFoldedFramingPlainOrder: a request whose Transfer-Encoding is folded
// onto a second line (obs-fold, which net/http takes) stops the scanner,
// which could no longer tell where its body ends: the requests after it
// go without their order, never with another's.
func TestFoldedFramingPlainOrder(t *testing.T) {
	origin := proxytest.StartWireOrigin(t, true)
	h, _ := identityProxy(t, origin, config.FingerprintMirror)
	conn, br := plainConn(t, h)
	fmt.Fprintf(conn, "GET http://%s/first HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", origin.Addr, origin.Addr)
	if st := statusOf(conn, br); st != http.StatusOK {
		t.Fatalf("the first request: status %d", st)
	}
	origin.Next()
	for i, lines := range []string{"x-b: 1\r\nx-a: 2\r\n", "x-a: 2\r\nx-b: 1\r\n"} {
		fmt.Fprintf(conn, "GET http://%s/p%d HTTP/1.1\r\nHost: %s\r\n%s\r\n", origin.Addr, i, origin.Addr, lines)
		if st := statusOf(conn, br); st != http.StatusOK {
			t.Fatalf("request %d: status %d", i, st)
		}
		if head := origin.Next().Head; i == 1 && strings.Contains(head, "\r\nx-b: 1\r\nx-a: 2\r\n") {
			t.Errorf("request %d: the origin got\n%s\nwith the order of the request before it", i, head)
		}
	}
}
