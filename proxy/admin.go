package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/cookiefile"
	"github.com/sessionproxy/sessionproxy/proxy/record"
	"github.com/sessionproxy/sessionproxy/proxy/sites"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// AdminHandler returns the admin API's handler: JSON in and out, every
// error as {"error": "..."} with a fitting status (404 for an unknown path,
// 405 with Allow for a known path and another method, 413 for a request
// body over 1 MiB). Every endpoint but /healthz (and the dashboard page)
// wants "Authorization: Bearer <admin_token>" when a token is configured.
// Requests for another Host, from another origin, or writing other than
// JSON are refused first (adminGuard).
//
//	GET    /sessions[?state=usable|retired|all] the pool's state
//	POST   /sessions                          add one: {"id","proxyUrl","cookies","userData"}, all optional
//	GET    /sessions/{id}                     one session's state
//	DELETE /sessions/{id}                     retire it (idempotent)
//	POST   /sessions/{id}/good, .../bad       mark a usable one
//	GET    /sessions/{id}/cookies?format=     export: json (default), netscape, playwright
//	PUT    /sessions/{id}/cookies[?format=]   import (merge), all or nothing
//	POST   /persist                           persist the pool now
//	GET    /requests[?session=&host=&status=&rule=&limit=]  the request log, newest first; /requests.har as HAR 1.2
//	GET    /stats, /metrics, /ca.pem, /ca.der, /ca.spki; POST /reload; GET / (dashboard)
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /sessions", s.adminListSessions)
	mux.HandleFunc("GET /sessions/{id}", s.adminGetSession)
	mux.HandleFunc("POST /sessions", s.adminAddSession)
	mux.HandleFunc("DELETE /sessions/{id}", s.adminRetireSession)
	mux.HandleFunc("POST /sessions/{id}/good", s.adminMarkSession((*sessionpool.Session).MarkGood))
	mux.HandleFunc("POST /sessions/{id}/bad", s.adminMarkSession((*sessionpool.Session).MarkBad))
	mux.HandleFunc("GET /sessions/{id}/cookies", s.adminExportCookies)
	mux.HandleFunc("PUT /sessions/{id}/cookies", s.adminImportCookies)
	mux.HandleFunc("POST /persist", s.adminPersist)
	mux.HandleFunc("GET /requests", s.adminRequests(false))
	mux.HandleFunc("GET /requests.har", s.adminRequests(true))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	s.caRoutes(mux)
	mux.Handle("GET /metrics", s.rec.MetricsHandler())
	mux.HandleFunc("POST /reload", s.adminReload)
	s.dashboardRoutes(mux) // GET / and what the dashboard page fetches
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+
				" (allowed: "+strings.Join(allow, ", ")+")")
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s.adminGuard(mux, s.requireToken(mux))
}

