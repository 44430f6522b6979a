// Package record records what the proxy does, once per happening, and keeps
// it in the three forms it is read in: the counters of GET /stats, the
// Prometheus metrics of GET /metrics and the outcome history the dashboard
// charts (GET /stats/history).
//
// A Recorder is fed one Event per finished request (Finish), one outcome
// per attempt (Attempt) and one call per other happening (a retry, an upstream failure, a rule's block, an auth
// failure, a session created or retired, a persistence of the pool). It
// never logs and holds no global state: every Recorder has its own
// Prometheus registry.
package record

import (
	"net/http"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// Options configures New. Its zero value records with the real clock and
// without session counts.
type Options struct {
	// Now is the clock of the history: a finished request is counted in
	// the bucket of Now() and History ends with the bucket of Now(). Nil
	// means time.Now.
	Now func() time.Time
	// UsableSessions and RetiredSessions report the pool's session counts
	// for Stats and for the gauge sessionproxy_sessions, which calls them
	// at scrape time from the scraping goroutine, so they must be safe for
	// concurrent use. A nil one counts 0 in Stats and leaves its gauge out.
	UsableSessions  func() int
	RetiredSessions func() int
	// RequestLogSize is how many finished requests the request log keeps
	// (Requests, HAR): 0 means DefaultRequestLogSize, a negative size keeps
	// none.
	RequestLogSize int
	// Sites are the site labels sessionproxy_requests_total always keeps
	// (the configured sites); the other sites share MaxSiteLabels labels:
	// the first ones seen have them, then at each scrape those with the most
	// requests so far; the rest are "other".
	Sites []string
	// MaxSiteLabels bounds the labels of sites not in Sites. 0 means
	// DefaultMaxSiteLabels; negative: every such site is "other".
	MaxSiteLabels int
}

// DefaultMaxSiteLabels is Options.MaxSiteLabels' default.
const DefaultMaxSiteLabels = 100

// Event is one finished request as the recorder sees it. Its zero value is a
// request with the empty outcome, which only the counters of Stats and
// sessionproxy_requests_total keep.
type Event struct {
	Outcome  Outcome       // the verdict's action, or what happened instead
	Rule     string        // the rule that decided; "" when none matched
	Status   int           // the status the client got; 0 when none
	Retries  int           // attempts beyond the first
	Duration time.Duration // from the request's arrival to its verdict; 0 when not measured
	Site     string        // the site label of sessionproxy_requests_total (see Options.Sites); "" for none
	// Request is what the request log keeps of it; nil keeps nothing
	// (tunnels, requests refused before they were read). Finish sets its
	// Outcome, Rule, Status, Retries and Duration from the event's.
	Request *Request
}

// Recorder keeps the proxy's counters, metrics and outcome history. Its zero
// value is not usable; use New. Its methods are safe for concurrent use.
type Recorder struct {
	now             func() time.Time
	usable, retired func() int // the pool's counts; nil: 0
	stats           *stats
	metrics         *metrics    // Prometheus collectors of /metrics
	history         *history    // outcomes per interval, for the dashboard's chart
	requests        *requestLog // the last finished requests; nil keeps none
}

// New returns a Recorder that has recorded nothing yet.
func New(opts Options) *Recorder {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	size := opts.RequestLogSize
	if size == 0 {
		size = DefaultRequestLogSize
	}
	var requests *requestLog
	if size > 0 {
		requests = newRequestLog(size)
	}
	return &Recorder{
		requests: requests,
		now:      now,
		usable:   opts.UsableSessions,
		retired:  opts.RetiredSessions,
		stats:    newStats(),
		metrics:  newMetrics(opts.UsableSessions, opts.RetiredSessions, siteBound(opts)),
		history:  newHistory(),
	}
}

// Finish records a finished request: it counts it under its outcome in
// Stats, in sessionproxy_requests_total (with its rule and status class) and
// in the history at Now(), and observes its duration unless it is a tunnel
// or was not measured. An outcome that is not one of the Outcome constants
// is counted in Stats and the metrics, not in the history.
func (r *Recorder) Finish(ev Event) {
	r.stats.finish(ev.Outcome)
	r.metrics.observeRequest(ev)
	r.history.observe(ev.Outcome, r.now())
	if ev.Request != nil && r.requests != nil {
		req := *ev.Request
		req.Outcome, req.Rule, req.Status, req.Retries, req.Duration = ev.Outcome, ev.Rule, ev.Status, ev.Retries, ev.Duration
		r.requests.add(req)
	}
}

// LogsRequests reports whether the recorder keeps a request log: when it
// does not, Events need no Request.
func (r *Recorder) LogsRequests() bool { return r.requests != nil }

// Requests returns the finished requests of the request log that f
// selects, newest first (an empty list when the log keeps none).
func (r *Recorder) Requests(f RequestFilter) []Request {
	if r.requests == nil {
		return []Request{}
	}
	return r.requests.list(f)
}

// Attempt records one attempt of a request, retried ones included, under
// the action of its verdict (good, bad, retire, none) or OutcomeError when
// no response came: in Stats' attempts.byOutcome, in
// sessionproxy_attempts_total and in the history's attempt counts at Now().
// An outcome that is not one of the Outcome constants is counted in Stats
// and the metric, not in the history.
func (r *Recorder) Attempt(o Outcome) {
	r.stats.attempt(o)
	r.metrics.observeAttempt(o)
	r.history.observeAttempt(o, r.now())
}

// Retried records one attempt of a request beyond the first, on a fresh
// session.
func (r *Recorder) Retried() {
	r.stats.retries.Add(1)
	r.metrics.observeRetry()
}

// UpstreamFailed records an attempt that got no response: uerr's Hop
// ("upstream proxy HOST:PORT" or "origin HOST:PORT"; anything up to an "@"
// in HOST is dropped) and Kind label the failure.
func (r *Recorder) UpstreamFailed(uerr *upstream.Error) {
	r.stats.upstreamFailures.Add(1)
	r.metrics.observeUpstreamFailure(uerr.Hop, string(uerr.Kind))
}

// Blocked records a bad or retiring verdict of the rule named rule, retried
// attempts included.
func (r *Recorder) Blocked(rule string) {
	r.stats.block(rule)
}

// AuthFailed records a proxy client that failed authentication.
func (r *Recorder) AuthFailed() {
	r.stats.authFailures.Add(1)
}

// SessionCreated records a new session of the pool.
func (r *Recorder) SessionCreated() {
	r.stats.sessionsCreated.Add(1)
	r.metrics.observeSessionCreated()
}

// SessionRetired records a session that stopped being usable, with the
// reason its state tells: blocked (error score), worn_out (uses) or retired
// (a rule or the admin API).
func (r *Recorder) SessionRetired(st sessionpool.SessionState) {
	r.stats.sessionsRetired.Add(1)
	r.metrics.observeSessionRetired(retireReason(st))
}

// Persisted records one persistence of the pool's state: how long it took,
// and whether it failed (err != nil).
func (r *Recorder) Persisted(took time.Duration, err error) {
	r.metrics.observePersist(took, err)
}

// History returns the outcome history of the last 15 minutes up to Now(),
// as GET /stats/history serves it.
func (r *Recorder) History() History {
	return r.history.snapshot(r.now())
}

// MetricsHandler serves the recorder's own Prometheus registry (its metrics
// and the Go and process collectors) in the exposition formats, for GET
// /metrics.
func (r *Recorder) MetricsHandler() http.Handler {
	return r.metrics.handler()
}
