package proxy

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// Outcomes of a request beyond the four actions (good, bad, retire, none)
// of the verdict that closed it.
const (
	outcomeError    = "error"    // no response came: the upstream or origin failed
	outcomeRejected = "rejected" // the proxy answered itself (bad session name, store down, shutting down)
	outcomeCanceled = "canceled" // the client went away before a response came
	outcomeTunnel   = "tunnel"   // a CONNECT tunnel without interception was opened
)

// event is one finished request as the counters, the metrics and the
// dashboard's history see it.
type event struct {
	outcome  string        // the verdict's action, or one of the outcome constants
	rule     string        // the rule that decided; "" when none matched
	status   int           // the status the client got; 0 when none
	retries  int           // attempts beyond the first
	duration time.Duration // from the request's arrival to its verdict
}

// stats counts what the proxy did. Safe for concurrent use.
type stats struct {
	requests         atomic.Int64
	retries          atomic.Int64
	upstreamFailures atomic.Int64
	authFailures     atomic.Int64
	sessionsCreated  atomic.Int64
	sessionsRetired  atomic.Int64

	mu        sync.Mutex // guards the maps below
	blocks    map[string]int64
	byOutcome map[string]int64
}

func newStats() *stats {
	return &stats{blocks: make(map[string]int64), byOutcome: make(map[string]int64)}
}

// block counts a bad or retiring verdict of a rule.
func (st *stats) block(rule string) {
	st.mu.Lock()
	st.blocks[rule]++
	st.mu.Unlock()
}

// finish records a finished request everywhere it is counted.
func (s *Server) finish(ev event) {
	s.stats.requests.Add(1)
	s.stats.mu.Lock()
	s.stats.byOutcome[ev.outcome]++
	s.stats.mu.Unlock()
	s.metrics.observeRequest(ev)
	s.history.observe(ev, time.Now())
}

// retried records one more attempt of a request on a fresh session.
func (s *Server) retried() {
	s.stats.retries.Add(1)
	s.metrics.observeRetry()
}

// upstreamFailed records an attempt that got no response.
func (s *Server) upstreamFailed(uerr *upstream.Error) {
	s.stats.upstreamFailures.Add(1)
	s.metrics.observeUpstreamFailure(uerr.Hop, string(uerr.Kind))
}

// sessionCreated and sessionRetired record the pool's comings and goings.
func (s *Server) sessionCreated() {
	s.stats.sessionsCreated.Add(1)
	s.metrics.observeSessionCreated()
}

func (s *Server) sessionRetiredStats(st sessionpool.SessionState) {
	s.stats.sessionsRetired.Add(1)
	s.metrics.observeSessionRetired(retireReason(st))
}

// retireReason tells why a session stopped being usable: "blocked" (error
// score), "worn_out" (uses) or "retired" (a rule or the admin API).
func retireReason(st sessionpool.SessionState) string {
	switch {
	case st.ErrorScore >= st.MaxErrorScore:
		return "blocked"
	case st.UsageCount >= st.MaxUsageCount:
		return "worn_out"
	}
	return "retired"
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
	ByOutcome        map[string]int64 `json:"byOutcome"`
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
		ByOutcome:        make(map[string]int64),
		BlocksByRule:     make(map[string]int64),
	}
	st.mu.Lock()
	maps.Copy(out.BlocksByRule, st.blocks)
	maps.Copy(out.ByOutcome, st.byOutcome)
	st.mu.Unlock()
	return out
}
