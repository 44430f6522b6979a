package sessionpool

import (
	"context"
	"errors"
	"testing"
)

// The pool's contract runs on both backends in the sessionpooltest suite
// (contract_test.go); the tests here look at the memory backend's internals.

// TestMemoryOnlyGetSessionWaitsForPendingCreation: with the sessions in
// this process, a caller that finds every slot reserved by creations in
// flight waits for one of them. A Redis pool reserves no slot while
// CreateSessionFunc runs (each caller builds its candidate first and the
// server decides in one script run), so there is nothing to wait for.
func TestMemoryOnlyGetSessionWaitsForPendingCreation(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	p := openPool(t, Options{MaxPoolSize: 1, CreateSessionFunc: func(ctx context.Context, p *Pool, o SessionOptions) (*Session, error) {
		entered <- struct{}{}
		<-release
		return p.NewSession(o)
	}})
	type result struct {
		s   *Session
		err error
	}
	results := make(chan result, 2)
	get := func() {
		s, err := p.GetSession(context.Background())
		results <- result{s, err}
	}
	go get()
	<-entered // the first caller holds the only slot
	go get()
	// The second caller cannot create (the slot is reserved) nor pick.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.GetSession(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled GetSession: %v", err)
	}
	close(release)
	r1, r2 := <-results, <-results
	if r1.err != nil || r2.err != nil || r1.s != r2.s {
		t.Errorf("results %v %v; want the one session twice", r1, r2)
	}
	if len(entered) != 0 || held(p) != 1 {
		t.Errorf("created %d extra, held %d", len(entered), held(p))
	}
}
