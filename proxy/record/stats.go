package record

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// stats counts what the proxy did, for GET /stats. Its zero value is not
// usable; use newStats. Safe for concurrent use.
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
	attempts  map[string]int64 // by outcome
}

func newStats() *stats {
	return &stats{blocks: make(map[string]int64), byOutcome: make(map[string]int64), attempts: make(map[string]int64)}
}

// attempt counts one attempt under its outcome, known or not.
func (st *stats) attempt(o Outcome) {
	st.mu.Lock()
	st.attempts[string(o)]++
	st.mu.Unlock()
}

// block counts a bad or retiring verdict of a rule.
func (st *stats) block(rule string) {
	st.mu.Lock()
	st.blocks[rule]++
	st.mu.Unlock()
}

// finish counts a finished request under its outcome, known or not.
func (st *stats) finish(o Outcome) {
	st.requests.Add(1)
	st.mu.Lock()
	st.byOutcome[string(o)]++
	st.mu.Unlock()
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
	Attempts         AttemptStats     `json:"attempts"`
}

// AttemptStats counts every attempt of every request, retried ones included
// (ByOutcome above counts only each request's final outcome).
type AttemptStats struct {
	// ByOutcome counts attempts by the action of their verdict (good, bad,
	// retire, none) and error for those that got no response. An
	// outcome no attempt had yet is absent.
	ByOutcome map[string]int64 `json:"byOutcome"`
}

// Stats returns the counters and the pool's session counts, as GET /stats
// serves them.
func (r *Recorder) Stats() Stats {
	st := r.stats
	out := Stats{
		UsableSessions:   count(r.usable),
		RetiredSessions:  count(r.retired),
		Requests:         st.requests.Load(),
		Retries:          st.retries.Load(),
		UpstreamFailures: st.upstreamFailures.Load(),
		AuthFailures:     st.authFailures.Load(),
		SessionsCreated:  st.sessionsCreated.Load(),
		SessionsRetired:  st.sessionsRetired.Load(),
		ByOutcome:        make(map[string]int64),
		BlocksByRule:     make(map[string]int64),
		Attempts:         AttemptStats{ByOutcome: make(map[string]int64)},
	}
	st.mu.Lock()
	maps.Copy(out.BlocksByRule, st.blocks)
	maps.Copy(out.ByOutcome, st.byOutcome)
	maps.Copy(out.Attempts.ByOutcome, st.attempts)
	st.mu.Unlock()
	return out
}

// count calls a session count func; a nil one counts 0.
func count(f func() int) int {
	if f == nil {
		return 0
	}
	return f()
}