// requireToken enforces admin_token on everything but /healthz.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := s.cfg.Load().AdminToken
		if token != "" && r.URL.Path != "/healthz" && !dashboardPublic(r) {
			got, ok := bearerToken(r.Header.Get("Authorization"))
			if !ok || !constantTimeEqual(got, token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sessionproxy admin"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// adminReload re-reads the config file, as SIGHUP does: 200 with the keys
// that still need a restart, or 400 with every problem and the running
// config kept.
func (s *Server) adminReload(w http.ResponseWriter, r *http.Request) {
	restart, err := s.Reload()
	if err != nil {
		s.log.Warn("config reload refused", "err", err)
		status := http.StatusBadRequest
		if errors.Is(err, ErrNoConfigFile) {
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	if restart == nil {
		restart = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true, "restartNeededFor": restart})
}

func (s *Server) adminListSessions(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("state")
	switch filter {
	case "", "all", "usable", "retired":
	default:
		writeError(w, http.StatusBadRequest, `state must be "usable", "retired" or "all" (got "`+filter+`")`)
		return
	}
	pools := s.knownPools(r.Context())
	if r.URL.Query().Has("site") {
		site := sites.Of(r.URL.Query().Get("site")) // as POST /sessions names it
		pools = slices.DeleteFunc(pools, func(p *sessionpool.Pool) bool { return p.Site() != site })
	}
	// Each session's state and usability are read together, with the
	// pool's own predicate; the counts cover every listed site's whole
	// pool, as State's do.
	st := sessionpool.PoolState{Sessions: []sessionpool.SessionState{}}
	for _, p := range pools {
		for _, sess := range p.Sessions() {
			usable := sess.IsUsable()
			if usable {
				st.UsableSessionsCount++
			} else {
				st.RetiredSessionsCount++
			}
			if filter == "" || filter == "all" || usable == (filter == "usable") {
				st.Sessions = append(st.Sessions, s.shownState(sess))
			}
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) adminGetSession(w http.ResponseWriter, r *http.Request) {
	if sess := s.sessionOr404(w, r); sess != nil {
		writeJSON(w, http.StatusOK, s.shownState(sess))
	}
}

// shownState is a session's state as the admin API shows it: redactState,
// with the session's effective fingerprint mode.
func (s *Server) shownState(sess *sessionpool.Session) sessionpool.SessionState {
	ss := redactState(sess.State())
	ss.Fingerprint = fingerprintOf(sess, s.cfg.Load())
	return ss
}

// redactState hides the upstream's password: only the persisted state keeps
// it whole. No cookies are shown as [], not null.
func redactState(ss sessionpool.SessionState) sessionpool.SessionState {
	if ss.Cookies == nil {
		ss.Cookies = []sessionpool.Cookie{}
	}
	ss.ProxyURL = upstream.Redact(ss.ProxyURL)
	return ss
}

// maxAdminBody bounds the request bodies of the admin API.
const maxAdminBody = 1 << 20

// errBadBody is wrapped by the errors about a request body that cannot be
// decoded.
var errBadBody = errors.New("proxy: bad request body")

// allowedMethods lists the methods the admin mux serves on r's path, other
// than r's own: a path served for some method gets 405, not 404.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// readAdminBody reads r's body up to maxAdminBody bytes, each of its
// reads within idle_timeout: a client that stops sending its body does not
// hold the handler. On failure it has answered (413 for a body too large,
// 408 for one that stalled) and returns false.
func (s *Server) readAdminBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	rc := http.NewResponseController(w)
	body, err := io.ReadAll(&deadlineReader{r: http.MaxBytesReader(w, r.Body, maxAdminBody), rc: rc, idle: s.cfg.Load().IdleTimeout})
	if err != nil {
		_, tooLarge := errors.AsType[*http.MaxBytesError](err)
		ne, isNet := errors.AsType[net.Error](err)
		switch {
		case tooLarge:
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxAdminBody))
		case isNet && ne.Timeout():
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestTimeout, "read request body: nothing came for "+s.cfg.Load().IdleTimeout.String())
		default:
			writeError(w, http.StatusBadRequest, "read request body: "+err.Error())
		}
		return nil, false // the deadline stays: the server's drain of the rest is bounded too
	}
	rc.SetReadDeadline(time.Time{})
	return body, true
}

// deadlineReader reads r with a read deadline idle from now before every
// read; none when idle is not positive.
type deadlineReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.idle > 0 {
		d.rc.SetReadDeadline(time.Now().Add(d.idle))
	}
	return d.r.Read(p)
}

// cookieMessage is err's message for an API client when it may be about
// cookies that cannot be imported: "bad cookies: " and the problems with
// their lines.
func cookieMessage(err error) string {
	if ce, ok := errors.AsType[*cookiefile.Error](err); ok && errors.Is(ce.Err, cookiefile.ErrBadCookies) {
		return "bad cookies: " + ce.Detail()
	}
	return err.Error()
}

// sessionOr404 returns the held session named by the path (on the site
// ?site= names, when given), or answers 404, or 409 when the name is held
// on several sites and no ?site= says which.
func (s *Server) sessionOr404(w http.ResponseWriter, r *http.Request) *sessionpool.Session {
	held := s.sessionsOr404(w, r)
	if len(held) > 1 {
		names := make([]string, len(held))
		for i, sess := range held {
			names[i] = strconv.Quote(sess.Site())
		}
		writeError(w, http.StatusConflict, fmt.Sprintf("session %q is held on several sites (%s): add ?site=", r.PathValue("id"), strings.Join(names, ", ")))
		return nil
	}
	if len(held) == 0 {
		return nil
	}
	return held[0]
}

