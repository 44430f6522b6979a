package record

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sessionproxy/sessionproxy/proxy/record/recordtest"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
)

// scrapeHandler serves m's handler on a test server and scrapes it once.
func scrapeHandler(t *testing.T, m *metrics) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	srv := httptest.NewServer(m.handler())
	defer srv.Close()
	return recordtest.Scrape(t, srv.URL)
}

// TestMetricsRequests: each finished request lands in the series of its
// outcome, rule and status class; measured durations fill the latency
// histogram, unmeasured ones and tunnels stay out of it.
func TestMetricsRequests(t *testing.T) {
	m := newMetrics(nil, nil, siteBound(Options{}))
	ms := time.Millisecond
	for _, ev := range []Event{
		{Outcome: "good", Status: 200, Duration: 3 * ms},
		{Outcome: "good", Status: 204, Duration: 40 * ms},
		{Outcome: "retire", Rule: "blocked-status", Status: 429, Retries: 2, Duration: 700 * ms},
		{Outcome: "error", Rule: "upstream-error", Status: 502, Retries: 2, Duration: 45 * time.Second},
		{Outcome: "canceled", Duration: 10 * ms},
		{Outcome: "tunnel", Status: 200, Duration: 5 * time.Second},
		{Outcome: "rejected", Status: 503},
		{Outcome: "none", Rule: "odd", Status: 999, Duration: ms},
		{Outcome: "none", Status: 101, Duration: ms},
	} {
		m.observeRequest(ev)
	}
	m.observeRetry()
	m.observeRetry()
	fams, _ := scrapeHandler(t, m)

	want := []struct {
		outcome, rule, class string
		n                    float64
	}{
		{"good", "none", "2xx", 2},
		{"retire", "blocked-status", "4xx", 1},
		{"error", "upstream-error", "5xx", 1},
		{"canceled", "none", "none", 1},
		{"tunnel", "none", "2xx", 1},
		{"rejected", "none", "5xx", 1},
		{"none", "odd", "other", 1},
		{"none", "none", "1xx", 1},
	}
	for _, w := range want {
		if got := recordtest.Value(fams, "sessionproxy_requests_total", recordtest.RequestLabels(w.outcome, w.rule, w.class, "none")); got != w.n {
			t.Errorf("requests{outcome=%q,rule=%q,status_class=%q} = %v, want %v", w.outcome, w.rule, w.class, got, w.n)
		}
	}
	if n := len(fams["sessionproxy_requests_total"].GetMetric()); n != len(want) {
		t.Errorf("%d request series, want %d", n, len(want))
	}
	if got := recordtest.Value(fams, "sessionproxy_retries_total", nil); got != 2 {
		t.Errorf("retries_total = %v, want 2", got)
	}

	h := recordtest.Histogram(t, fams, "sessionproxy_request_duration_seconds")
	if h.GetSampleCount() != 7 {
		t.Errorf("latency count %d, want 7 (the tunnel and the unmeasured rejection left out)", h.GetSampleCount())
	}
	if want := 45.755; math.Abs(h.GetSampleSum()-want) > 1e-9 {
		t.Errorf("latency sum %v, want %v", h.GetSampleSum(), want)
	}
	for _, b := range []struct {
		le   float64
		want uint64
	}{{0.005, 3}, {0.01, 4}, {0.05, 5}, {1, 6}, {30, 6}} {
		if got := recordtest.BucketCount(t, h, b.le); got != b.want {
			t.Errorf("latency bucket le=%v holds %d, want %d", b.le, got, b.want)
		}
	}
}

