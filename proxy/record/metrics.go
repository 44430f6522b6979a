package record

import (
	"cmp"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names and label values of /metrics. Every label is bounded: outcomes
// and kinds by the code, rules by the configuration, status classes by HTTP,
// upstream proxies by the configuration, origin hosts by maxOriginHosts and
// sites by the configuration and Options.MaxSiteLabels.
const (
	metricsNamespace = "sessionproxy"

	// labelNone is the rule of a request no rule decided and the status
	// class of a request that got no status.
	labelNone = "none"
	// labelOther is the status class of a status outside 100..599, and the
	// host of an origin failure once maxOriginHosts origins have a series.
	labelOther = "other"

	// maxOriginHosts bounds the distinct origin hosts of
	// sessionproxy_upstream_failures_total: a crawler reaches unboundedly
	// many origins, and each would be a series forever.
	maxOriginHosts = 100
)

// Histogram buckets, in seconds. Requests: a cached answer of a nearby
// origin (5 ms) to a slow page behind a slow proxy with retries (30 s).
// Persistence: a small file (1 ms) to a large pool over a remote store.
var (
	requestBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	persistBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// statusClasses names the status classes 1xx..5xx by code/100.
var statusClasses = [...]string{1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

// metrics holds the Prometheus collectors served on /metrics, on a registry
// of its own (with the Go and process collectors), never the global one.
//
// Its zero value is not usable; use newMetrics. Its methods are safe for
// concurrent use. A nil *metrics records nothing and its handler answers 503.
type metrics struct {
	reg     *prometheus.Registry
	handle  http.Handler
	reqVec  *prometheus.CounterVec // outcome, rule, status_class
	attVec  *prometheus.CounterVec // outcome; atts holds its children
	latency prometheus.Histogram
	retries prometheus.Counter
	created prometheus.Counter
	retired *prometheus.CounterVec // reason
	upFail  *prometheus.CounterVec // hop, host, kind
	persist prometheus.Histogram
	persErr prometheus.Counter

	// reqs caches the children of reqVec by label tuple, so the request
	// path neither hashes labels nor allocates: a lock-free read of an
	// immutable map, replaced whole (under reqMu) when a tuple is new.
	reqs  atomic.Pointer[map[reqKey]prometheus.Counter]
	reqMu sync.Mutex // serializes replacing reqs

	originMu sync.Mutex // guards origins
	origins  map[string]struct{}

	sites *labelBound // the site labels of reqVec

	// atts are the children of attVec by outcome, indexed like outcomes;
	// nil for an outcome no attempt has (see attemptOutcomes).
	atts [len(outcomes)]prometheus.Counter
}

// reqKey is the label tuple of sessionproxy_requests_total.
type reqKey struct {
	outcome           Outcome
	rule, class, site string
}

// labelBound gives the max busiest values a label of their own, and the
// rest "other"; the kept ones always have theirs. Every value's uses are
// counted; the labels go to the first max values seen, then, at each rank
// (every scrape), to the max most used so far. Safe for concurrent use.
type labelBound struct {
	kept    map[string]bool // immutable
	max     int
	counts  sync.Map                        // value -> *atomic.Int64, its uses
	counted atomic.Int64                    // the values in counts
	labeled atomic.Pointer[map[string]bool] // the values with a label now; replaced whole under mu
	mu      sync.Mutex
}

// siteBound is the bound of the site labels opts ask for.
func siteBound(opts Options) *labelBound {
	b := &labelBound{kept: map[string]bool{}, max: opts.MaxSiteLabels}
	if b.max == 0 {
		b.max = DefaultMaxSiteLabels
	}
	for _, s := range opts.Sites {
		b.kept[s] = true
	}
	b.labeled.Store(&map[string]bool{})
	return b
}

// label counts one use of v and returns its label: v (made valid UTF-8),
// or "other"; "none" for "". Between scrapes the counts are ranked, and
// the least used dropped, whenever they reach countedPerLabel a label.
func (b *labelBound) label(v string) string {
	v = labelValue(v)
	switch {
	case v == "":
		return labelNone
	case b.kept[v]:
		return v
	case b.max < 0:
		return labelOther
	}
	c, ok := b.counts.Load(v)
	if !ok {
		var loaded bool
		if c, loaded = b.counts.LoadOrStore(v, new(atomic.Int64)); !loaded && b.counted.Add(1) > int64(b.limit()) {
			b.rankKeeping(b.limit() / 2)
		}
	}
	c.(*atomic.Int64).Add(1)
	if (*b.labeled.Load())[v] {
		return v
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := *b.labeled.Load()
	if cur[v] {
		return v
	}
	if len(cur) >= b.max {
		return labelOther
	}
	next := maps.Clone(cur)
	next[v] = true
	b.labeled.Store(&next)
	return v
}

// limit is how many values' uses b counts at most.
func (b *labelBound) limit() int { return countedPerLabel * max(b.max, 1) }

// rank gives the labels to the max values used most so far.
func (b *labelBound) rank() { b.rankKeeping(b.limit()) }

// rankKeeping is rank, keeping the counts of the keep values used most.
func (b *labelBound) rankKeeping(keep int) {
	type use struct {
		v string
		n int64
	}
	var uses []use
	b.counts.Range(func(k, c any) bool {
		uses = append(uses, use{k.(string), c.(*atomic.Int64).Load()})
		return true
	})
	if len(uses) <= max(b.max, 0) {
		return // every value has its label already
	}
	slices.SortFunc(uses, func(x, y use) int { return cmp.Compare(y.n, x.n) })
	next := make(map[string]bool, max(b.max, 0))
	for _, u := range uses[:max(b.max, 0)] {
		next[u.v] = true
	}
	b.mu.Lock()
	b.labeled.Store(&next)
	b.mu.Unlock()
	// The counts of the least used go, so that they stay bounded too: a
	// site among them starts again from its next use.
	for _, u := range uses[min(len(uses), keep):] {
		if _, ok := b.counts.LoadAndDelete(u.v); ok {
			b.counted.Add(-1)
		}
	}
}

// labelValue is v as a label value may be: Prometheus refuses (panics on)
// one that is not UTF-8, and v may come from a client (a request's host).
func labelValue(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	return strings.ToValidUTF8(v, "\uFFFD")
}

// countedPerLabel is how many values' uses a labelBound counts for each
// label it gives, past a scrape.
const countedPerLabel = 16

// hasLabel reports whether v, a label value, is one of the bound's now.
func (b *labelBound) hasLabel(v string) bool {
	return v == labelNone || v == labelOther || b.kept[v] || (*b.labeled.Load())[v]
}

// newMetrics builds the collectors on a fresh registry. usable and retired
// report the pool's session counts at scrape time (they are called from the
// scraping goroutine, so they must be safe for concurrent use); a nil one
// leaves its gauge out.
func newMetrics(usable, retired func() int, sites *labelBound) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		reqVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "requests_total",
			Help: "Requests finished, by outcome (" + outcomeList() + "), deciding rule (none: no rule matched), status class the client got (none: no status) and site (a configured sites entry's host; else the registrable domain for the busiest sites, other for the rest; none when there is no site).",
		}, []string{"outcome", "rule", "status_class", "site"}),
		attVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "attempts_total",
			Help: "Attempts of requests, retried ones included, by outcome: the action of the attempt's verdict (good, bad, retire, none) or error (no response came).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to its verdict, retries included (tunnels and requests answered without measuring are left out).",
			Buckets: requestBuckets,
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "retries_total",
			Help: "Attempts beyond the first, each on a fresh session.",
		}),
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "sessions_created_total",
			Help: "Sessions created.",
		}),
		retired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "sessions_retired_total",
			Help: "Sessions that stopped being usable, by reason: blocked (error score), worn_out (uses) or retired (a rule or the admin API).",
		}, []string{"reason"}),
		upFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "upstream_failures_total",
			Help: "Attempts that got no response, by failing hop (upstream: the upstream proxy; origin: the target), its host:port (never credentials) and kind (connect, tls, timeout, protocol).",
		}, []string{"hop", "host", "kind"}),
		persist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "persist_duration_seconds",
			Help:    "Time taken by each persistence of the pool's state, failed ones included.",
			Buckets: persistBuckets,
		}),
		persErr: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "persist_failures_total",
			Help: "Persistences of the pool's state that failed.",
		}),
		origins: make(map[string]struct{}),
		sites:   sites,
	}
	empty := make(map[reqKey]prometheus.Counter)
	m.reqs.Store(&empty)
	// Known label values start at 0, so rate() sees their first increase.
	for _, reason := range []string{"blocked", "worn_out", "retired"} {
		m.retired.WithLabelValues(reason)
	}
	for _, o := range attemptOutcomes {
		m.atts[outcomeIndex(o)] = m.attVec.WithLabelValues(string(o))
	}

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.reqVec, m.attVec, m.latency, m.retries, m.created, m.retired, m.upFail, m.persist, m.persErr,
	)
	for state, f := range map[string]func() int{"usable": usable, "retired": retired} {
		if f == nil {
			continue
		}
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "sessions",
			Help:        "Sessions the pool holds, by state (usable or retired).",
			ConstLabels: prometheus.Labels{"state": state},
		}, func() float64 { return float64(f()) }))
	}
	prom := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError, // one failing collector does not blank the scrape
		Registry:            m.reg,                    // counts those errors in promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
	m.handle = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prom.ServeHTTP(w, r)
		// Then the busiest sites so far have the labels from now on; a
		// site that lost its label had its last count in this scrape.
		m.sites.rank()
		m.dropUnlabeled()
	})
	return m
}

