package proxy

import (
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strings"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// ownHost is the name the proxy answers for itself, without DNS: a plain
// HTTP request through the proxy to http://sessionproxy/ never leaves it
// (mitmproxy's mitm.it, for sessionproxy). It serves the onboarding page and
// the CA, and lets clients mark the session they used:
//
//	GET  /                           how to trust the CA, per client
//	GET  /ca.pem, /ca.der, /ca.spki  the CA, as on the admin API
//	POST /sessions/{id}/good, /bad   mark a usable session
//	POST /sessions/{id}/retire       retire it (idempotent)
//
// A mark goes to the session of that name on the site ?site= names, or
// without ?site= on every site that holds one (a client's session, such as
// Crawlee's, is one identity wherever it went); the answer is the list of
// the marked sessions' states.
//
// The proxy's client authentication applies as to every request; the admin
// token does not. A POST from a web page of another site is refused.
const ownHost = "sessionproxy"

// isOwnHost reports whether a proxied request is for ownHost.
func isOwnHost(r *http.Request) bool {
	if r.Method == http.MethodConnect || r.URL.Scheme != "http" {
		return false
	}
	host := strings.TrimSuffix(r.URL.Host, ":80")
	return strings.EqualFold(host, ownHost)
}

// ownHostHandler serves the requests for ownHost.
func (s *Server) ownHostHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.onboardingPage)
	s.caRoutes(mux)
	mux.HandleFunc("POST /sessions/{id}/good", s.ownMark((*sessionpool.Session).MarkGood, false))
	mux.HandleFunc("POST /sessions/{id}/bad", s.ownMark((*sessionpool.Session).MarkBad, false))
	mux.HandleFunc("POST /sessions/{id}/retire", s.ownMark((*sessionpool.Session).Retire, true))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such page on http://"+ownHost+"/: "+r.Method+" "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && crossSite(r) {
			writeError(w, http.StatusForbidden, "cross-site request refused")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// marked is what a proxy client learns of a session it marked through the
// own host: its standing, never its cookies, user data or upstream, which
// only the admin API (behind its token) shows. Any proxy client may mark
// any name it can guess.
type marked struct {
	ID         string  `json:"id"`
	Site       string  `json:"site"`
	Usable     bool    `json:"usable"`
	Retired    bool    `json:"retired"`
	ErrorScore float64 `json:"errorScore"`
	UsageCount int     `json:"usageCount"`
}

// ownMark returns the handler that marks the sessions of a name (see
// ownHost): 200 with their standing (marked); 409 when none of them is
// usable (for good and bad; a retirement is idempotent).
func (s *Server) ownMark(mark func(*sessionpool.Session), retire bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		held := s.sessionsOr404(w, r)
		if len(held) == 0 {
			return
		}
		states := make([]marked, 0, len(held))
		for _, sess := range held {
			if retire || sess.IsUsable() {
				mark(sess)
				states = append(states, marked{ID: sess.ID(), Site: sess.Site(), Usable: sess.IsUsable(),
					Retired: sess.Retired(), ErrorScore: sess.ErrorScore(), UsageCount: sess.UsageCount()})
			}
		}
		if len(states) == 0 {
			writeError(w, http.StatusConflict, fmt.Sprintf("session %q is not usable (retired, blocked, worn out or expired)", r.PathValue("id")))
			return
		}
		writeJSON(w, http.StatusOK, states)
	}
}

// crossSite reports whether a browser says r comes from a page of another
// origin than http://sessionproxy.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	origin := r.Header.Get("Origin")
	return origin != "" && !strings.EqualFold(origin, "http://"+ownHost)
}

// onboardingPage writes the page that tells each kind of client how to
// trust the proxy's CA.
func (s *Server) onboardingPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	onboardingTemplate.Execute(w, struct{ SPKI, Proxy string }{s.ca.SPKIHash(), proxyAddrFor(r)})
}

// proxyAddrFor is the proxy's address as the client reached it, for the
// page's examples ("127.0.0.1:8080" when unknown).
func proxyAddrFor(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return "127.0.0.1:8080"
}

var onboardingTemplate = template.Must(template.New("onboarding").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sessionproxy: trust the CA</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em;color:#222}
code,pre{font:13px ui-monospace,monospace;background:#f3f3f3}pre{padding:.6em;white-space:pre-wrap;overflow-wrap:anywhere}h2{margin-top:1.6em}</style></head>
<body>
<h1>sessionproxy</h1>
<p>You reached this page through the proxy: it intercepts HTTPS with its own certificate authority.
Trust that CA in your client, or intercepted sites fail with certificate errors.</p>
<p><a href="/ca.pem">Download the CA (PEM)</a> · <a href="/ca.der">(DER, for Windows and Android)</a></p>
<p>SPKI hash (for Chromium): <code id="spki">{{.SPKI}}</code></p>

<h2>curl</h2>
<pre>curl -x http://{{.Proxy}} --cacert sessionproxy-ca.pem https://example.com/</pre>

<h2>Chromium, Puppeteer, Playwright</h2>
<p>Nothing to install: start the browser with</p>
<pre>--proxy-server=http://{{.Proxy}} --ignore-certificate-errors-spki-list={{.SPKI}}</pre>

<h2>Scrapy</h2>
<p>Scrapy does not verify certificates by default: set <code>http_proxy</code> and <code>https_proxy</code> to
<code>http://{{.Proxy}}</code> and crawl.</p>

<h2>Python requests, Node.js</h2>
<pre>REQUESTS_CA_BUNDLE=sessionproxy-ca.pem    # requests
NODE_EXTRA_CA_CERTS=sessionproxy-ca.pem   # node</pre>

<h2>Debian, Ubuntu</h2>
<pre>sudo cp sessionproxy-ca.pem /usr/local/share/ca-certificates/sessionproxy.crt
sudo update-ca-certificates</pre>

<h2>macOS</h2>
<pre>sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain sessionproxy-ca.pem</pre>

<h2>Windows</h2>
<pre>certutil -addstore root sessionproxy-ca.der</pre>

<h2>Firefox</h2>
<p>Settings → Privacy &amp; Security → Certificates → View Certificates → Authorities → Import, then tick
“Trust this CA to identify websites”.</p>

<h2>Telling the proxy a page was a block</h2>
<p>When your code sees a block that no rule can (a login wall, an empty result), mark the session it used
(the <code>X-Session-Id</code> of the response) through the proxy itself:</p>
<pre>curl -x http://{{.Proxy}} -X POST http://sessionproxy/sessions/SESSION_ID/retire   # or /bad, /good</pre>
</body></html>
`))
