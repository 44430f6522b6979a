package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/record"
)

// TestRequestLog: GET /requests lists finished requests newest first with
// every attempt (a blocked one retried on a fresh session shows both), the
// filters select them, and GET /requests.har is the same as HAR.
func TestRequestLog(t *testing.T) {
	var n atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/blocked-once" && n.Add(1) == 1 {
			http.SetCookie(w, &http.Cookie{Name: "b", Value: "1"})
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok"))
	}))
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	c := h.client("", "")
	get(t, c, origin.URL+"/first?x=1", "alice")
	resp, _ := get(t, c, origin.URL+"/blocked-once", "")
	answered := resp.Header.Get("X-Session-Id")

	var all struct{ Requests []record.Request }
	if code := h.adminGet("/requests", "", &all); code != http.StatusOK {
		t.Fatalf("GET /requests: %d", code)
	}
	if len(all.Requests) != 2 {
		t.Fatalf("log holds %d requests, want 2: %+v", len(all.Requests), all.Requests)
	}
	blocked, first := all.Requests[0], all.Requests[1]
	if first.Path != "/first" || first.Session != "alice" || first.Method != "GET" || first.Status != 200 ||
		first.Outcome != record.OutcomeGood || len(first.Attempts) != 1 || !strings.HasSuffix(first.URL, "/first?x=1") || first.Client != "127.0.0.1" {
		t.Errorf("first request logged as %+v", first)
	}
	if blocked.Session != answered || blocked.Retries != 1 || len(blocked.Attempts) != 2 ||
		blocked.Attempts[0].Status != 403 || blocked.Attempts[0].Outcome != record.OutcomeRetire || blocked.Attempts[0].Rule != "blocked-status" ||
		blocked.Attempts[1].Session != answered || blocked.Attempts[1].Outcome != record.OutcomeGood {
		t.Errorf("blocked request logged as %+v", blocked)
	}

	var some struct{ Requests []record.Request }
	if code := h.adminGet("/requests?session="+blocked.Attempts[0].Session, "", &some); code != http.StatusOK || len(some.Requests) != 1 {
		t.Errorf("?session= of the blocked attempt: %d, %d requests; want the blocked one", code, len(some.Requests))
	}
	if code := h.adminGet("/requests?status=abc", "", &some); code != http.StatusBadRequest {
		t.Errorf("?status=abc: %d, want 400", code)
	}

	var har record.HAR
	if code := h.adminGet("/requests.har?session=alice", "", &har); code != http.StatusOK {
		t.Fatalf("GET /requests.har: %d", code)
	}
	if har.Log.Version != "1.2" || len(har.Log.Entries) != 1 || har.Log.Entries[0].Request.Method != "GET" ||
		har.Log.Entries[0].Response.Status != 200 || har.Log.Entries[0].Response.Content.MimeType != "text/plain" {
		t.Errorf("HAR: %+v", har)
	}
}

// TestRequestLogOff: request_log.size 0 keeps nothing.
func TestRequestLogOff(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	cfg := testConfig(t)
	cfg.RequestLog.Size = 0
	h := startProxy(t, cfg)
	get(t, h.client("", ""), origin.URL+"/echo", "alice")
	var all struct{ Requests []record.Request }
	if code := h.adminGet("/requests", "", &all); code != http.StatusOK || len(all.Requests) != 0 {
		t.Errorf("GET /requests with the log off: %d, %d requests", code, len(all.Requests))
	}
}

// TestRequestLogBodies: with request_log.bodies the HAR holds the start of
// each body (the request's as sent, the response's as the origin sent it),
// saying when it was cut; without, it holds none. Each entry names its site.
func TestRequestLogBodies(t *testing.T) {
	big := strings.Repeat("b", 20<<10)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(big))
	}))
	defer origin.Close()
	for _, keep := range []bool{true, false} {
		cfg := testConfig(t)
		cfg.RequestLog.Bodies = keep
		h := startProxy(t, cfg)
		req, _ := http.NewRequest(http.MethodPost, origin.URL+"/form", strings.NewReader("hello=1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := h.client("", "").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()

		var har record.HAR
		if code := h.adminGet("/requests.har", "", &har); code != http.StatusOK || len(har.Log.Entries) != 1 {
			t.Fatalf("bodies %v: GET /requests.har: %d, %d entries", keep, code, len(har.Log.Entries))
		}
		e := har.Log.Entries[0]
		content := e.Response.Content
		if keep {
			if e.Request.PostData == nil || e.Request.PostData.Text != "hello=1" || e.Request.PostData.MimeType != "application/x-www-form-urlencoded" {
				t.Errorf("request body logged as %+v", e.Request.PostData)
			}
			if len(content.Text) != record.MaxLoggedBody || content.Size != len(big) || content.Comment == "" {
				t.Errorf("response body logged as %d bytes of %d (%q)", len(content.Text), content.Size, content.Comment)
			}
		} else if e.Request.PostData != nil || content.Text != "" {
			t.Errorf("bodies logged with request_log.bodies off: %+v, %d bytes", e.Request.PostData, len(content.Text))
		}
		var all struct{ Requests []record.Request }
		h.adminGet("/requests", "", &all)
		if len(all.Requests) != 1 || all.Requests[0].Site != "127.0.0.1" {
			t.Errorf("request logged with site %+v, want 127.0.0.1 (an IP is its own site)", all.Requests)
		}
	}
}

const urlSecret = "s3cr3t-in-url"

// TestRequestLogHidesURLPassword: a password in an absolute-form URL's
// user info stays out of the request log and the HAR export.
func TestRequestLogHidesURLPassword(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	conn, br := plainConn(t, h)
	host := origin.Listener.Addr().String()
	fmt.Fprintf(conn, "GET http://ann:%s@%s/in HTTP/1.1\r\nHost: %s\r\n\r\n", urlSecret, host, host)
	if got := statusOf(conn, br); got != http.StatusOK {
		t.Fatalf("status %d, want 200", got)
	}
	for _, path := range []string{"/requests", "/requests.har"} {
		var body json.RawMessage
		if code := h.adminGet(path, "", &body); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		if !strings.Contains(string(body), "/in") || strings.Contains(string(body), urlSecret) {
			t.Errorf("%s shows the URL's password, or not the request: %s", path, body)
		}
	}
}
