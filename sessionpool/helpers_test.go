package sessionpool

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openPool opens a pool and tears it down at the end of the test.
func openPool(t testing.TB, opts Options) *Pool {
	t.Helper()
	p, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Teardown(context.Background()) })
	return p
}

// newTestSession builds a session of p without adding it.
func newTestSession(t testing.TB, p *Pool, opts SessionOptions) *Session {
	t.Helper()
	s, err := p.NewSession(opts)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	return s
}

// retiredRecorder counts retired events per session ID.
type retiredRecorder struct {
	mu     sync.Mutex
	counts map[string]int
	states []SessionState
}

func recordRetired(p *Pool) *retiredRecorder {
	r := &retiredRecorder{counts: map[string]int{}}
	p.OnSessionRetired(func(st SessionState) {
		r.mu.Lock()
		r.counts[st.ID]++
		r.states = append(r.states, st)
		r.mu.Unlock()
	})
	return r
}

func (r *retiredRecorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[id]
}

func (r *retiredRecorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.states)
}