// TestMetricsSessionsAndPersist: the session gauges read the pool at scrape
// time; created, retired by reason, and persistence are counted.
func TestMetricsSessionsAndPersist(t *testing.T) {
	var usable, retired atomic.Int64
	usable.Store(3)
	retired.Store(1)
	m := newMetrics(func() int { return int(usable.Load()) }, func() int { return int(retired.Load()) }, siteBound(Options{}))
	srv := httptest.NewServer(m.handler())
	defer srv.Close()

	fams, _ := recordtest.Scrape(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sessionproxy_sessions", map[string]string{"state": "usable"}, 3},
		{"sessionproxy_sessions", map[string]string{"state": "retired"}, 1},
		{"sessionproxy_sessions_created_total", nil, 0},
		{"sessionproxy_sessions_retired_total", map[string]string{"reason": "blocked"}, 0},
		{"sessionproxy_persist_failures_total", nil, 0},
	} {
		if got := recordtest.Value(fams, c.name, c.labels); got != c.want {
			t.Errorf("before: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	usable.Store(5)
	retired.Store(4)
	m.observeSessionCreated()
	m.observeSessionCreated()
	m.observeSessionRetired("blocked")
	m.observeSessionRetired("worn_out")
	m.observeSessionRetired("worn_out")
	m.observePersist(20*time.Millisecond, nil)
	m.observePersist(3*time.Second, errors.New("disk full"))

	fams, _ = recordtest.Scrape(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sessionproxy_sessions", map[string]string{"state": "usable"}, 5},
		{"sessionproxy_sessions", map[string]string{"state": "retired"}, 4},
		{"sessionproxy_sessions_created_total", nil, 2},
		{"sessionproxy_sessions_retired_total", map[string]string{"reason": "blocked"}, 1},
		{"sessionproxy_sessions_retired_total", map[string]string{"reason": "worn_out"}, 2},
		{"sessionproxy_sessions_retired_total", map[string]string{"reason": "retired"}, 0},
		{"sessionproxy_persist_failures_total", nil, 1},
	} {
		if got := recordtest.Value(fams, c.name, c.labels); got != c.want {
			t.Errorf("after: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	h := recordtest.Histogram(t, fams, "sessionproxy_persist_duration_seconds")
	if h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-3.02) > 1e-9 {
		t.Errorf("persist histogram count %d sum %v, want 2 and 3.02", h.GetSampleCount(), h.GetSampleSum())
	}
	if got := recordtest.BucketCount(t, h, 0.025); got != 1 {
		t.Errorf("persist bucket le=0.025 holds %d, want 1", got)
	}
}

// TestMetricsSplitHop: an upstream error's Hop becomes the hop and host
// labels; user info never survives.
func TestMetricsSplitHop(t *testing.T) {
	tests := []struct {
		hop, which, host string
	}{
		{"upstream proxy 10.0.0.1:3128", "upstream", "10.0.0.1:3128"},
		{"upstream proxy [::1]:1080", "upstream", "[::1]:1080"},
		{"origin example.com:443", "origin", "example.com:443"},
		{"origin", "origin", "unknown"},
		{"upstream proxy (invalid URL)", "upstream", "(invalid URL)"},
		{"upstream proxy user:hunter2@10.0.0.1:3128", "upstream", "10.0.0.1:3128"},
		{"origin a:b@c@example.com:80", "origin", "example.com:80"},
		{"", "other", "unknown"},
		{"something else", "other", "something else"},
	}
	for _, tt := range tests {
		which, host := splitHop(tt.hop)
		if which != tt.which || host != tt.host {
			t.Errorf("splitHop(%q) = %q, %q; want %q, %q", tt.hop, which, host, tt.which, tt.host)
		}
	}
}

func FuzzMetricsSplitHop(f *testing.F) {
	for _, s := range []string{"upstream proxy 10.0.0.1:3128", "origin example.com:443", "origin", "upstream proxy u:p@h:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hop string) {
		which, host := splitHop(hop)
		if which != "upstream" && which != "origin" && which != "other" {
			t.Errorf("splitHop(%q): hop label %q", hop, which)
		}
		if host == "" || strings.Contains(host, "@") {
			t.Errorf("splitHop(%q): host label %q", hop, host)
		}
	})
}

// TestMetricsUpstreamFailures: failures are counted by hop, host and kind;
// origins are capped at maxOriginHosts series (upstream proxies are not),
// and credentials never reach the scrape.
func TestMetricsUpstreamFailures(t *testing.T) {
	m := newMetrics(nil, nil, siteBound(Options{}))
	m.observeUpstreamFailure("upstream proxy 10.0.0.1:3128", "connect")
	m.observeUpstreamFailure("upstream proxy 10.0.0.1:3128", "connect")
	m.observeUpstreamFailure("upstream proxy 10.0.0.1:3128", "timeout")
	m.observeUpstreamFailure("upstream proxy user:hunter2@10.0.0.9:8080", "tls")
	m.observeUpstreamFailure("origin example.com:443", "tls")
	for i := range maxOriginHosts + 3 { // example.com plus these: 3 beyond the cap
		m.observeUpstreamFailure(fmt.Sprintf("origin site%d.test:443", i), "protocol")
	}
	m.observeUpstreamFailure("origin example.com:443", "tls")           // seen before the cap: its own series
	m.observeUpstreamFailure("upstream proxy 10.0.0.2:3128", "connect") // upstreams are not capped

	fams, raw := scrapeHandler(t, m)
	fail := func(hop, host, kind string) float64 {
		return recordtest.Value(fams, "sessionproxy_upstream_failures_total", map[string]string{"hop": hop, "host": host, "kind": kind})
	}
	for _, c := range []struct {
		hop, host, kind string
		want            float64
	}{
		{"upstream", "10.0.0.1:3128", "connect", 2},
		{"upstream", "10.0.0.1:3128", "timeout", 1},
		{"upstream", "10.0.0.9:8080", "tls", 1},
		{"upstream", "10.0.0.2:3128", "connect", 1},
		{"origin", "example.com:443", "tls", 2},
		{"origin", "site0.test:443", "protocol", 1},
		{"origin", "other", "protocol", 4},
	} {
		if got := fail(c.hop, c.host, c.kind); got != c.want {
			t.Errorf("upstream_failures{hop=%q,host=%q,kind=%q} = %v, want %v", c.hop, c.host, c.kind, got, c.want)
		}
	}
	origins := make(map[string]bool)
	for _, s := range fams["sessionproxy_upstream_failures_total"].GetMetric() {
		var hop, host string
		for _, lp := range s.GetLabel() {
			switch lp.GetName() {
			case "hop":
				hop = lp.GetValue()
			case "host":
				host = lp.GetValue()
			}
		}
		if hop == "origin" {
			origins[host] = true
		}
	}
	if len(origins) != maxOriginHosts+1 {
		t.Errorf("%d origin hosts in the scrape, want %d and other", len(origins), maxOriginHosts)
	}
	if strings.Contains(raw, "hunter2") {
		t.Errorf("%q contains the secret %q", raw, "hunter2")
	}
}

// TestMetricsRegistryPerInstance: each metrics has a registry of its own
// (with the Go and process collectors), so two servers never mix counts.
func TestMetricsRegistryPerInstance(t *testing.T) {
	a, b := newMetrics(nil, nil, siteBound(Options{})), newMetrics(nil, nil, siteBound(Options{}))
	a.observeRequest(Event{Outcome: "good", Status: 200, Duration: time.Millisecond})
	a.observeRetry()
	famsA, _ := scrapeHandler(t, a)
	famsB, _ := scrapeHandler(t, b)
	if got := recordtest.Value(famsA, "sessionproxy_requests_total", recordtest.RequestLabels("good", "none", "2xx", "none")); got != 1 {
		t.Errorf("a: requests %v, want 1", got)
	}
	if got := recordtest.Value(famsB, "sessionproxy_requests_total", recordtest.RequestLabels("good", "none", "2xx", "none")); got != -1 {
		t.Errorf("b: requests %v, want no series", got)
	}
	if got := recordtest.Value(famsB, "sessionproxy_retries_total", nil); got != 0 {
		t.Errorf("b: retries %v, want 0", got)
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if famsB[name] == nil {
			t.Errorf("no %s in the scrape", name)
		}
	}
	if famsB["sessionproxy_sessions"] != nil {
		t.Error("sessions gauge without a count func")
	}
}

// TestMetricsNil: a nil *metrics records nothing without panicking and its
// handler answers 503.
func TestMetricsNil(t *testing.T) {
	var m *metrics
	m.observeRequest(Event{Outcome: "good", Status: 200})
	m.observeRetry()
	m.observeUpstreamFailure("origin example.com:443", "tls")
	m.observeSessionCreated()
	m.observeSessionRetired("blocked")
	m.observePersist(time.Second, errors.New("x"))
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("nil metrics handler: status %d, want 503", rec.Code)
	}
}

// TestMetricsConcurrentRequests: the cache of request series loses no count
// when many goroutines create and use the same series at once.
func TestMetricsConcurrentRequests(t *testing.T) {
	m := newMetrics(nil, nil, siteBound(Options{}))
	const workers, each = 8, 400
	evs := []Event{
		{Outcome: "good", Status: 200},
		{Outcome: "retire", Rule: "blocked-status", Status: 403},
		{Outcome: "bad", Rule: "server-error", Status: 500},
		{Outcome: "error", Rule: "upstream-error", Status: 502},
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m.observeRequest(evs[(w+i)%len(evs)])
			}
		})
	}
	wg.Wait()
	fams, _ := scrapeHandler(t, m)
	for _, ev := range evs {
		l := recordtest.RequestLabels(string(ev.Outcome), ruleLabel(ev.Rule), statusClass(ev.Status), "none")
		if got := recordtest.Value(fams, "sessionproxy_requests_total", l); got != float64(workers*each/len(evs)) {
			t.Errorf("requests%v = %v, want %d", l, got, workers*each/len(evs))
		}
	}
}