// sessionsOr404 returns the held sessions named by the path, on the site
// ?site= names or on every site, or answers 404 when there are none.
func (s *Server) sessionsOr404(w http.ResponseWriter, r *http.Request) []*sessionpool.Session {
	id := r.PathValue("id")
	site, onSite := sites.Of(r.URL.Query().Get("site")), r.URL.Query().Has("site")
	held := s.heldSessions(id, site, onSite)
	if len(held) == 0 {
		msg := fmt.Sprintf("session not held: %q", id)
		if onSite {
			msg = fmt.Sprintf("session not held on site %q: %q", site, id)
		}
		writeError(w, http.StatusNotFound, msg)
	}
	return held
}

// addSessionRequest is the body of POST /sessions.
type addSessionRequest struct {
	ID          string
	Site        string
	ProxyURL    string
	Fingerprint string
	Cookies     []cookiefile.Cookie
	UserData    map[string]any
}

// decodeAddSession reads a POST /sessions body: a JSON object with the
// optional fields id, site, proxyUrl, fingerprint, cookies (as GET .../cookies?format=json
// writes them) and userData. An empty body is an empty object. Unknown and
// repeated fields are errors.
func decodeAddSession(body []byte) (addSessionRequest, error) {
	var req addSessionRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return req, nil
	}
	d := cookiefile.NewJSONReader(body, errBadBody)
	if err := d.ExpectDelim('{', "a JSON object"); err != nil {
		return req, err
	}
	seen := make(map[string]bool)
	for d.More() {
		line := d.Line(d.ValueOffset())
		key, err := d.Key()
		if err != nil {
			return req, err
		}
		if seen[key] {
			return req, fmt.Errorf("%w: line %d: field %q given twice", errBadBody, line, key)
		}
		seen[key] = true
		switch key {
		case "id":
			err = d.Value(&req.ID, "id", "a string")
		case "site":
			err = d.Value(&req.Site, "site", "a string")
		case "proxyUrl":
			err = d.Value(&req.ProxyURL, "proxyUrl", "a string")
		case "fingerprint":
			err = d.Value(&req.Fingerprint, "fingerprint", "a string")
		case "userData":
			err = d.Value(&req.UserData, "userData", "an object")
		case "cookies":
			if req.Cookies, err = cookiefile.ParseJSONAt(body, d.ValueOffset()); err == nil {
				err = d.Skip()
			}
		default:
			err = fmt.Errorf("%w: line %d: unknown field %q (want id, site, proxyUrl, fingerprint, cookies or userData)", errBadBody, line, key)
		}
		if err != nil {
			return req, err
		}
	}
	if err := d.CloseObject(); err != nil {
		return req, err
	}
	return req, d.End()
}

