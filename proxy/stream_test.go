package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

// TestPlainBodyFlows: a plain-HTTP body that the origin sends in two parts,
// the second only once the client has the first, reaches the client part by
// part whether its length is known or not and whatever its type: the proxy
// flushes what it has before it waits for more.
func TestPlainBodyFlows(t *testing.T) {
	const first, rest = "first part;", " the rest"
	for _, tc := range []struct {
		name        string
		knownLength bool
		contentType string
	}{
		{"known length", true, "text/html"},
		{"unknown length", false, "text/html"},
		{"event stream", false, "text/event-stream"},
		{"event stream of known length", true, "text/event-stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				if tc.knownLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(first+rest)))
				}
				io.WriteString(w, first)
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				io.WriteString(w, rest)
			}))
			defer origin.Close()
			h := startProxy(t, testConfig(t))
			resp, err := h.client("", "").Get(origin.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := make(chan string, 1)
			go func() {
				buf := make([]byte, len(first))
				io.ReadFull(resp.Body, buf)
				got <- string(buf)
			}()
			select {
			case s := <-got:
				if s != first {
					t.Fatalf("first part %q, want %q", s, first)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the first part did not reach the client while the origin held back the rest")
			}
			close(release)
			if b, err := io.ReadAll(resp.Body); err != nil || string(b) != rest {
				t.Errorf("rest %q, %v; want %q", b, err, rest)
			}
		})
	}
}

// TestEventStreamNotHeldByRetryBodyRule: a body rule with retry does not
// hold an endless text/event-stream until body_limit bytes have come: its
// first event reaches the client as it comes.
func TestEventStreamNotHeldByRetryBodyRule(t *testing.T) {
	stop := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "data: event 0\n\n")
		w.(http.Flusher).Flush()
		select { // the next event would come much later
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer origin.Close()
	defer close(stop)
	h := startProxy(t, rulesConfig(t, rules.Spec{Name: "captcha", Body: `(?i)captcha`, Action: rules.ActionRetire, Retry: true}))
	c := h.client("", "")
	c.Timeout = 10 * time.Second
	resp, err := c.Get(origin.URL + "/events")
	if err != nil {
		t.Fatalf("the stream's head: %v", err)
	}
	defer resp.Body.Close()
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); line != "data: event 0\n" {
		t.Errorf("first line %q (%v), want the first event", line, err)
	}
}
