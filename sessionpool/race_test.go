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
// -race), on both backends: the pool never holds more than MaxPoolSize
// sessions, and every session that ends retired fired exactly one event.
// The memory backend's table is then checked against the sessions' own
// state (memory only: a Redis pool has no table).
func TestConcurrentHammer(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		const (
			maxSize    = 8
			goroutines = 16
			iterations = 1500
		)
		ctx := context.Background()
		opts := Options{MaxPoolSize: maxSize, SessionOptions: SessionOptions{MaxUsageCount: 6}}
		if !b.redis {
			opts.Store = NewMemoryStore() // PersistState does nothing on Redis
		}
		p := b.open(t, opts)
		rec := recordRetired(p)
		var (
			mu          sync.Mutex
			seen        = map[string]bool{} // ID -> some copy saw it retired
			memSessions = map[string]*Session{}
			overfull    atomic.Int64
			maxHeld     atomic.Int64
			failures    atomic.Int64
		)
		// sample counts the held sessions in one atomic read: the two
		// public counts are two reads, and a retirement between them would
		// count a session twice.
		sample := func() {
			n := int64(len(p.Sessions()))
			if n > maxSize {
				overfull.Add(1)
			}
			for {
				m := maxHeld.Load()
				if n <= m || maxHeld.CompareAndSwap(m, n) {
					break
				}
			}
		}
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
						t.Errorf("GetSession: %v", err)
						failures.Add(1)
						return
					}
					sample()
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
					mu.Lock()
					seen[s.ID()] = seen[s.ID()] || s.Retired()
					if !b.redis {
						memSessions[s.ID()] = s
					}
					mu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() { // a persister and reader alongside
			defer wg.Done()
			for range 20 {
				if err := p.PersistState(ctx); err != nil {
					t.Errorf("PersistState: %v", err)
					failures.Add(1)
				}
				_ = p.State()
				sample()
			}
		}()
		wg.Wait()
		if failures.Load() != 0 {
			t.Fatalf("%d calls failed", failures.Load())
		}
		if n := overfull.Load(); n > 0 {
			t.Errorf("%d times the pool held more than MaxPoolSize %d sessions (at most %d)", n, maxSize, maxHeld.Load())
		}
		if n := heldCount(p); n > maxSize {
			t.Errorf("the pool holds %d sessions at the end", n)
		}
		// Every session fired one event if it ended retired, none if not.
		// A session no longer held was evicted, which only an unusable one
		// is; with MaxAge at its default nothing expires here, so it was
		// retired.
		final := map[string]SessionState{}
		for _, st := range p.State().Sessions {
			final[st.ID] = st
		}
		retired := 0
		for id, sawRetired := range seen {
			st, isHeld := final[id]
			endsRetired := !isHeld || st.Retired
			if sawRetired && !endsRetired {
				t.Errorf("session %s was seen retired but the pool holds it usable", id)
			}
			want := 0
			if endsRetired {
				want = 1
				retired++
			}
			if got := rec.count(id); got != want {
				t.Errorf("session %s (held %v, retired %v) fired %d events", id, isHeld, endsRetired, got)
			}
			if s := memSessions[id]; s != nil && s.Retired() != endsRetired {
				t.Errorf("memory session %s: Retired %v, but the pool says %v", id, s.Retired(), endsRetired)
			}
		}
		for id := range final {
			if _, ok := seen[id]; !ok {
				t.Errorf("the pool holds %s, which GetSession never returned", id)
			}
		}
		if retired == 0 || len(seen) <= maxSize {
			t.Errorf("the hammer did not churn: %d sessions seen, %d retired", len(seen), retired)
		}
		if !b.redis {
			checkTableMemoryOnly(t, p)
		}
	})
}

// checkTableMemoryOnly checks that a memory pool's table agrees with the
// sessions' own state.
func checkTableMemoryOnly(t *testing.T, p *Pool) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	tb := memTable(p)
	for i, s := range tb.all {
		if s.idx != i || tb.byID[s.id] != s {
			t.Fatalf("table index broken at %d", i)
		}
		if s.Retired() != s.inRetired {
			t.Errorf("session %s: retired %v but in retired list %v", s.id, s.Retired(), s.inRetired)
		}
	}
	if len(tb.byID) != len(tb.all) || len(tb.live)+len(tb.retired) != len(tb.all) || tb.pending != 0 {
		t.Errorf("table sizes: all %d byID %d live %d retired %d pending %d", len(tb.all), len(tb.byID), len(tb.live), len(tb.retired), tb.pending)
	}
}
