package proxy

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/record/recordtest"
)

// TestMetricsEndToEnd: real requests through a running proxy move the
// counters served on the admin listener's /metrics, and an upstream's
// password never appears there.
//
// Proxy A has a live upstream with credentials: a 200, and a 429 that the
// default rules retire and retry until the attempts run out. Proxy B has a
// dead upstream with credentials: a request pinned to a session (no retry)
// and an unpinned one (retried on fresh sessions, all on the dead upstream).
func TestMetricsEndToEnd(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()

	t.Run("live upstream", func(t *testing.T) {
		up, count := startGoproxyUpstream(t, "up", "s3cret-live")
		cfg := testConfig(t)
		cfg.Upstreams = []*url.URL{mustURL(t, up)}
		h := startProxy(t, cfg)
		c := h.client("", "")
		if resp, body := get(t, c, origin.URL+"/echo", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("/echo: status %d: %s", resp.StatusCode, body)
		}
		resp, _ := get(t, c, origin.URL+"/status?code=429", "")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Session-Retries") != "2" {
			t.Fatalf("/status?code=429: status %d after %q retries, want 429 after 2", resp.StatusCode, resp.Header.Get("X-Session-Retries"))
		}
		if count() != 4 {
			t.Fatalf("upstream carried %d requests, want 4", count())
		}

		fams, raw := recordtest.Scrape(t, h.adminURL+"/metrics")
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"sessionproxy_requests_total", recordtest.RequestLabels("good", "none", "2xx", originSite), 1},
			{"sessionproxy_requests_total", recordtest.RequestLabels("retire", "blocked-status", "4xx", originSite), 1},
			{"sessionproxy_retries_total", nil, 2},
			{"sessionproxy_attempts_total", map[string]string{"outcome": "good"}, 1},
			{"sessionproxy_attempts_total", map[string]string{"outcome": "retire"}, 3},
			{"sessionproxy_attempts_total", map[string]string{"outcome": "bad"}, 0},
			{"sessionproxy_sessions_created_total", nil, 4},
			{"sessionproxy_sessions_retired_total", map[string]string{"reason": "retired"}, 3},
			{"sessionproxy_sessions", map[string]string{"state": "usable"}, 1},
			{"sessionproxy_sessions", map[string]string{"state": "retired"}, 3},
		} {
			if got := recordtest.Value(fams, c.name, c.labels); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		if n := len(fams["sessionproxy_requests_total"].GetMetric()); n != 2 {
			t.Errorf("%d request series, want 2:\n%s", n, raw)
		}
		if got := recordtest.Histogram(t, fams, "sessionproxy_request_duration_seconds").GetSampleCount(); got != 2 {
			t.Errorf("latency count %d, want 2", got)
		}
		if fams["sessionproxy_upstream_failures_total"] != nil {
			t.Errorf("upstream failures counted with a live upstream:\n%s", raw)
		}
		assertNoSecret(t, raw, "s3cret-live")
		assertAttempts(t, h, map[string]int64{"good": 1, "retire": 3})
	})

	t.Run("dead upstream", func(t *testing.T) {
		deadAddr := closedPort(t)
		cfg := testConfig(t)
		cfg.Upstreams = []*url.URL{{Scheme: "http", User: url.UserPassword("user", "hunter2"), Host: deadAddr}}
		h := startProxy(t, cfg)
		c := h.client("", "")
		if resp, body := get(t, c, origin.URL+"/echo", "doomed"); resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("pinned: status %d: %s; want 502", resp.StatusCode, body)
		}
		resp, body := get(t, c, origin.URL+"/echo", "")
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Session-Retries") != "2" {
			t.Fatalf("unpinned: status %d after %q retries: %s; want 502 after 2", resp.StatusCode, resp.Header.Get("X-Session-Retries"), body)
		}

		fams, raw := recordtest.Scrape(t, h.adminURL+"/metrics")
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"sessionproxy_requests_total", recordtest.RequestLabels("error", "upstream-error", "5xx", originSite), 2},
			{"sessionproxy_upstream_failures_total", map[string]string{"hop": "upstream", "host": deadAddr, "kind": "connect"}, 4},
			{"sessionproxy_retries_total", nil, 2},
			{"sessionproxy_attempts_total", map[string]string{"outcome": "error"}, 4},
			{"sessionproxy_sessions_created_total", nil, 4},
			{"sessionproxy_sessions", map[string]string{"state": "usable"}, 4},
		} {
			if got := recordtest.Value(fams, c.name, c.labels); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		if n := len(fams["sessionproxy_upstream_failures_total"].GetMetric()); n != 1 {
			t.Errorf("%d upstream failure series, want 1:\n%s", n, raw)
		}
		assertNoSecret(t, raw, "hunter2")
		assertNoSecret(t, raw, "user:")
		assertAttempts(t, h, map[string]int64{"error": 4})
	})
}

// assertAttempts checks the attempts.byOutcome of the admin API's /stats.
func assertAttempts(t *testing.T, h *harness, want map[string]int64) {
	t.Helper()
	var st struct {
		Attempts struct {
			ByOutcome map[string]int64 `json:"byOutcome"`
		} `json:"attempts"`
	}
	if code := h.adminGet("/stats", h.cfg.AdminToken, &st); code != http.StatusOK {
		t.Fatalf("/stats: %d", code)
	}
	if !maps.Equal(st.Attempts.ByOutcome, want) {
		t.Errorf("/stats attempts.byOutcome = %v, want %v", st.Attempts.ByOutcome, want)
	}
}
