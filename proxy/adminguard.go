package proxy

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
)

// adminGuard refuses what a web page or a misdirected client may send the
// admin API, before the token is looked at:
//   - 421 for a Host that is neither the address the request came in on
//     (also localhost:PORT when that is loopback) nor a name in admin_hosts:
//     a page on a rebound name (DNS rebinding) gets nothing;
//   - 403 for a cross-origin request (an Origin other than the admin's own,
//     or Sec-Fetch-Site other than same-origin or none), on every endpoint
//     but GET and HEAD of /healthz and the CA;
//   - 415 for a write (POST, PUT, PATCH, DELETE with a body) to a known
//     endpoint whose Content-Type is not JSON; PUT .../cookies, whose
//     formats include cookies.txt (text/plain), refuses only the form types.
//
// It reads the config in force on each request; safe for concurrent use.
func (s *Server) adminGuard(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !adminHostAllowed(r, s.cfg.Load().AdminHosts) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf(
				"Host %q is not this admin API's address %s: use that address, or list the name in admin_hosts",
				r.Host, localAddr(r)))
			return
		}
		if !crossOriginExempt(r) {
			if why := adminCrossOrigin(r); why != "" {
				writeError(w, http.StatusForbidden, "cross-origin request refused: "+why)
				return
			}
		}
		if _, pattern := mux.Handler(r); pattern != "/" && hasBody(r) {
			if ct := r.Header.Get("Content-Type"); !adminContentTypeOK(ct, pattern) {
				writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf(
					"%s %s wants Content-Type: application/json (got %q)", r.Method, r.URL.Path, ct))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// localAddr is the address r came in on, "" when unknown.
func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}

// adminHostAllowed reports whether r's Host names the address r came in on
// (an IP address and its port, or localhost and the port of a loopback
// address) or matches one of extra (host, any port; or host:port).
func adminHostAllowed(r *http.Request, extra []string) bool {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = strings.Trim(r.Host, "[]"), "80"
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return false
	}
	if lh, lp, err := net.SplitHostPort(localAddr(r)); err == nil && lp == port {
		ip, lip := net.ParseIP(host), net.ParseIP(lh)
		if lip != nil && (ip.Equal(lip) || host == "localhost" && lip.IsLoopback()) {
			return true
		}
	}
	for _, e := range extra {
		if eh, ep, err := net.SplitHostPort(e); err == nil {
			if strings.Trim(eh, "[]") == host && ep == port {
				return true
			}
		} else if strings.Trim(e, "[]") == host {
			return true
		}
	}
	return false
}

// crossOriginExempt reports whether r may come from any origin: a GET or
// HEAD of /healthz or of the CA, which hold nothing secret.
func crossOriginExempt(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch r.URL.Path {
	case "/healthz", "/ca.pem", "/ca.der", "/ca.spki":
		return true
	}
	return false
}

// adminCrossOrigin says why a browser tells r comes from a page of another
// origin than the admin API's own (http://HOST, HOST as r names it), ""
// when it does not.
func adminCrossOrigin(r *http.Request) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return fmt.Sprintf("Sec-Fetch-Site is %q", site)
	}
	if origin := r.Header.Get("Origin"); origin != "" && !strings.EqualFold(origin, "http://"+r.Host) {
		return fmt.Sprintf("Origin %q is not http://%s", origin, r.Host)
	}
	return ""
}

// hasBody reports whether r carries a request body (of a known length
// above zero, or chunked).
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
}

// adminContentTypeOK reports whether ct is a Content-Type the endpoint of
// pattern takes for a body: JSON (application/json, application/*+json);
// PUT .../cookies takes any but the form types.
func adminContentTypeOK(ct, pattern string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if ct != "" && err != nil {
		return false
	}
	if mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") {
		return true
	}
	// A cookie import's format is told by ?format=, text/plain or its first
	// byte: any type but the two form types, which a web page can send
	// without asking first (CORS), is taken.
	return pattern == "PUT /sessions/{id}/cookies" && mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data"
}
