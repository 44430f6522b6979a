package sessionpooltest

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// The sizes of the hammer: a small pool, many callers.
const (
	hammerMaxSize    = 8
	hammerGoroutines = 16
	hammerIterations = 1500
)

// hammer is the state of testConcurrentHammer, shared by its goroutines.
type hammer struct {
	b   Backend
	p   *sessionpool.Pool
	rec *Retirements

	mu          sync.Mutex
	seen        map[string]bool // ID -> some copy saw it retired
	memSessions map[string]*sessionpool.Session

	overfull atomic.Int64
	maxHeld  atomic.Int64
	failures atomic.Int64
}

// testConcurrentHammer runs many goroutines against one small pool (run with
// -race), on both backends: the pool never holds more than MaxPoolSize
// sessions, and every session that ends retired fired exactly one event.
// The memory backend's table is then checked against the sessions' own
// state (memory only: a Redis pool has no table).
func testConcurrentHammer(t *testing.T, b Backend) {
	ctx := context.Background()
	opts := sessionpool.Options{MaxPoolSize: hammerMaxSize, SessionOptions: sessionpool.SessionOptions{MaxUsageCount: 6}}
	if !b.Remote {
		opts.Store = sessionpool.NewMemoryStore() // PersistState does nothing on Redis
	}
	p := b.Open(t, opts)
	h := &hammer{b: b, p: p, rec: RecordRetired(p), seen: map[string]bool{}, memSessions: map[string]*sessionpool.Session{}}
	var wg sync.WaitGroup
	for g := range hammerGoroutines {
		wg.Go(func() { h.work(ctx, t, g) })
	}
	wg.Go(func() { // a persister and reader alongside
		for range 20 {
			if err := p.PersistState(ctx); err != nil {
				t.Errorf("PersistState: %v", err)
				h.failures.Add(1)
			}
			_ = p.State()
			h.sample()
		}
	})
	wg.Wait()
	if h.failures.Load() != 0 {
		t.Fatalf("%d calls failed", h.failures.Load())
	}
	if n := h.overfull.Load(); n > 0 {
		t.Errorf("%d times the pool held more than MaxPoolSize %d sessions (at most %d)", n, hammerMaxSize, h.maxHeld.Load())
	}
	if n := HeldCount(p); n > hammerMaxSize {
		t.Errorf("the pool holds %d sessions at the end", n)
	}
	h.checkEvents(t)
	if !b.Remote && b.Inspect != nil {
		b.Inspect.CheckTable(t, p)
	}
}

// work is one caller of the hammer: GetSession, then a random use.
func (h *hammer) work(ctx context.Context, t *testing.T, g int) {
	p := h.p
	u, _ := url.Parse("https://example.com/")
	r := rand.New(rand.NewPCG(uint64(g), 1))
	for range hammerIterations {
		s, err := p.GetSession(ctx)
		if err != nil {
			t.Errorf("GetSession: %v", err)
			h.failures.Add(1)
			return
		}
		h.sample()
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
		h.mu.Lock()
		h.seen[s.ID()] = h.seen[s.ID()] || s.Retired()
		if !h.b.Remote {
			h.memSessions[s.ID()] = s
		}
		h.mu.Unlock()
	}
}

// sample counts the held sessions in one atomic read: the two public
// counts are two reads, and a retirement between them would count a
// session twice.
func (h *hammer) sample() {
	n := int64(len(h.p.Sessions()))
	if n > hammerMaxSize {
		h.overfull.Add(1)
	}
	for {
		m := h.maxHeld.Load()
		if n <= m || h.maxHeld.CompareAndSwap(m, n) {
			break
		}
	}
}

// checkEvents checks, once the callers are done, that every session fired
// one event if it ended retired, none if not. A session no longer held was
// evicted, which only an unusable one is; with MaxAge at its default
// nothing expires here, so it was retired.
func (h *hammer) checkEvents(t *testing.T) {
	final := map[string]sessionpool.SessionState{}
	for _, st := range h.p.State().Sessions {
		final[st.ID] = st
	}
	retired := 0
	for id, sawRetired := range h.seen {
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
		if got := h.rec.Count(id); got != want {
			t.Errorf("session %s (held %v, retired %v) fired %d events", id, isHeld, endsRetired, got)
		}
		if s := h.memSessions[id]; s != nil && s.Retired() != endsRetired {
			t.Errorf("memory session %s: Retired %v, but the pool says %v", id, s.Retired(), endsRetired)
		}
	}
	for id := range final {
		if _, ok := h.seen[id]; !ok {
			t.Errorf("the pool holds %s, which GetSession never returned", id)
		}
	}
	if retired == 0 || len(h.seen) <= hammerMaxSize {
		t.Errorf("the hammer did not churn: %d sessions seen, %d retired", len(h.seen), retired)
	}
}