// adminAddSession adds a session: 201 with its state, 409 when a usable
// session holds the id, 400 for a bad body.
func (s *Server) adminAddSession(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readAdminBody(w, r)
	if !ok {
		return
	}
	req, err := decodeAddSession(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, cookieMessage(err))
		return
	}
	if req.ID != "" && !validSessionName(req.ID) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("id must be 1 to 128 letters, digits, '.', '_' or '-' (got %q)", req.ID))
		return
	}
	if req.ID == newSessionName {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("id %q is taken by the session header: it asks for a fresh session, so a session of that name could never be reached", req.ID))
		return
	}
	if req.Fingerprint != "" && !config.ValidFingerprint(req.Fingerprint) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("fingerprint must be one of %s (got %q)", config.FingerprintNames(), req.Fingerprint))
		return
	}
	opts := sessionpool.SessionOptions{ID: req.ID, UserData: req.UserData, Fingerprint: req.Fingerprint}
	if req.ProxyURL != "" {
		u, err := upstream.Parse(req.ProxyURL)
		if err != nil {
			msg := err.Error()
			if pe, ok := errors.AsType[*upstream.ParseError](err); ok {
				msg = fmt.Sprintf("%s (got %q)", pe.Problem, pe.URL)
			}
			writeError(w, http.StatusBadRequest, "proxyUrl: "+msg)
			return
		}
		if upstream.HasPlaceholder(u) && opts.ID == "" {
			opts.ID = sessionpool.NewID()
		}
		opts.ProxyURL = upstream.ForSession(u, opts.ID).String()
	}
	site := sites.Of(req.Site)
	if s.global && site != "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("site must be empty with pool.scope global (got %q)", req.Site))
		return
	}
	pool, err := s.sites.Pool(r.Context(), site)
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, sessionpool.ErrInvalidOptions) {
			status = http.StatusBadRequest // a site the store cannot name
		}
		writeError(w, status, "add session: "+err.Error())
		return
	}
	cookies, _ := cookiefile.Live(req.Cookies, s.now())
	if cookies, err = cookiefile.CheckWithJar(pool, cookies); err != nil {
		writeError(w, http.StatusBadRequest, cookieMessage(err))
		return
	}
	if req.ID != "" && !s.global {
		if other, ok := s.servingElsewhere(r.Context(), site, req.ID); ok {
			writeError(w, http.StatusConflict, fmt.Sprintf("a usable session already holds the id %q (on site %q)", req.ID, other))
			return
		}
	}
	sess, err := pool.AddSession(r.Context(), opts)
	if err != nil {
		status := http.StatusInternalServerError
		msg := "add session: " + err.Error()
		switch {
		case errors.Is(err, sessionpool.ErrSessionExists):
			status, msg = http.StatusConflict, fmt.Sprintf("a usable session already holds the id %q", req.ID)
		case errors.Is(err, sessionpool.ErrInvalidOptions):
			status = http.StatusBadRequest
		case errors.Is(err, sessionpool.ErrPoolClosed):
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, msg)
		return
	}
	cookiefile.Apply(sess, cookies)
	s.log.Info("session added by the admin API", "session", sess.ID(), "site", site, "cookies", len(cookies))
	loc := "/sessions/" + url.PathEscape(sess.ID())
	if site != "" {
		loc += "?site=" + url.QueryEscape(site)
	}
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, s.shownState(sess))
}

// adminRetireSession retires a held session (idempotent): 200 with its
// state.
func (s *Server) adminRetireSession(w http.ResponseWriter, r *http.Request) {
	sess := s.sessionOr404(w, r)
	if sess == nil {
		return
	}
	sess.Retire()
	writeJSON(w, http.StatusOK, s.shownState(sess))
}

// adminMarkSession returns the handler that marks a usable session with
// mark: 200 with its state, 409 when it is no longer usable.
func (s *Server) adminMarkSession(mark func(*sessionpool.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.sessionOr404(w, r)
		if sess == nil {
			return
		}
		if !sess.IsUsable() {
			writeError(w, http.StatusConflict, fmt.Sprintf("session %q is not usable (retired, blocked, worn out or expired)", sess.ID()))
			return
		}
		mark(sess)
		writeJSON(w, http.StatusOK, s.shownState(sess))
	}
}

// adminExportCookies writes a session's cookies in ?format= json (the
// default), netscape or playwright.
func (s *Server) adminExportCookies(w http.ResponseWriter, r *http.Request) {
	format := cookiefile.JSON
	if name := r.URL.Query().Get("format"); name != "" {
		var err error
		if format, err = cookiefile.ParseFormat(name); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("format must be json, netscape or playwright (got %q)", name))
			return
		}
	}
	sess := s.sessionOr404(w, r)
	if sess == nil {
		return
	}
	w.Header().Set("Content-Type", format.ContentType())
	w.Write(cookiefile.Encode(format, sess.State().Cookies))
}