// BenchmarkObserveRequest measures the request path's cost: the cached
// series lookup against resolving the labels with WithLabelValues each
// time, single-threaded and in parallel.
//
//	go test -run '^$' -bench ObserveRequest -benchmem ./proxy/record/
func BenchmarkObserveRequest(b *testing.B) {
	ev := Event{Outcome: "retire", Rule: "blocked-status", Status: 429, Retries: 1, Duration: 120 * time.Millisecond}
	b.Run("cached", func(b *testing.B) {
		m := newMetrics(nil, nil, siteBound(Options{}))
		b.ReportAllocs()
		for b.Loop() {
			m.observeRequest(ev)
		}
	})
	b.Run("WithLabelValues", func(b *testing.B) {
		m := newMetrics(nil, nil, siteBound(Options{}))
		b.ReportAllocs()
		for b.Loop() {
			m.reqVec.WithLabelValues(string(ev.Outcome), ruleLabel(ev.Rule), statusClass(ev.Status)).Inc()
			m.latency.Observe(ev.Duration.Seconds())
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		m := newMetrics(nil, nil, siteBound(Options{}))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.observeRequest(ev)
			}
		})
	})
}

// TestMetricsSiteLabel: configured sites always have their label; other
// sites have theirs while fewer than the bound do, then "other"; each
// scrape gives the labels to the sites with the most requests so far, and a
// site that lost its label loses its series (shown one last time in the
// scrape that took it); no site is "none".
func TestMetricsSiteLabel(t *testing.T) {
	r := New(Options{Sites: []string{"*.shop.example"}, MaxSiteLabels: 2})
	finish := func(sites ...string) {
		for _, site := range sites {
			r.Finish(Event{Outcome: OutcomeGood, Status: 200, Site: site})
		}
	}
	check := func(when string, want map[string]float64) {
		t.Helper()
		fams, _ := scrapeRecorder(t, r)
		for site, n := range want {
			if got := recordtest.Value(fams, "sessionproxy_requests_total", recordtest.RequestLabels("good", "none", "2xx", site)); got != n {
				t.Errorf("%s: site %q: %v requests, want %v", when, site, got, n)
			}
		}
	}
	finish("a.example", "b.example", "c.example", "a.example", "*.shop.example", "c.example", "")
	check("first scrape", map[string]float64{"a.example": 2, "b.example": 1, "other": 2, "*.shop.example": 1, "none": 1, "c.example": -1})
	// c.example (2 so far) is busier than b.example (1): it has the label now.
	finish("c.example", "b.example")
	check("second scrape", map[string]float64{"a.example": 2, "b.example": -1, "other": 3, "c.example": 1})
}

