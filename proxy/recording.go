package proxy

import (
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/record"
)

// Stats is a snapshot of the proxy's counters, as GET /stats serves it.
type Stats = record.Stats

// Stats returns the proxy's counters and the pool's counts.
func (s *Server) Stats() Stats { return s.rec.Stats() }

// newRecorder returns the recorder of s's counters, metrics and outcome
// history, on the clock now. It reads the session counts of s.pool when they
// are asked for (by GET /stats and the /metrics scrape), so s.pool must be
// set before s serves anything.
func (s *Server) newRecorder(now func() time.Time) *record.Recorder {
	return record.New(record.Options{
		Now:             now,
		UsableSessions:  func() int { return s.pool.UsableSessionsCount() },
		RetiredSessions: func() int { return s.pool.RetiredSessionsCount() },
		RequestLogSize:  requestLogSize(s.cfg.Load().RequestLog.Size),
	})
}

// requestLogSize is the recorder's RequestLogSize for the config's
// request_log.size, where 0 keeps none.
func requestLogSize(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
