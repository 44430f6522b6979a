package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// AdminHandler returns the admin API's handler. Every endpoint but /healthz
// wants "Authorization: Bearer <admin_token>" when a token is configured.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /sessions", s.adminListSessions)
	mux.HandleFunc("GET /sessions/{id}", s.adminGetSession)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
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
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("POST /reload", s.adminReload)
	s.dashboardRoutes(mux) // GET / and what the dashboard page fetches
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s.requireToken(mux)
}

// requireToken enforces admin_token on everything but /healthz.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := s.cfg.Load().AdminToken
		if token != "" && r.URL.Path != "/healthz" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
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
	st := s.pool.State()
	switch filter := r.URL.Query().Get("state"); filter {
	case "":
	case "usable", "retired":
		kept := st.Sessions[:0]
		for _, ss := range st.Sessions {
			if s.stateUsable(ss) == (filter == "usable") {
				kept = append(kept, ss)
			}
		}
		st.Sessions = kept
	default:
		writeError(w, http.StatusBadRequest, `state must be "usable" or "retired" (got "`+filter+`")`)
		return
	}
	for i := range st.Sessions {
		st.Sessions[i] = redactState(st.Sessions[i])
	}
	if st.Sessions == nil {
		st.Sessions = []sessionpool.SessionState{}
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) adminGetSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, ss := range s.pool.State().Sessions {
		if ss.ID == id {
			writeJSON(w, http.StatusOK, redactState(ss))
			return
		}
	}
	writeError(w, http.StatusNotFound, "session not held: "+id)
}

// stateUsable tells from a session's state whether it is usable, with the
// pool's clock.
func (s *Server) stateUsable(ss sessionpool.SessionState) bool {
	return !ss.Retired && ss.ErrorScore < ss.MaxErrorScore && ss.UsageCount < ss.MaxUsageCount &&
		s.now().Before(ss.ExpiresAt)
}

// redactState hides the upstream's password: only the persisted state keeps
// it whole.
func redactState(ss sessionpool.SessionState) sessionpool.SessionState {
	if ss.ProxyURL != "" {
		if u, err := url.Parse(ss.ProxyURL); err == nil {
			ss.ProxyURL = u.Redacted()
		} else {
			ss.ProxyURL = "(unparsable)"
		}
	}
	return ss
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
