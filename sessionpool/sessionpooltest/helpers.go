package sessionpooltest

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// Clock is a settable clock for Options.Now. The zero value reads the zero
// time; NewClock starts at a fixed date. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at 2026-11-27 10:00 UTC.
func NewClock() *Clock {
	return &Clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// OpenPool opens a pool and tears it down at the end of the test.
func OpenPool(tb testing.TB, opts sessionpool.Options) *sessionpool.Pool {
	tb.Helper()
	p, err := sessionpool.Open(context.Background(), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { p.Teardown(context.Background()) })
	return p
}

// NewSession builds a session of p without adding it.
func NewSession(tb testing.TB, p *sessionpool.Pool, opts sessionpool.SessionOptions) *sessionpool.Session {
	tb.Helper()
	s, err := p.NewSession(opts)
	if err != nil {
		tb.Fatalf("NewSession: %v", err)
	}
	return s
}

// GetN calls GetSession n times.
func GetN(tb testing.TB, p *sessionpool.Pool, n int) []*sessionpool.Session {
	tb.Helper()
	out := make([]*sessionpool.Session, n)
	for i := range out {
		s, err := p.GetSession(context.Background())
		if err != nil {
			tb.Fatalf("GetSession %d: %v", i, err)
		}
		out[i] = s
	}
	return out
}

// AddSession calls AddSession and fails the test on an error.
func AddSession(tb testing.TB, p *sessionpool.Pool, opts sessionpool.SessionOptions) *sessionpool.Session {
	tb.Helper()
	s, err := p.AddSession(context.Background(), opts)
	if err != nil {
		tb.Fatalf("AddSession: %v", err)
	}
	return s
}

// MustGetByID calls GetSessionByID and fails the test on an error.
func MustGetByID(tb testing.TB, p *sessionpool.Pool, id string) *sessionpool.Session {
	tb.Helper()
	s, err := p.GetSessionByID(context.Background(), id)
	if err != nil {
		tb.Fatalf("GetSessionByID(%s): %v", id, err)
	}
	return s
}

// StateOf returns the pool's state of the held session id (usable or not),
// read through Pool.State: with Redis, the server's copy.
func StateOf(tb testing.TB, p *sessionpool.Pool, id string) sessionpool.SessionState {
	tb.Helper()
	for _, st := range p.State().Sessions {
		if st.ID == id {
			return st
		}
	}
	tb.Fatalf("the pool does not hold session %s", id)
	return sessionpool.SessionState{}
}

// HeldCount is the number of sessions p holds, usable or not, through the
// public counts (two calls: only for tests that do not change the pool
// meanwhile).
func HeldCount(p *sessionpool.Pool) int { return p.UsableSessionsCount() + p.RetiredSessionsCount() }

// SetCookieResponse returns a response to a request for u with the given
// Set-Cookie lines.
func SetCookieResponse(u *url.URL, lines ...string) *http.Response {
	return &http.Response{Header: http.Header{"Set-Cookie": lines}, Request: &http.Request{URL: u}}
}

// Retirements counts a pool's retirement events per session ID. Safe for
// concurrent use.
type Retirements struct {
	mu     sync.Mutex
	counts map[string]int
	states []sessionpool.SessionState
}

// RecordRetired subscribes a new Retirements to p's retirements.
func RecordRetired(p *sessionpool.Pool) *Retirements {
	r := &Retirements{counts: map[string]int{}}
	p.OnSessionRetired(func(st sessionpool.SessionState) {
		r.mu.Lock()
		r.counts[st.ID]++
		r.states = append(r.states, st)
		r.mu.Unlock()
	})
	return r
}

// Count returns the number of events for the session id.
func (r *Retirements) Count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[id]
}

// Total returns the number of events.
func (r *Retirements) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.states)
}
