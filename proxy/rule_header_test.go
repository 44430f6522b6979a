package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// TestRuleWithoutRetryNeverDelays: when no rule that could match has
// retry, the response's head reaches the client before the origin has sent
// its body, even though a status rule matches the head behind a body rule
// (the verdict then follows the body, and X-Session-Rule is not sent).
func TestRuleWithoutRetryNeverDelays(t *testing.T) {
	release := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "<html>first")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, " part</html>")
	}))
	defer origin.Close()
	defer close(release)
	cfg := rulesConfig(t,
		rules.Spec{Name: "captcha", Body: `captcha`, Action: rules.ActionRetire},
		rules.Spec{Name: "server-error", Status: []string{"5xx"}, Action: rules.ActionBad})
	h := startProxy(t, cfg)

	type reply struct {
		resp *http.Response
		err  error
	}
	got := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, origin.URL+"/", nil)
		req.Header.Set("X-Session-Id", "s1")
		resp, err := h.client("", "").Do(req)
		got <- reply{resp, err}
	}()
	var r reply
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no response head while the origin holds back the rest of its body: the proxy waited for the body")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.resp.Body.Close()
	if rule := r.resp.Header.Get("X-Session-Rule"); r.resp.StatusCode != http.StatusInternalServerError || rule != "" {
		t.Errorf("status %d, X-Session-Rule %q; want the 500 with no rule named before the body", r.resp.StatusCode, rule)
	}
	release <- struct{}{}
	if b, err := io.ReadAll(r.resp.Body); err != nil || string(b) != "<html>first part</html>" {
		t.Fatalf("body %q, %v", b, err)
	}
	// The verdict is carried out as the origin's body ends, before the
	// proxy ends the response to the client.
	if st := stateOf(t, h, "s1"); st.ErrorScore != 1 {
		t.Errorf("session after the 500: error score %v, want 1 (server-error, applied after the body)", st.ErrorScore)
	}
}
