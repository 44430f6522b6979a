package record

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sessionproxy/sessionproxy/proxy/record/recordtest"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// fakeClock is a clock tests move by hand. Safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// scrapeRecorder serves r's metrics on a test server and scrapes them once.
func scrapeRecorder(t *testing.T, r *Recorder) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	srv := httptest.NewServer(r.MetricsHandler())
	defer srv.Close()
	return recordtest.Scrape(t, srv.URL)
}

// historyTotals sums the history's counts per outcome over all its buckets.
func historyTotals(h History) map[string]int64 {
	sums := make(map[string]int64)
	for _, b := range h.Buckets {
		for o, n := range b.Counts {
			sums[o] += n
		}
	}
	return sums
}

// TestRecorderFinish: one Finish is counted in Stats, in the metrics and in
// the history's bucket of the recorder's clock; an outcome that is not one of
// the constants is counted in Stats and the metrics only.
func TestRecorderFinish(t *testing.T) {
	clock := newFakeClock(time.Date(2025, 3, 4, 5, 6, 3, 0, time.UTC))
	r := New(Options{Now: clock.now})
	r.Finish(Event{Outcome: OutcomeGood, Status: 200, Duration: 3 * time.Millisecond})
	clock.advance(20 * time.Second)
	r.Finish(Event{Outcome: OutcomeRetire, Rule: "blocked-status", Status: 429, Retries: 1, Duration: time.Second})
	r.Finish(Event{Outcome: OutcomeTunnel, Status: 200})
	r.Finish(Event{Outcome: "exploded", Status: 500})

	st := r.Stats()
	if st.Requests != 4 {
		t.Errorf("Stats.Requests = %d, want 4", st.Requests)
	}
	for o, want := range map[string]int64{"good": 1, "retire": 1, "tunnel": 1, "exploded": 1} {
		if got := st.ByOutcome[o]; got != want {
			t.Errorf("Stats.ByOutcome[%q] = %d, want %d", o, got, want)
		}
	}
	if len(st.ByOutcome) != 4 {
		t.Errorf("Stats.ByOutcome = %v, want 4 outcomes", st.ByOutcome)
	}

	fams, _ := scrapeRecorder(t, r)
	for _, c := range []struct{ outcome, rule, class string }{
		{"good", "none", "2xx"}, {"retire", "blocked-status", "4xx"}, {"tunnel", "none", "2xx"}, {"exploded", "none", "5xx"},
	} {
		if got := recordtest.Value(fams, "sessionproxy_requests_total", recordtest.RequestLabels(c.outcome, c.rule, c.class, "none")); got != 1 {
			t.Errorf("requests{%s,%s,%s} = %v, want 1", c.outcome, c.rule, c.class, got)
		}
	}
	if got := recordtest.Histogram(t, fams, "sessionproxy_request_duration_seconds").GetSampleCount(); got != 2 {
		t.Errorf("latency count %d, want 2 (the tunnel and the unmeasured request left out)", got)
	}

	h := r.History()
	if !h.Now.Equal(clock.now()) {
		t.Errorf("History.Now = %v, want the recorder's clock %v", h.Now, clock.now())
	}
	last := h.Buckets[len(h.Buckets)-1]
	if want := time.Date(2025, 3, 4, 5, 6, 20, 0, time.UTC); !last.Start.Equal(want) {
		t.Errorf("newest bucket starts %v, want %v", last.Start, want)
	}
	if last.Counts["retire"] != 1 || last.Counts["tunnel"] != 1 || last.Counts["good"] != 0 {
		t.Errorf("newest bucket counts %v, want retire 1 and tunnel 1", last.Counts)
	}
	if got := h.Buckets[len(h.Buckets)-3].Counts["good"]; got != 1 {
		t.Errorf("bucket of 05:06:00 counts %d good, want 1", got)
	}
	if sums := historyTotals(h); sums["good"] != 1 || sums["retire"] != 1 || sums["tunnel"] != 1 || len(sums) != len(outcomes) {
		t.Errorf("history totals %v, want good, retire and tunnel once each and no unknown outcome", sums)
	}

	clock.advance(15 * time.Minute)
	if sums := historyTotals(r.History()); sums["good"]+sums["retire"]+sums["tunnel"] != 0 {
		t.Errorf("15 minutes later the history still counts %v", sums)
	}
	if got := r.Stats().Requests; got != 4 {
		t.Errorf("15 minutes later Stats.Requests = %d, want 4", got)
	}
}