// importFormat decides the format of a PUT .../cookies body: ?format= when
// given; otherwise text/plain means netscape, and any other body is told by
// its first non-blank byte: '[' json, '{' playwright, anything else
// netscape (an application/json body must start with '[' or '{').
func importFormat(r *http.Request, body []byte) (cookiefile.Format, error) {
	if f := r.URL.Query().Get("format"); f != "" {
		format, err := cookiefile.ParseFormat(f)
		if err != nil {
			return 0, fmt.Errorf("format must be json, netscape or playwright (got %q)", f)
		}
		return format, nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "text/plain" {
		return cookiefile.Netscape, nil
	}
	switch first := bytes.TrimLeft(body, " \t\r\n"); {
	case len(first) > 0 && first[0] == '[':
		return cookiefile.JSON, nil
	case len(first) > 0 && first[0] == '{':
		return cookiefile.Playwright, nil
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return 0, errors.New("a JSON body must be a list of cookies (json) or a storageState object (playwright)")
	}
	return cookiefile.Netscape, nil
}

// adminImportCookies imports cookies into a usable session, all or
// nothing: 200 with how many were imported (cookies already expired are
// skipped and counted apart) and the session's state; 400 naming the line
// of every problem.
func (s *Server) adminImportCookies(w http.ResponseWriter, r *http.Request) {
	sess := s.sessionOr404(w, r)
	if sess == nil {
		return
	}
	if !sess.IsUsable() {
		writeError(w, http.StatusConflict, fmt.Sprintf("session %q is not usable (retired, blocked, worn out or expired): add a new one", sess.ID()))
		return
	}
	body, ok := s.readAdminBody(w, r)
	if !ok {
		return
	}
	format, err := importFormat(r, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cookies, err := cookiefile.Parse(format, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, format.String()+": "+cookieMessage(err))
		return
	}
	cookies, expired := cookiefile.Live(cookies, s.now())
	pool := s.sites.Lookup(sess.Site())
	if pool == nil {
		writeError(w, http.StatusServiceUnavailable, "import cookies: the pools are closed")
		return
	}
	if cookies, err = cookiefile.CheckWithJar(pool, cookies); err != nil {
		writeError(w, http.StatusBadRequest, format.String()+": "+cookieMessage(err))
		return
	}
	cookiefile.Apply(sess, cookies)
	s.log.Info("cookies imported by the admin API", "session", sess.ID(), "format", format,
		"imported", len(cookies), "skipped_expired", expired)
	writeJSON(w, http.StatusOK, map[string]any{
		"imported":       len(cookies),
		"skippedExpired": expired,
		"format":         format,
		"session":        s.shownState(sess),
	})
}

// adminPersist persists the pool now: 200 with the number of sessions
// held, 500 with the store's error.
func (s *Server) adminPersist(w http.ResponseWriter, r *http.Request) {
	n := 0
	for _, p := range s.knownPools(r.Context()) {
		n += len(p.Sessions())
	}
	if err := s.sites.PersistState(r.Context()); err != nil { // logged by persisted
		status := http.StatusInternalServerError
		if errors.Is(err, sessionpool.ErrPoolClosed) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, "persist: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"persisted": true, "sessions": n})
}

// adminRequests serves the request log, newest first, filtered by the query
// parameters session, host, status, rule and limit: GET /requests as JSON,
// GET /requests.har as an HTTP Archive 1.2 without bodies.
func (s *Server) adminRequests(har bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := record.ParseRequestFilter(r.URL.Query())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		reqs := s.rec.Requests(f)
		if !har {
			writeJSON(w, http.StatusOK, map[string]any{"requests": reqs})
			return
		}
		w.Header().Set("Content-Disposition", `attachment; filename="sessionproxy.har"`)
		writeJSON(w, http.StatusOK, record.NewHAR(reqs, buildVersion()))
	}
}

// buildVersion is the module's version as the build recorded it ("(devel)"
// for a build from a checkout).
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// caRoutes adds the CA's downloads to mux: GET /ca.pem, /ca.der and
// /ca.spki (the hash Chromium's --ignore-certificate-errors-spki-list
// takes).
func (s *Server) caRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Disposition", `attachment; filename="sessionproxy-ca.pem"`)
		w.Write(s.ca.CertPEM())
	})
	mux.HandleFunc("GET /ca.der", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-x509-ca-cert")
		w.Header().Set("Content-Disposition", `attachment; filename="sessionproxy-ca.der"`)
		w.Write(s.ca.CertDER())
	})
	mux.HandleFunc("GET /ca.spki", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(s.ca.SPKIHash() + "\n"))
	})
}
