package proxy

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
)

// dashboardFiles are the dashboard's page, script and style sheet. The page
// links the other two by relative name, so it can be opened from disk while
// it is being worked on; buildDashboard inlines them.
//
//go:embed dashboard
var dashboardFiles embed.FS

// The tags of dashboard/index.html that buildDashboard replaces with the
// inlined files.
const (
	dashboardStyleTag  = `<link rel="stylesheet" href="style.css">`
	dashboardScriptTag = `<script src="app.js"></script>`
)

// errDashboard reports an embedded dashboard that cannot be assembled.
var errDashboard = errors.New("proxy: dashboard assets")

// dashboardPage is the assembled dashboard: one self-contained HTML
// document, and the Content-Security-Policy that lets only its own inline
// script and style run and only the admin API's own origin be fetched.
type dashboardPage struct {
	html []byte
	csp  string
}

// buildDashboard inlines dashboard/style.css and dashboard/app.js into
// dashboard/index.html, so GET / is a single response (the one path that
// has to be reachable without the bearer token) and the CSP can name the
// inline script and style by hash.
func buildDashboard(fsys fs.FS) (dashboardPage, error) {
	read := func(name string) ([]byte, error) {
		b, err := fs.ReadFile(fsys, "dashboard/"+name)
		if err != nil {
			return nil, fmt.Errorf("%w: read %s: %w", errDashboard, name, err)
		}
		return b, nil
	}
	page, err := read("index.html")
	if err != nil {
		return dashboardPage{}, err
	}
	style, err := read("style.css")
	if err != nil {
		return dashboardPage{}, err
	}
	script, err := read("app.js")
	if err != nil {
		return dashboardPage{}, err
	}
	if bytes.Contains(bytes.ToLower(style), []byte("</style")) {
		return dashboardPage{}, fmt.Errorf("%w: style.css contains </style", errDashboard)
	}
	if bytes.Contains(bytes.ToLower(script), []byte("</script")) {
		return dashboardPage{}, fmt.Errorf("%w: app.js contains </script", errDashboard)
	}
	inline := func(page []byte, tag, elem string, body []byte) ([]byte, error) {
		if bytes.Count(page, []byte(tag)) != 1 {
			return nil, fmt.Errorf("%w: index.html must hold %s exactly once", errDashboard, tag)
		}
		repl := make([]byte, 0, len(body)+2*len(elem)+5)
		repl = append(repl, "<"+elem+">"...)
		repl = append(repl, body...)
		repl = append(repl, "</"+elem+">"...)
		return bytes.Replace(page, []byte(tag), repl, 1), nil
	}
	if page, err = inline(page, dashboardStyleTag, "style", style); err != nil {
		return dashboardPage{}, err
	}
	if page, err = inline(page, dashboardScriptTag, "script", script); err != nil {
		return dashboardPage{}, err
	}
	hash := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	csp := "default-src 'none'; script-src " + hash(script) + "; style-src " + hash(style) +
		"; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return dashboardPage{html: page, csp: csp}, nil
}

// dashboardRoutes serves the dashboard on GET / of the admin listener and
// GET /stats/history, the outcome history its chart draws. The page holds
// no data: it fetches /stats, /sessions, /stats/history and /ca.spki with
// the bearer token it is given (#token=… or a form), every 2 seconds.
func (s *Server) dashboardRoutes(mux *http.ServeMux) {
	page, err := buildDashboard(dashboardFiles)
	if err != nil {
		s.log.Error("dashboard unavailable", "err", err)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", page.csp)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		w.Write(page.html)
	})
	mux.HandleFunc("GET /stats/history", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.rec.History())
	})
}

// dashboardPublic tells whether r asks for the dashboard's page itself:
// GET (or HEAD) of exactly "/". The page holds no data and no secret (it
// fetches everything with the bearer token it is given), and a browser
// cannot send a bearer header when it navigates, so requireToken lets it
// through without admin_token; everything the page fetches still wants the
// token.
func dashboardPublic(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/"
}
