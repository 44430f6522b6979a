package sessionpool

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentHammer runs many goroutines against one small pool (run with
// -race): the pool never holds more than MaxPoolSize sessions, and every
// session that ends retired fired exactly one event.
func TestConcurrentHammer(t *testing.T) {
	const (
		maxSize    = 8
		goroutines = 16
		iterations = 1500
	)
	ctx := context.Background()
	p := openPool(t, Options{MaxPoolSize: maxSize, Store: NewMemoryStore(), SessionOptions: SessionOptions{MaxUsageCount: 6}})
	rec := recordRetired(p)
	var (
		mu       sync.Mutex
		seen     = map[*Session]bool{}
		overfull atomic.Int64
		failures atomic.Int64
	)
	u, _ := url.Parse("https://example.com/")
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range iterations {
				s, err := p.GetSession(ctx)
				if err != nil {
					failures.Add(1)
					return
				}
				if n := held(p); n > maxSize {
					overfull.Add(1)
				}
				mu.Lock()
				seen[s] = true
				mu.Unlock()
				switch r.IntN(10) {
				case 0, 1, 2, 3:
					s.MarkGood()
				case 4, 5:
					s.MarkBad()
				case 6:
					s.Retire()
				case 7:
					s.RetireOnBlockedStatusCodes(403)
				case 8:
					s.SetCookies(u, []*http.Cookie{{Name: "n", Value: "v"}})
					_ = s.CookieString(u)
				case 9:
					p.GetSessionByID(ctx, s.ID())
					_ = p.UsableSessionsCount() + p.RetiredSessionsCount()
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // a persister and reader alongside
		defer wg.Done()
		for range 20 {
			if err := p.PersistState(ctx); err != nil {
				failures.Add(1)
			}
			_ = p.State()
		}
	}()
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d calls failed", failures.Load())
	}
	if n := overfull.Load(); n > 0 {
		t.Errorf("%d times the pool held more than MaxPoolSize %d sessions", n, maxSize)
	}
	if n := held(p); n > maxSize {
		t.Errorf("the pool holds %d sessions at the end", n)
	}
	retired := 0
	for s := range seen {
		want := 0
		if s.Retired() {
			want = 1
			retired++
		}
		if got := rec.count(s.ID()); got != want {
			t.Errorf("session %s (retired %v) fired %d events", s.ID(), s.Retired(), got)
		}
	}
	if retired == 0 || len(seen) <= maxSize {
		t.Errorf("the hammer did not churn: %d sessions seen, %d retired", len(seen), retired)
	}
	// The table agrees with the sessions' own state.
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range p.t.all {
		if s.idx != i || p.t.byID[s.id] != s {
			t.Fatalf("table index broken at %d", i)
		}
		if s.Retired() != s.inRetired {
			t.Errorf("session %s: retired %v but in retired list %v", s.id, s.Retired(), s.inRetired)
		}
	}
	if len(p.t.byID) != len(p.t.all) || len(p.t.live)+len(p.t.retired) != len(p.t.all) || p.t.pending != 0 {
		t.Errorf("table sizes: all %d byID %d live %d retired %d pending %d", len(p.t.all), len(p.t.byID), len(p.t.live), len(p.t.retired), p.t.pending)
	}
}
