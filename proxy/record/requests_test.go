package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestRequestLogKeepsTheNewest(t *testing.T) {
	r := New(Options{RequestLogSize: 3})
	for i := range 5 {
		r.Finish(Event{Outcome: OutcomeGood, Status: 200 + i, Request: &Request{Path: fmt.Sprintf("/%d", i)}})
	}
	r.Finish(Event{Outcome: OutcomeTunnel}) // no Request: not logged
	got := r.Requests(RequestFilter{})
	if len(got) != 3 || got[0].Path != "/4" || got[1].Path != "/3" || got[2].Path != "/2" {
		t.Fatalf("log holds %+v, want /4, /3, /2", got)
	}
	if got[0].Status != 204 || got[0].Outcome != OutcomeGood {
		t.Errorf("Finish did not fill the entry from its event: %+v", got[0])
	}
	if off := New(Options{RequestLogSize: -1}); off.LogsRequests() || len(off.Requests(RequestFilter{})) != 0 {
		t.Error("a negative size keeps a log")
	}
	if !New(Options{}).LogsRequests() {
		t.Error("the zero Options keep no log")
	}
}

func TestRequestFilter(t *testing.T) {
	r := New(Options{})
	r.Finish(Event{Outcome: OutcomeGood, Status: 200, Request: &Request{Host: "a.example", Session: "s1"}})
	r.Finish(Event{Outcome: OutcomeGood, Status: 200, Retries: 1, Request: &Request{Host: "B.example", Session: "s3",
		Attempts: []Attempt{{Session: "s2", Status: 403, Outcome: OutcomeRetire, Rule: "blocked-status"}, {Session: "s3", Status: 200, Outcome: OutcomeGood}}}})
	r.Finish(Event{Outcome: OutcomeError, Status: 502, Request: &Request{Host: "a.example", Session: "s1"}})
	tests := []struct {
		query string
		want  int
	}{
		{"", 3},
		{"host=a.example", 2},
		{"host=b.example", 1},
		{"session=s2", 1}, // a session that only tried it
		{"session=s1&status=502", 1},
		{"rule=blocked-status", 1}, // a rule of a retried attempt
		{"limit=2", 2},
		{"status=404", 0},
	}
	for _, tc := range tests {
		q, _ := url.ParseQuery(tc.query)
		f, err := ParseRequestFilter(q)
		if err != nil {
			t.Fatalf("%q: %v", tc.query, err)
		}
		if got := r.Requests(f); len(got) != tc.want {
			t.Errorf("%q: %d requests, want %d", tc.query, len(got), tc.want)
		}
	}
	for _, bad := range []string{"status=x", "limit=-1", "status=1e3"} {
		q, _ := url.ParseQuery(bad)
		if _, err := ParseRequestFilter(q); !errors.Is(err, ErrBadFilter) {
			t.Errorf("%q: %v, want ErrBadFilter", bad, err)
		}
	}
}

func FuzzParseRequestFilter(f *testing.F) {
	f.Add("session=a&host=b&status=200&rule=r&limit=5")
	f.Add("status=-1&limit=99999999999999999999")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := ParseRequestFilter(q)
		if err != nil {
			if !errors.Is(err, ErrBadFilter) {
				t.Fatalf("error %v is not ErrBadFilter", err)
			}
			return
		}
		if flt.Status < 0 || flt.Limit < 0 {
			t.Fatalf("negative filter %+v", flt)
		}
	})
}

// TestHARStructure checks a HAR against the HAR 1.2 structure: the fields
// the spec requires, with their JSON types.
func TestHARStructure(t *testing.T) {
	reqs := []Request{{
		Time: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), Method: "GET", URL: "https://a.example/p?q=1&q=2", Proto: "HTTP/1.1",
		Status: 200, Duration: 1500 * time.Microsecond, Session: "s1", Outcome: OutcomeGood,
		RequestHeader:  http.Header{"Cookie": {"sid=1"}, "Accept": {"*/*"}},
		ResponseHeader: http.Header{"Content-Type": {"text/html"}},
		Attempts:       []Attempt{{Session: "s1", Status: 200, Outcome: OutcomeGood}},
	}, {Method: "POST", URL: "http://b.example/", Proto: "HTTP/1.1", Outcome: OutcomeError}}
	b, err := json.Marshal(NewHAR(reqs, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	log := field[map[string]any](t, doc, "log")
	if field[string](t, log, "version") != "1.2" {
		t.Error("log.version is not 1.2")
	}
	creator := field[map[string]any](t, log, "creator")
	field[string](t, creator, "name")
	field[string](t, creator, "version")
	entries := field[[]any](t, log, "entries")
	if len(entries) != 2 {
		t.Fatalf("%d entries, want 2", len(entries))
	}
	for i, e := range entries {
		entry := e.(map[string]any)
		if _, err := time.Parse(time.RFC3339Nano, field[string](t, entry, "startedDateTime")); err != nil {
			t.Errorf("entry %d: startedDateTime: %v", i, err)
		}
		field[float64](t, entry, "time")
		field[map[string]any](t, entry, "cache")
		timings := field[map[string]any](t, entry, "timings")
		for _, k := range []string{"send", "wait", "receive"} {
			field[float64](t, timings, k)
		}
		req := field[map[string]any](t, entry, "request")
		for _, k := range []string{"method", "url", "httpVersion"} {
			field[string](t, req, k)
		}
		for _, k := range []string{"cookies", "headers", "queryString"} {
			pairs(t, field[[]any](t, req, k))
		}
		for _, k := range []string{"headersSize", "bodySize"} {
			field[float64](t, req, k)
		}
		resp := field[map[string]any](t, entry, "response")
		field[float64](t, resp, "status")
		for _, k := range []string{"statusText", "httpVersion", "redirectURL"} {
			field[string](t, resp, k)
		}
		for _, k := range []string{"cookies", "headers"} {
			pairs(t, field[[]any](t, resp, k))
		}
		content := field[map[string]any](t, resp, "content")
		field[float64](t, content, "size")
		field[string](t, content, "mimeType")
		for _, k := range []string{"headersSize", "bodySize"} {
			field[float64](t, resp, k)
		}
		for k := range entry {
			switch k {
			case "startedDateTime", "time", "request", "response", "cache", "timings":
			default:
				if k[0] != '_' {
					t.Errorf("entry %d: field %q is neither HAR's nor custom (_name)", i, k)
				}
			}
		}
	}
	first := entries[0].(map[string]any)
	if q := first["request"].(map[string]any)["queryString"].([]any); len(q) != 2 {
		t.Errorf("queryString %v, want q twice", q)
	}
	if w := first["timings"].(map[string]any)["wait"].(float64); w != 1.5 {
		t.Errorf("timings.wait %v ms, want 1.5", w)
	}
}

// field returns m[k] as a T, failing the test when it is missing or of
// another JSON type.
func field[T any](t *testing.T, m map[string]any, k string) T {
	t.Helper()
	v, ok := m[k].(T)
	if !ok {
		t.Fatalf("field %q is %T (%v), want %T", k, m[k], m[k], *new(T))
	}
	return v
}

// pairs checks a HAR list of name/value objects.
func pairs(t *testing.T, list []any) {
	t.Helper()
	for _, p := range list {
		m, ok := p.(map[string]any)
		if !ok {
			t.Fatalf("pair %v is not an object", p)
		}
		field[string](t, m, "name")
		field[string](t, m, "value")
	}
}
