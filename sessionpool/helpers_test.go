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

// held returns the number of sessions a memory pool's table holds (an
// internal check: shared test bodies use heldCount).
func held(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(memTable(p).all)
}

// memTable returns the table of a memory pool (guarded by p.mu).
func memTable(p *Pool) *table { return &p.be.(*memBackend).t }

// redisOf returns the backend of a Redis pool.
func redisOf(p *Pool) *redisBackend { return p.be.(*redisBackend) }

// getN calls GetSession n times.
func getN(t testing.TB, p *Pool, n int) []*Session {
	t.Helper()
	out := make([]*Session, n)
	for i := range out {
		s, err := p.GetSession(context.Background())
		if err != nil {
			t.Fatalf("GetSession %d: %v", i, err)
		}
		out[i] = s
	}
	return out
}

// addSession calls AddSession and fails the test on an error.
func addSession(t testing.TB, p *Pool, opts SessionOptions) *Session {
	t.Helper()
	s, err := p.AddSession(context.Background(), opts)
	if err != nil {
		t.Fatalf("AddSession: %v", err)
	}
	return s
}

// stateOf returns the pool's state of the held session id (usable or not),
// read through Pool.State: with Redis, the server's copy.
func stateOf(t testing.TB, p *Pool, id string) SessionState {
	t.Helper()
	for _, st := range p.State().Sessions {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("the pool does not hold session %s", id)
	return SessionState{}
}