// TestRecorderHappenings: the calls other than Finish land in Stats and the
// metrics; the session counts come from the options' funcs.
func TestRecorderHappenings(t *testing.T) {
	var usable, retired atomic.Int64
	usable.Store(2)
	retired.Store(5)
	r := New(Options{
		UsableSessions:  func() int { return int(usable.Load()) },
		RetiredSessions: func() int { return int(retired.Load()) },
	})
	r.Retried()
	r.Retried()
	r.UpstreamFailed(&upstream.Error{Hop: "upstream proxy user:pw@10.0.0.1:3128", Kind: upstream.KindConnect})
	r.Blocked("blocked-status")
	r.Blocked("blocked-status")
	r.Blocked("captcha")
	r.AuthFailed()
	r.SessionCreated()
	r.SessionCreated()
	r.SessionCreated()
	r.SessionRetired(sessionpool.SessionState{ErrorScore: 3, MaxErrorScore: 3, MaxUsageCount: 50})
	r.SessionRetired(sessionpool.SessionState{UsageCount: 50, MaxErrorScore: 3, MaxUsageCount: 50})
	r.Persisted(time.Millisecond, nil)
	r.Persisted(time.Millisecond, errors.New("disk full"))

	st := r.Stats()
	want := Stats{
		UsableSessions: 2, RetiredSessions: 5, Retries: 2, UpstreamFailures: 1, AuthFailures: 1,
		SessionsCreated: 3, SessionsRetired: 2,
	}
	if st.UsableSessions != want.UsableSessions || st.RetiredSessions != want.RetiredSessions ||
		st.Requests != 0 || st.Retries != want.Retries || st.UpstreamFailures != want.UpstreamFailures ||
		st.AuthFailures != want.AuthFailures || st.SessionsCreated != want.SessionsCreated ||
		st.SessionsRetired != want.SessionsRetired {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if st.BlocksByRule["blocked-status"] != 2 || st.BlocksByRule["captcha"] != 1 || len(st.BlocksByRule) != 2 {
		t.Errorf("Stats.BlocksByRule = %v, want blocked-status 2 and captcha 1", st.BlocksByRule)
	}
	if st.ByOutcome == nil || len(st.ByOutcome) != 0 {
		t.Errorf("Stats.ByOutcome = %#v, want empty and not nil", st.ByOutcome)
	}

	fams, raw := scrapeRecorder(t, r)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sessionproxy_retries_total", nil, 2},
		{"sessionproxy_upstream_failures_total", map[string]string{"hop": "upstream", "host": "10.0.0.1:3128", "kind": "connect"}, 1},
		{"sessionproxy_sessions_created_total", nil, 3},
		{"sessionproxy_sessions_retired_total", map[string]string{"reason": "blocked"}, 1},
		{"sessionproxy_sessions_retired_total", map[string]string{"reason": "worn_out"}, 1},
		{"sessionproxy_sessions_retired_total", map[string]string{"reason": "retired"}, 0},
		{"sessionproxy_persist_failures_total", nil, 1},
		{"sessionproxy_sessions", map[string]string{"state": "usable"}, 2},
		{"sessionproxy_sessions", map[string]string{"state": "retired"}, 5},
	} {
		if got := recordtest.Value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if strings.Contains(raw, "pw@") {
		t.Errorf("the scrape holds an upstream's credentials:\n%s", raw)
	}
}

// TestRecorderZeroOptions: without session counts Stats counts no sessions
// and the sessions gauge is left out; without a clock the history runs on
// the real one.
func TestRecorderZeroOptions(t *testing.T) {
	r := New(Options{})
	before := time.Now()
	r.Finish(Event{Outcome: OutcomeNone})
	h := r.History()
	if h.Now.Before(before) || h.Now.After(time.Now()) {
		t.Errorf("History.Now = %v, want the real clock's now", h.Now)
	}
	if got := historyTotals(h)["none"]; got != 1 {
		t.Errorf("history counts %d none, want 1", got)
	}
	if st := r.Stats(); st.UsableSessions != 0 || st.RetiredSessions != 0 {
		t.Errorf("Stats counts %d usable and %d retired sessions, want 0", st.UsableSessions, st.RetiredSessions)
	}
	if fams, _ := scrapeRecorder(t, r); fams["sessionproxy_sessions"] != nil {
		t.Error("sessions gauge without a count func")
	}
}

// TestOutcomes: the outcomes are the four verdict actions then the
// outcomes without a verdict, in the order the dashboard stacks them, each
// once; the history serves them in that order, and the HELP of
// sessionproxy_requests_total names them as it always has.
func TestOutcomes(t *testing.T) {
	want := []string{"good", "bad", "retire", "none", "error", "rejected", "canceled", "tunnel"}
	var got []string
	for _, o := range outcomes {
		got = append(got, string(o))
	}
	if !slices.Equal(got, want) {
		t.Errorf("outcomes = %v, want %v", got, want)
	}
	if h := New(Options{}).History(); !slices.Equal(h.Outcomes, want) {
		t.Errorf("History.Outcomes = %v, want %v", h.Outcomes, want)
	}
	for i, o := range outcomes {
		if outcomeIndex(o) != i {
			t.Errorf("outcomeIndex(%q) = %d, want %d: listed twice", o, outcomeIndex(o), i)
		}
	}
	if outcomeIndex("") != -1 || outcomeIndex("exploded") != -1 {
		t.Error("outcomeIndex knows an outcome that is not listed")
	}

	r := New(Options{})
	r.Finish(Event{Outcome: OutcomeGood})
	fams, _ := scrapeRecorder(t, r)
	const help = "Requests finished, by outcome (good, bad, retire, none, error, rejected, canceled, tunnel), deciding rule (none: no rule matched), status class the client got (none: no status) and site (a configured sites entry's host; else the registrable domain for the busiest sites, other for the rest; none when there is no site)."
	if mf := fams["sessionproxy_requests_total"]; mf == nil || mf.GetHelp() != help {
		t.Errorf("HELP of sessionproxy_requests_total = %q, want %q", mf.GetHelp(), help)
	}
}

// TestRecorderAttempt: every attempt is counted under its own outcome in
// Stats' attempts.byOutcome, in sessionproxy_attempts_total (each attempt
// outcome starting at 0) and in the history's attempt counts, apart from
// the requests' final outcomes.
func TestRecorderAttempt(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r := New(Options{Now: clock.now})
	// One request retried twice: two blocks the client never saw, then a page.
	r.Attempt(OutcomeRetire)
	r.Attempt(OutcomeBad)
	r.Attempt(OutcomeGood)
	r.Finish(Event{Outcome: OutcomeGood, Retries: 2})
	clock.advance(time.Minute)
	r.Attempt(OutcomeError)
	r.Attempt("exploded") // not an outcome: Stats and the metric only

	st := r.Stats()
	want := map[string]int64{"retire": 1, "bad": 1, "good": 1, "error": 1, "exploded": 1}
	if !maps.Equal(st.Attempts.ByOutcome, want) {
		t.Errorf("Stats.Attempts.ByOutcome = %v, want %v", st.Attempts.ByOutcome, want)
	}
	if !maps.Equal(st.ByOutcome, map[string]int64{"good": 1}) || st.Requests != 1 {
		t.Errorf("Stats.ByOutcome = %v (%d requests), want the one request's good", st.ByOutcome, st.Requests)
	}
	if b, err := json.Marshal(New(Options{}).Stats()); err != nil || !strings.Contains(string(b), `"attempts":{"byOutcome":{}}`) {
		t.Errorf("a fresh Stats marshals as %s (%v), want attempts.byOutcome empty", b, err)
	}

	fams, _ := scrapeRecorder(t, r)
	for o, n := range map[string]float64{"good": 1, "bad": 1, "retire": 1, "none": 0, "error": 1, "exploded": 1} {
		if got := recordtest.Value(fams, "sessionproxy_attempts_total", map[string]string{"outcome": o}); got != n {
			t.Errorf("sessionproxy_attempts_total{outcome=%q} = %v, want %v", o, got, n)
		}
	}
	if fams["sessionproxy_attempts_total"] == nil {
		t.Fatal("no sessionproxy_attempts_total")
	}

	h := r.History()
	sums := make(map[string]int64)
	for _, b := range h.Buckets {
		if len(b.Attempts) != 5 {
			t.Fatalf("bucket %v has attempts %v, want good, bad, retire, none and error", b.Start, b.Attempts)
		}
		for o, n := range b.Attempts {
			sums[o] += n
		}
	}
	if want := map[string]int64{"good": 1, "bad": 1, "retire": 1, "none": 0, "error": 1}; !maps.Equal(sums, want) {
		t.Errorf("history attempts = %v, want %v", sums, want)
	}
	if last := h.Buckets[len(h.Buckets)-1]; last.Attempts["error"] != 1 || last.Attempts["good"] != 0 {
		t.Errorf("last bucket's attempts = %v, want the error alone", last.Attempts)
	}
	if got := historyTotals(h); got["good"] != 1 || got["bad"] != 0 || got["retire"] != 0 {
		t.Errorf("history requests = %v, want the one good: attempts are counted apart", got)
	}
}
