package proxy

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestAdminBearerSchemeAnyCase: the scheme of the admin token is
// case-insensitive (RFC 7235); the token itself is not.
func TestAdminBearerSchemeAnyCase(t *testing.T) {
	h := startAdminProxy(t)
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"Bearer " + h.cfg.AdminToken, http.StatusOK},
		{"bearer " + h.cfg.AdminToken, http.StatusOK},
		{"BEARER " + h.cfg.AdminToken, http.StatusOK},
		{"bEaReR " + h.cfg.AdminToken, http.StatusOK},
		{"Bearer S3CRET-TOKEN", http.StatusUnauthorized},
		{"Basic " + h.cfg.AdminToken, http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
	} {
		req, err := http.NewRequest(http.MethodGet, h.adminURL+"/stats", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", tc.auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
	}
}

// TestRetirementLogLevels: a session that wore out (max_usage_count uses)
// logs its retirement at DEBUG; one retired by a rule logs at INFO.
func TestRetirementLogLevels(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := testConfig(t)
	cfg.Pool.Session.MaxUsageCount = 2
	h := startProxyLogging(t, cfg, logger)
	c := h.client("", "")
	for range 2 {
		get(t, c, origin.URL+"/echo", "worn")
	}
	get(t, c, origin.URL+"/status?code=429", "blocked")
	h.stop()
	levels := map[string]string{}
	for _, l := range strings.Split(buf.String(), "\n") {
		if !strings.Contains(l, `"msg":"session retired"`) {
			continue
		}
		var line struct{ Level, Session string }
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		levels[line.Session] = line.Level
	}
	if want := map[string]string{"worn": "DEBUG", "blocked": "INFO"}; !reflect.DeepEqual(levels, want) {
		t.Errorf("retirement levels %v, want %v\n%s", levels, want, buf.String())
	}
}
