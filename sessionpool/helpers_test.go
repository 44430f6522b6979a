package sessionpool

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The helpers of the tests inside the package, which cannot import
// sessionpooltest (it imports this package): the few they share with it
// are small enough to keep twice.

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

// held returns the number of sessions a memory pool's table holds (an
// internal check: the contract suite uses sessionpooltest.HeldCount).
func held(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(memTable(p).all)
}

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