// TestMetricsSiteLabelsBounded: a client moving on to ever busier sites
// does not grow the site label's values past the bound (and other and
// none), scrape after scrape.
func TestMetricsSiteLabelsBounded(t *testing.T) {
	r := New(Options{MaxSiteLabels: 2})
	hit := func(site string, n int) {
		for range n {
			r.Finish(Event{Outcome: OutcomeGood, Status: 200, Site: site})
		}
	}
	for round := 1; round <= 10; round++ { // each round's sites busier than any before
		a, b := fmt.Sprintf("a%d.example", round), fmt.Sprintf("b%d.example", round)
		hit(a, 2*round)
		hit(b, 2*round)
		scrapeRecorder(t, r)
		hit(a, 1)
		hit(b, 1)
	}
	fams, _ := scrapeRecorder(t, r)
	sites := map[string]bool{}
	for _, f := range fams {
		if f.GetName() != "sessionproxy_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "site" {
					sites[l.GetValue()] = true
				}
			}
		}
	}
	if len(sites) > 3 {
		t.Errorf("%d site label values with MaxSiteLabels 2: %v", len(sites), sites)
	}
}

// TestMetricsBadLabelValues: a host or site that is not UTF-8 (a client's
// request line may carry one) is counted under a label made valid, where
// Prometheus panicked on it in the request's goroutine; a negative
// MaxSiteLabels puts every site under "other", scrape after scrape.
func TestMetricsBadLabelValues(t *testing.T) {
	r := New(Options{})
	r.UpstreamFailed(&upstream.Error{Hop: "origin \xff.invalid:80", Kind: upstream.KindConnect})
	r.Finish(Event{Outcome: OutcomeError, Status: 502, Site: "\xff.invalid"})
	fams, _ := scrapeRecorder(t, r)
	if got := recordtest.Value(fams, "sessionproxy_requests_total", recordtest.RequestLabels("error", "none", "5xx", "\uFFFD.invalid")); got != 1 {
		t.Errorf("the site not UTF-8: %v requests under its label made valid, want 1", got)
	}

	r = New(Options{MaxSiteLabels: -1})
	for range 2 {
		r.Finish(Event{Outcome: OutcomeGood, Status: 200, Site: "a.example"})
		fams, _ := scrapeRecorder(t, r)
		if got := recordtest.Value(fams, "sessionproxy_requests_total", recordtest.RequestLabels("good", "none", "2xx", "other")); got < 1 {
			t.Errorf("MaxSiteLabels -1: %v requests under other, want them all", got)
		}
	}
}

// TestMetricsSiteCountsBoundedUnscraped: the uses counted to rank the
// sites stay within countedPerLabel a label when nobody scrapes.
func TestMetricsSiteCountsBoundedUnscraped(t *testing.T) {
	const maxLabels = 10
	r := New(Options{MaxSiteLabels: maxLabels})
	for i := range 5000 {
		r.Finish(Event{Outcome: OutcomeGood, Status: 200, Site: fmt.Sprintf("s%d.example", i)})
	}
	n := 0
	r.metrics.sites.counts.Range(func(any, any) bool { n++; return true })
	if bound := countedPerLabel * maxLabels; n > bound || int(r.metrics.sites.counted.Load()) != n {
		t.Errorf("%d sites counted (the count says %d) after 5,000 sites and no scrape, want at most %d",
			n, r.metrics.sites.counted.Load(), bound)
	}
}