// dropUnlabeled deletes the request series of the sites that no longer have
// a label (their requests count under other from now on), so that the
// series stay bounded while the busiest sites change. A series a request
// made again meanwhile goes at the next scrape.
func (m *metrics) dropUnlabeled() {
	m.reqMu.Lock()
	defer m.reqMu.Unlock()
	cur := *m.reqs.Load()
	var next map[reqKey]prometheus.Counter
	for k := range cur {
		if m.sites.hasLabel(k.site) {
			continue
		}
		if next == nil {
			next = maps.Clone(cur)
		}
		delete(next, k)
		m.reqVec.DeleteLabelValues(string(k.outcome), k.rule, k.class, k.site)
	}
	if next != nil {
		m.reqs.Store(&next)
	}
}

// handler serves the registry in the Prometheus exposition formats.
func (m *metrics) handler() http.Handler {
	if m == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "metrics are off", http.StatusServiceUnavailable)
		})
	}
	return m.handle
}

// observeRequest counts one finished request and its latency.
func (m *metrics) observeRequest(ev Event) {
	if m == nil {
		return
	}
	m.requestCounter(reqKey{outcome: ev.Outcome, rule: ruleLabel(ev.Rule), class: statusClass(ev.Status), site: m.sites.label(ev.Site)}).Inc()
	if ev.Outcome != OutcomeTunnel && ev.Duration > 0 {
		m.latency.Observe(ev.Duration.Seconds())
	}
}

