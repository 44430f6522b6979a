package proxy

import (
	"net/http"
	"runtime/debug"

	"github.com/sessionproxy/sessionproxy/proxy/record"
)

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
