package proxy

import (
	"maps"
	"sync"
	"sync/atomic"
)

// stats counts what the proxy did. Safe for concurrent use.
type stats struct {
	requests         atomic.Int64
	retries          atomic.Int64
	upstreamFailures atomic.Int64
	authFailures     atomic.Int64
	sessionsCreated  atomic.Int64
	sessionsRetired  atomic.Int64

	mu     sync.Mutex // guards blocks
	blocks map[string]int64
}

func newStats() *stats { return &stats{blocks: make(map[string]int64)} }

// block counts a bad or retiring verdict of a rule.
func (st *stats) block(rule string) {
	st.mu.Lock()
	st.blocks[rule]++
	st.mu.Unlock()
}

// Stats is a snapshot of the proxy's counters, as GET /stats serves it.
type Stats struct {
	UsableSessions   int              `json:"usableSessions"`
	RetiredSessions  int              `json:"retiredSessions"`
	Requests         int64            `json:"requests"`
	Retries          int64            `json:"retries"`
	UpstreamFailures int64            `json:"upstreamFailures"`
	AuthFailures     int64            `json:"authFailures"`
	SessionsCreated  int64            `json:"sessionsCreated"`
	SessionsRetired  int64            `json:"sessionsRetired"`
	BlocksByRule     map[string]int64 `json:"blocksByRule"`
}

// Stats returns the proxy's counters and the pool's counts.
func (s *Server) Stats() Stats {
	st := s.stats
	out := Stats{
		UsableSessions:   s.pool.UsableSessionsCount(),
		RetiredSessions:  s.pool.RetiredSessionsCount(),
		Requests:         st.requests.Load(),
		Retries:          st.retries.Load(),
		UpstreamFailures: st.upstreamFailures.Load(),
		AuthFailures:     st.authFailures.Load(),
		SessionsCreated:  st.sessionsCreated.Load(),
		SessionsRetired:  st.sessionsRetired.Load(),
		BlocksByRule:     make(map[string]int64),
	}
	st.mu.Lock()
	maps.Copy(out.BlocksByRule, st.blocks)
	st.mu.Unlock()
	return out
}