// observeAttempt counts one attempt under its outcome.
func (m *metrics) observeAttempt(o Outcome) {
	if m == nil {
		return
	}
	if i := outcomeIndex(o); i >= 0 && m.atts[i] != nil {
		m.atts[i].Inc()
		return
	}
	m.attVec.WithLabelValues(string(o)).Inc()
}

// requestCounter returns the child of reqVec for k, creating it once.
func (m *metrics) requestCounter(k reqKey) prometheus.Counter {
	if c, ok := (*m.reqs.Load())[k]; ok {
		return c
	}
	m.reqMu.Lock()
	defer m.reqMu.Unlock()
	cur := *m.reqs.Load()
	if c, ok := cur[k]; ok {
		return c
	}
	c := m.reqVec.WithLabelValues(string(k.outcome), k.rule, k.class, k.site)
	next := make(map[reqKey]prometheus.Counter, len(cur)+1)
	maps.Copy(next, cur)
	next[k] = c
	m.reqs.Store(&next)
	return c
}

// outcomeList names the outcomes in their order, comma-separated, for a HELP
// text.
func outcomeList() string {
	names := make([]string, len(outcomes))
	for i, o := range outcomes {
		names[i] = string(o)
	}
	return strings.Join(names, ", ")
}

// ruleLabel is the rule label of a request: the rule's name, "none" for "".
func ruleLabel(rule string) string {
	if rule == "" {
		return labelNone
	}
	return rule
}

// statusClass names code's class: "1xx".."5xx", "none" for 0, else "other".
func statusClass(code int) string {
	switch {
	case code == 0:
		return labelNone
	case code >= 100 && code < 600:
		return statusClasses[code/100]
	}
	return labelOther
}

// observeRetry counts one attempt beyond the first.
func (m *metrics) observeRetry() {
	if m == nil {
		return
	}
	m.retries.Inc()
}

// observeUpstreamFailure counts an attempt that got no response. hop is an
// upstream error's Hop: "upstream proxy HOST:PORT" or "origin HOST:PORT".
func (m *metrics) observeUpstreamFailure(hop, kind string) {
	if m == nil {
		return
	}
	which, host := splitHop(hop)
	if which == "origin" {
		host = m.boundOrigin(host)
	}
	m.upFail.WithLabelValues(which, host, kind).Inc()
}

// splitHop splits an upstream error's Hop into the hop label ("upstream",
// "origin", or "other" for anything else) and the host:port. Anything up to
// an "@" is dropped, so user info can never become a label.
func splitHop(hop string) (which, host string) {
	switch {
	case strings.HasPrefix(hop, "upstream proxy"):
		which, host = "upstream", hop[len("upstream proxy"):]
	case strings.HasPrefix(hop, "origin"):
		which, host = "origin", hop[len("origin"):]
	default:
		which, host = labelOther, hop
	}
	host = labelValue(strings.TrimSpace(host))
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = host[i+1:]
	}
	if host == "" {
		host = "unknown"
	}
	return which, host
}

// boundOrigin returns host while fewer than maxOriginHosts origins have a
// series, and "other" for new ones after that.
func (m *metrics) boundOrigin(host string) string {
	m.originMu.Lock()
	defer m.originMu.Unlock()
	if _, ok := m.origins[host]; ok {
		return host
	}
	if len(m.origins) >= maxOriginHosts {
		return labelOther
	}
	m.origins[host] = struct{}{}
	return host
}

// observeSessionCreated counts one new session.
func (m *metrics) observeSessionCreated() {
	if m == nil {
		return
	}
	m.created.Inc()
}

// observeSessionRetired counts a session that stopped being usable.
func (m *metrics) observeSessionRetired(reason string) {
	if m == nil {
		return
	}
	m.retired.WithLabelValues(reason).Inc()
}

// observePersist records one persistence of the pool: how long it took, and
// whether it failed.
func (m *metrics) observePersist(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.persist.Observe(d.Seconds())
	if err != nil {
		m.persErr.Inc()
	}
}
