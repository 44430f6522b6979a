package record

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultRequestLogSize is how many finished requests the request log keeps
// when Options.RequestLogSize is 0.
const DefaultRequestLogSize = 1000

// Request is one finished request as the request log keeps it: what the
// client asked, every attempt, and how it ended. Finish fills Outcome, Rule,
// Status, Retries and Duration from its Event.
type Request struct {
	Time     time.Time     `json:"time"`   // arrival
	Client   string        `json:"client"` // the client's address, without port
	Method   string        `json:"method"`
	URL      string        `json:"url"`  // absolute: scheme://host/path?query
	Host     string        `json:"host"` // without port
	Path     string        `json:"path"`
	Proto    string        `json:"proto"`             // the client's: HTTP/1.1, HTTP/2.0
	Session  string        `json:"session,omitempty"` // the session that answered ("" when none did)
	Outcome  Outcome       `json:"outcome"`
	Rule     string        `json:"rule,omitempty"`
	Status   int           `json:"status"` // what the client got; 0 when nothing
	Retries  int           `json:"retries"`
	Attempts []Attempt     `json:"attempts"`
	Duration time.Duration `json:"durationNs"`

	Site string `json:"site"` // the registrable domain of Host

	// Fingerprint is the fingerprint mode the answering session went out
	// with ("" when none answered).
	Fingerprint string `json:"fingerprint,omitempty"`

	// RequestHeader is the header the origin was sent (the session's
	// cookies included) and ResponseHeader the one the client got, for
	// HAR. The log only reads them: the caller must not write them once the
	// request is finished.
	RequestHeader  http.Header `json:"-"`
	ResponseHeader http.Header `json:"-"`
	// RequestBody and ResponseBody are the first MaxLoggedBody bytes of
	// the bodies as they passed (a response body as the origin encoded
	// it), and their Size how many bytes passed in all; nil and 0 when
	// bodies are not kept or there was none.
	RequestBody      []byte `json:"-"`
	ResponseBody     []byte `json:"-"`
	RequestBodySize  int64  `json:"-"`
	ResponseBodySize int64  `json:"-"`
}

// MaxLoggedBody is how much of each body a Request keeps when bodies are
// logged.
const MaxLoggedBody = 16 << 10

// BodyCapture keeps the first MaxLoggedBody bytes written to it and counts
// them all. Its zero value is empty and ready. Safe for concurrent use.
type BodyCapture struct {
	mu  sync.Mutex // guards buf and n
	buf []byte
	n   int64
}

// Write keeps what fits and never fails.
func (c *BodyCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += int64(len(p))
	if room := MaxLoggedBody - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes returns a copy of what was kept, and how many bytes were written.
func (c *BodyCapture) Bytes() ([]byte, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return nil, 0
	}
	return slices.Clone(c.buf), c.n
}

// Attempt is one try of a request, on one session.
type Attempt struct {
	Session string  `json:"session"`
	Status  int     `json:"status"`          // 0 when no response came
	Outcome Outcome `json:"outcome"`         // the attempt's verdict, or error
	Rule    string  `json:"rule,omitempty"`  // the rule that decided it
	Error   string  `json:"error,omitempty"` // why no response came (one line, no credentials)
}

// RequestFilter selects requests of the log; its zero value selects all.
type RequestFilter struct {
	Session string // exact session id, of the answer or of any attempt
	Host    string // exact host, case-insensitive
	Status  int    // exact status the client got
	Rule    string // exact rule name, of the verdict or of any attempt
	Limit   int    // the newest this many; 0 = all
}

func (f RequestFilter) match(r *Request) bool {
	return (f.Session == "" || r.Session == f.Session || slices.ContainsFunc(r.Attempts, func(a Attempt) bool { return a.Session == f.Session })) &&
		(f.Host == "" || strings.EqualFold(r.Host, f.Host)) &&
		(f.Status == 0 || r.Status == f.Status) &&
		(f.Rule == "" || r.Rule == f.Rule || slices.ContainsFunc(r.Attempts, func(a Attempt) bool { return a.Rule == f.Rule }))
}

// requestLog is a ring of the last finished requests. Safe for concurrent
// use.
type requestLog struct {
	mu   sync.Mutex
	ring []Request // len is the capacity; next is where the next one goes
	next int
	n    int // how many the ring holds
}

func newRequestLog(size int) *requestLog {
	return &requestLog{ring: make([]Request, size)}
}

func (l *requestLog) add(r Request) {
	l.mu.Lock()
	l.ring[l.next] = r
	l.next = (l.next + 1) % len(l.ring)
	l.n = min(l.n+1, len(l.ring))
	l.mu.Unlock()
}

// list returns the requests f selects, newest first.
func (l *requestLog) list(f RequestFilter) []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Request{}
	for i := 1; i <= l.n; i++ {
		r := &l.ring[(l.next-i+len(l.ring))%len(l.ring)]
		if !f.match(r) {
			continue
		}
		out = append(out, *r)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

// ErrBadFilter is wrapped by ParseRequestFilter's errors.
var ErrBadFilter = errors.New("record: bad request filter")

// ParseRequestFilter reads a RequestFilter from the query parameters
// session, host, status, rule and limit; a bad number names its parameter.
func ParseRequestFilter(q url.Values) (RequestFilter, error) {
	f := RequestFilter{Session: q.Get("session"), Host: q.Get("host"), Rule: q.Get("rule")}
	for _, p := range []struct {
		name string
		dst  *int
	}{{"status", &f.Status}, {"limit", &f.Limit}} {
		if s := q.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return RequestFilter{}, fmt.Errorf("%w: %s must be a whole number of 0 or more (got %q)", ErrBadFilter, p.name, s)
			}
			*p.dst = n
		}
	}
	return f, nil
}
