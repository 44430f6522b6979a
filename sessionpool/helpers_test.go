package sessionpool

import (
	"context"
	"testing"
)

// The helpers of the tests inside the package, which cannot import
// sessionpooltest (it imports this package). Their clock is testing/synctest's.

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
