package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

// TestRuleHeaderWithoutRetry: X-Session-Rule names the rule on every
// response a status or header rule matches, also when a body rule comes
// first and the response cannot be retried (pinned, or the last retry): the
// proxy then holds the body's start and decides before the headers leave.
// When only a body rule can match, the body streams at once and the verdict
// comes after the headers: no X-Session-Rule, one log line instead.
func TestRuleHeaderWithoutRetry(t *testing.T) {
	tests := []struct {
		name     string
		path     string // /403 or /200, with ?captcha for a captcha page
		session  string // "" for a pool session (retried until the attempts run out)
		wantRule string // X-Session-Rule
		wantLog  string // the rule of the "rule matched after the headers left" line, "" for none
	}{
		{"pinned plain 403", "/403", "pin1", "blocked", ""},
		{"pinned 403 captcha page", "/403?captcha", "pin2", "captcha", ""},
		{"last retry plain 403", "/403", "", "blocked", ""},
		{"pinned 200 captcha page", "/200?captcha", "pin3", "", "captcha"},
		{"pinned 200 page", "/200", "pin4", "", ""},
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		if strings.HasPrefix(r.URL.Path, "/403") {
			w.WriteHeader(http.StatusForbidden)
		}
		if r.URL.Query().Has("captcha") {
			io.WriteString(w, "<html>please solve this captcha</html>")
			return
		}
		io.WriteString(w, "<html>hello</html>")
	}))
	defer origin.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := rulesConfig(t,
				rules.Spec{Name: "captcha", Body: `captcha`, Action: rules.ActionRetire},
				rules.Spec{Name: "blocked", Status: []string{"403"}, Action: rules.ActionRetire, Retry: true})
			cfg.Retry.MaxAttempts = 1
			var buf syncBuffer
			h := startProxyLogging(t, cfg, slog.New(slog.NewJSONHandler(&buf, nil)))
			resp, body := get(t, h.client("", ""), origin.URL+tt.path, tt.session)
			if got := resp.Header.Get("X-Session-Rule"); got != tt.wantRule {
				t.Errorf("X-Session-Rule %q, want %q (status %d, %q retries)", got, tt.wantRule, resp.StatusCode, resp.Header.Get("X-Session-Retries"))
			}
			if !strings.Contains(body, "<html>") {
				t.Errorf("body %q, want the origin's page", body)
			}
			h.stop() // the streamed verdict has come: the body was read to its end
			var logged []string
			for _, l := range strings.Split(buf.String(), "\n") {
				if strings.Contains(l, `"msg":"rule matched after the headers left"`) {
					logged = append(logged, l)
				}
			}
			switch {
			case tt.wantLog == "" && len(logged) != 0:
				t.Errorf("logged %q, want no line: the rule was in the headers or none matched", logged)
			case tt.wantLog != "" && (len(logged) != 1 || !strings.Contains(logged[0], `"rule":"`+tt.wantLog+`"`)):
				t.Errorf("logged %q, want one line naming rule %s", logged, tt.wantLog)
			}
		})
	}
}
