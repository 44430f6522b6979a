package proxy

import "net/http"

// dashboardRoutes serves the dashboard on GET / of the admin listener.
// PLACEHOLDER: being written by the dashboard engineer.
func (s *Server) dashboardRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotImplemented, "the dashboard is not built yet")
	})
}
