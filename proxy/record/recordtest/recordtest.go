// Package recordtest reads the Prometheus metrics a record.Recorder serves,
// for tests: it scrapes a /metrics URL in the text format and looks up
// series, counters, gauges and histograms in what it got.
//
// Its functions hold no state and are safe for concurrent use.
package recordtest

import (
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape GETs a /metrics URL in the text format and returns the parsed
// families and the raw text. It fails the test on any error, on a status
// other than 200 and on a Content-Type other than text/plain.
func Scrape(t testing.TB, metricsURL string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("scrape %s: %v", metricsURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: read: %v", metricsURL, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape %s: status %d, Content-Type %q: %s", metricsURL, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("scrape %s: parse: %v\n%s", metricsURL, err, raw)
	}
	return fams, string(raw)
}

// Series returns the metric of family name whose labels are exactly labels,
// or nil when there is none.
func Series(fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	mf := fams[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, lp := range m.GetLabel() {
			if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}

// Value is the counter or gauge value of a series, or -1 when it is absent.
func Value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m := Series(fams, name, labels)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// Histogram returns the unlabelled histogram of family name, failing the
// test when there is none.
func Histogram(t testing.TB, fams map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	m := Series(fams, name, nil)
	if m == nil || m.Histogram == nil {
		t.Fatalf("no histogram %s", name)
	}
	return m.Histogram
}

// BucketCount is a histogram's cumulative count at upper bound le, failing
// the test when it has no such bucket.
func BucketCount(t testing.TB, h *dto.Histogram, le float64) uint64 {
	t.Helper()
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("no bucket le=%v", le)
	return 0
}

// RequestLabels are the labels of a sessionproxy_requests_total series.
func RequestLabels(outcome, rule, class, site string) map[string]string {
	return map[string]string{"outcome": outcome, "rule": rule, "status_class": class, "site": site}
}
