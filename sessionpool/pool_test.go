package sessionpool

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests of this file run on both backends (forBackends) unless their
// name says MemoryOnly.

func TestGetSessionFillsThenPicksUniformly(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		p := b.open(t, Options{MaxPoolSize: 5})
		picks := map[string]int{}
		var first []string
		for i := range 5 {
			s := getN(t, p, 1)[0]
			if _, dup := picks[s.ID()]; dup {
				t.Fatalf("call %d returned an earlier session while filling", i)
			}
			picks[s.ID()] = 0
			first = append(first, s.ID())
			if got := heldCount(p); got != i+1 {
				t.Errorf("after %d calls the pool holds %d", i+1, got)
			}
		}
		const n = 5000
		for _, s := range getN(t, p, n) {
			if _, ok := picks[s.ID()]; !ok {
				t.Fatalf("a full pool of usable sessions created a new session")
			}
			picks[s.ID()]++
		}
		if heldCount(p) != 5 || p.UsableSessionsCount() != 5 || p.RetiredSessionsCount() != 0 {
			t.Errorf("held %d usable %d retired %d", heldCount(p), p.UsableSessionsCount(), p.RetiredSessionsCount())
		}
		// Each of 5 sessions expects 1000 picks (sd ~28): 800..1200 is > 7 sd.
		for id, k := range picks {
			if k < 800 || k > 1200 {
				t.Errorf("session %s picked %d times of %d: not uniform", id, k, n)
			}
		}
		for _, id := range first {
			s, err := p.GetSessionByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if s.UsageCount() != 0 {
				t.Errorf("GetSession counted a use: %d", s.UsageCount())
			}
		}
	})
}

func TestGetSessionNeverReturnsUnusable(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		p := b.open(t, Options{MaxPoolSize: 3})
		ss := getN(t, p, 3)
		ss[0].Retire()
		ss[1].MarkBad()
		ss[1].MarkBad()
		ss[1].MarkBad()
		if p.UsableSessionsCount() != 1 || p.RetiredSessionsCount() != 2 {
			t.Fatalf("usable %d retired %d, want 1 and 2", p.UsableSessionsCount(), p.RetiredSessionsCount())
		}
		// Unusable sessions stay until a pick hits one; then all go at once
		// and a new session is returned.
		for {
			s, err := p.GetSession(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if s.ID() == ss[0].ID() || s.ID() == ss[1].ID() {
				t.Fatalf("GetSession returned an unusable session")
			}
			if s.ID() == ss[2].ID() {
				if heldCount(p) != 3 {
					t.Fatalf("a usable pick changed the pool: %d held", heldCount(p))
				}
				continue
			}
			// A new session: the pick was unusable.
			if got := heldCount(p); got != 2 {
				t.Errorf("after eviction the pool holds %d, want 2 (the usable one and the new one)", got)
			}
			if p.RetiredSessionsCount() != 0 || p.UsableSessionsCount() != 2 {
				t.Errorf("usable %d retired %d, want 2 and 0", p.UsableSessionsCount(), p.RetiredSessionsCount())
			}
			for _, old := range ss[:2] {
				if _, err := p.GetSessionByID(context.Background(), old.ID()); !errors.Is(err, ErrSessionNotFound) {
					t.Errorf("evicted session still found: %v", err)
				}
			}
			break
		}
		// Not full any more: the next call fills.
		s := getN(t, p, 1)[0]
		if s.ID() == ss[2].ID() || heldCount(p) != 3 {
			t.Errorf("the pool did not fill again: held %d", heldCount(p))
		}
	})
}

func TestGetSessionAllUnusable(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		p := b.open(t, Options{MaxPoolSize: 4})
		old := map[string]bool{}
		for _, s := range getN(t, p, 4) {
			s.Retire()
			old[s.ID()] = true
		}
		s := getN(t, p, 1)[0]
		if !s.IsUsable() || old[s.ID()] || heldCount(p) != 1 || p.UsableSessionsCount() != 1 {
			t.Errorf("after picking from a spent pool: usable %v, old %v, held %d", s.IsUsable(), old[s.ID()], heldCount(p))
		}
	})
}

func TestGetSessionEvictsExpired(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		clock := newFakeClock()
		p := b.open(t, Options{MaxPoolSize: 4, Now: clock.Now})
		short1 := addSession(t, p, SessionOptions{MaxAge: time.Minute})
		short2 := addSession(t, p, SessionOptions{MaxAge: 2 * time.Minute})
		long := getN(t, p, 2)
		clock.Advance(2 * time.Minute)
		if p.UsableSessionsCount() != 2 || p.RetiredSessionsCount() != 2 {
			t.Fatalf("usable %d retired %d, want 2 and 2", p.UsableSessionsCount(), p.RetiredSessionsCount())
		}
		for {
			s := getN(t, p, 1)[0]
			if s.ID() == short1.ID() || s.ID() == short2.ID() {
				t.Fatal("an expired session was returned")
			}
			if s.ID() != long[0].ID() && s.ID() != long[1].ID() {
				break // a new one: an expired session was picked
			}
		}
		if got := heldCount(p); got != 3 {
			t.Errorf("held %d after evicting both expired sessions, want 3", got)
		}
		if p.RetiredSessionsCount() != 0 {
			t.Errorf("retired count %d, want 0", p.RetiredSessionsCount())
		}
	})
}

func TestRoundRobin(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		p := b.open(t, Options{MaxPoolSize: 3, Strategy: RoundRobin})
		first := getN(t, p, 3)
		next := getN(t, p, 6)
		for i, s := range next {
			if s.ID() != first[i%3].ID() {
				t.Fatalf("call %d: got %s, want %s (cycle in order)", i+4, s.ID(), first[i%3].ID())
			}
		}
		first[1].Retire()
		seen := map[string]int{}
		for _, s := range getN(t, p, 30) {
			if s.ID() == first[1].ID() {
				t.Fatal("RoundRobin returned a retired session")
			}
			seen[s.ID()]++
		}
		if len(seen) != 3 {
			t.Errorf("RoundRobin cycled over %d sessions, want 3", len(seen))
		}
		// The eviction hands out the new session once out of turn.
		for id, n := range seen {
			if n < 9 || n > 11 {
				t.Errorf("session %s returned %d times of 30, want 10 +- 1", id, n)
			}
		}
	})
}

func TestUseUntilFailure(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		p := b.open(t, Options{MaxPoolSize: 3, Strategy: UseUntilFailure})
		a := getN(t, p, 1)[0]
		for _, s := range getN(t, p, 10) {
			if s.ID() != a.ID() {
				t.Fatal("UseUntilFailure switched sessions while the last one is usable")
			}
		}
		a.MarkBad()
		a.MarkBad()
		if s := getN(t, p, 1)[0]; s.ID() != a.ID() {
			t.Fatal("switched before the session failed")
		}
		a.MarkBad()
		next := getN(t, p, 1)[0]
		if next.ID() == a.ID() {
			t.Fatal("returned a blocked session")
		}
		if s := getN(t, p, 1)[0]; s.ID() != next.ID() {
			t.Fatal("did not stick to the new session")
		}
	})
}

func TestGetSessionByID(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		p := b.open(t, Options{MaxPoolSize: 2})
		s := getN(t, p, 1)[0]
		got, err := p.GetSessionByID(ctx, s.ID())
		if err != nil || got.ID() != s.ID() {
			t.Fatalf("GetSessionByID = %v, %v", got, err)
		}
		if _, err := p.GetSessionByID(ctx, "session_nope"); !errors.Is(err, ErrSessionNotFound) {
			t.Errorf("unknown ID: %v, want ErrSessionNotFound", err)
		}
		s.Retire()
		if _, err := p.GetSessionByID(ctx, s.ID()); !errors.Is(err, ErrSessionNotFound) {
			t.Errorf("retired session: %v, want ErrSessionNotFound", err)
		}
		if heldCount(p) != 1 {
			t.Errorf("GetSessionByID created sessions: %d held", heldCount(p))
		}
	})
}

func TestAddSession(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		p := b.open(t, Options{MaxPoolSize: 2})
		a, err := p.AddSession(ctx, SessionOptions{ID: "alpha", MaxUsageCount: 7, ProxyURL: "http://127.0.0.1:3128"})
		if err != nil {
			t.Fatal(err)
		}
		if a.ID() != "alpha" || a.MaxUsageCount() != 7 || a.ProxyURL() != "http://127.0.0.1:3128" || a.MaxErrorScore() != 3 {
			t.Errorf("added session: %s %d %q %v", a.ID(), a.MaxUsageCount(), a.ProxyURL(), a.MaxErrorScore())
		}
		// What the pool holds (with Redis: read back from the server).
		if got, err := p.GetSessionByID(ctx, "alpha"); err != nil || got.MaxUsageCount() != 7 || got.ProxyURL() != "http://127.0.0.1:3128" || got.MaxErrorScore() != 3 {
			t.Errorf("held alpha: %v, %v", got, err)
		}
		_, err = p.AddSession(ctx, SessionOptions{ID: "alpha"})
		if !errors.Is(err, ErrSessionExists) || !strings.Contains(err.Error(), `"alpha"`) {
			t.Errorf("duplicate usable ID: %v, want ErrSessionExists naming alpha", err)
		}
		// A spent session's ID is free again.
		a.Retire()
		a2, err := p.AddSession(ctx, SessionOptions{ID: "alpha"})
		if err != nil {
			t.Fatalf("re-adding a retired session's ID: %v", err)
		}
		// The replacement is a new session: not the retired one revived.
		got, err := p.GetSessionByID(ctx, "alpha")
		if err != nil {
			t.Fatalf("the replacement is not found: %v", err)
		}
		if got.ID() != "alpha" || a2.ID() != "alpha" || got.Retired() || got.UsageCount() != 0 ||
			got.MaxUsageCount() != 50 || got.ProxyURL() != "" || heldCount(p) != 1 {
			t.Errorf("replacement: retired %v, uses %d, max %d, proxy %q; held %d",
				got.Retired(), got.UsageCount(), got.MaxUsageCount(), got.ProxyURL(), heldCount(p))
		}
		// Full of usable sessions: AddSession exceeds MaxPoolSize.
		getN(t, p, 1)
		if _, err := p.AddSession(ctx, SessionOptions{}); err != nil {
			t.Fatal(err)
		}
		if heldCount(p) != 3 {
			t.Errorf("held %d, want 3 (AddSession may exceed MaxPoolSize)", heldCount(p))
		}
		// Full with an unusable one: it is evicted first.
		a2.Retire()
		if _, err := p.AddSession(ctx, SessionOptions{}); err != nil {
			t.Fatal(err)
		}
		if heldCount(p) != 3 || p.RetiredSessionsCount() != 0 {
			t.Errorf("held %d retired %d, want 3 and 0", heldCount(p), p.RetiredSessionsCount())
		}
		if _, err := p.GetSessionByID(ctx, "alpha"); !errors.Is(err, ErrSessionNotFound) {
			t.Errorf("the evicted alpha: %v, want ErrSessionNotFound", err)
		}
		if _, err := p.AddSession(ctx, SessionOptions{MaxUsageCount: -1, MaxErrorScore: -2}); !errors.Is(err, ErrInvalidOptions) ||
			!strings.Contains(err.Error(), "MaxUsageCount") || !strings.Contains(err.Error(), "MaxErrorScore") {
			t.Errorf("invalid options: %v", err)
		}
	})
}

func TestCreateSessionFunc(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		upstreams := []string{"http://127.0.0.1:1001", "http://127.0.0.1:1002"}
		var mu sync.Mutex
		calls := 0
		var gotOpts []SessionOptions
		opts := Options{
			MaxPoolSize:    4,
			SessionOptions: SessionOptions{MaxUsageCount: 9},
			CreateSessionFunc: func(ctx context.Context, p *Pool, o SessionOptions) (*Session, error) {
				mu.Lock()
				o.ProxyURL = upstreams[calls%len(upstreams)]
				calls++
				gotOpts = append(gotOpts, o)
				mu.Unlock()
				// The hook runs without pool locks: it may call the pool.
				_ = p.UsableSessionsCount()
				return p.NewSession(o)
			},
		}
		p := b.open(t, opts)
		ss := getN(t, p, 2)
		added, err := p.AddSession(ctx, SessionOptions{ID: "mine"})
		if err != nil {
			t.Fatal(err)
		}
		if ss[0].ProxyURL() != upstreams[0] || ss[1].ProxyURL() != upstreams[1] || added.ProxyURL() != upstreams[0] {
			t.Errorf("upstreams %q %q %q", ss[0].ProxyURL(), ss[1].ProxyURL(), added.ProxyURL())
		}
		mu.Lock()
		if len(gotOpts) != 3 || gotOpts[0].MaxUsageCount != 9 || gotOpts[2].ID != "mine" || gotOpts[2].MaxUsageCount != 9 {
			t.Errorf("hook options %+v", gotOpts)
		}
		mu.Unlock()
		if added.ID() != "mine" || ss[0].MaxUsageCount() != 9 {
			t.Errorf("session %s max usage %d", added.ID(), ss[0].MaxUsageCount())
		}
		// The pool holds what the hook built.
		if got, err := p.GetSessionByID(ctx, ss[1].ID()); err != nil || got.ProxyURL() != upstreams[1] || got.MaxUsageCount() != 9 {
			t.Errorf("held %s: %v, %v", ss[1].ID(), got, err)
		}

		boom := errors.New("boom")
		other := b.open(t, Options{})
		tests := []struct {
			name string
			fn   func(context.Context, *Pool, SessionOptions) (*Session, error)
			want error
		}{
			{"error", func(context.Context, *Pool, SessionOptions) (*Session, error) { return nil, boom }, boom},
			{"nil session", func(context.Context, *Pool, SessionOptions) (*Session, error) { return nil, nil }, ErrForeignSession},
			{"other pool's session", func(context.Context, *Pool, SessionOptions) (*Session, error) {
				return other.NewSession(SessionOptions{})
			}, ErrForeignSession},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p := b.open(t, Options{MaxPoolSize: 1, CreateSessionFunc: tc.fn})
				if _, err := p.GetSession(ctx); !errors.Is(err, tc.want) {
					t.Errorf("GetSession: %v, want %v", err, tc.want)
				}
				if _, err := p.AddSession(ctx, SessionOptions{}); !errors.Is(err, tc.want) {
					t.Errorf("AddSession: %v, want %v", err, tc.want)
				}
				if n := heldCount(p); n != 0 {
					t.Errorf("held %d after failures", n)
				}
				if !b.redis {
					// Memory only: the reserved slot was given back.
					p.mu.Lock()
					n, pending := len(memTable(p).all), memTable(p).pending
					p.mu.Unlock()
					if n != 0 || pending != 0 {
						t.Errorf("table: held %d pending %d after failures", n, pending)
					}
				}
			})
		}
		t.Run("session already held", func(t *testing.T) {
			var first *Session
			p := b.open(t, Options{MaxPoolSize: 3, CreateSessionFunc: func(ctx context.Context, p *Pool, o SessionOptions) (*Session, error) {
				if first != nil {
					return first, nil
				}
				s, err := p.NewSession(o)
				first = s
				return s, err
			}})
			s := getN(t, p, 1)[0]
			id := s.ID()
			if _, err := p.GetSession(ctx); !errors.Is(err, ErrForeignSession) {
				t.Errorf("re-adding a held session: %v", err)
			}
			if _, err := p.AddSession(ctx, SessionOptions{}); !errors.Is(err, ErrForeignSession) {
				t.Errorf("re-adding a held session with AddSession: %v", err)
			}
			if s.ID() != id || heldCount(p) != 1 {
				t.Errorf("the held session became %s (was %s); held %d", s.ID(), id, heldCount(p))
			}
		})
	})
}

// TestCreateSessionFuncSeedsSession: the hook may set cookies and user data
// on the session it builds before returning it; the pool holds them.
func TestCreateSessionFuncSeedsSession(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		u, _ := url.Parse("https://example.com/")
		p := b.open(t, Options{MaxPoolSize: 2, CreateSessionFunc: func(ctx context.Context, p *Pool, o SessionOptions) (*Session, error) {
			s, err := p.NewSession(o)
			if err != nil {
				return nil, err
			}
			s.SetCookies(u, []*http.Cookie{{Name: "seed", Value: "1"}})
			s.SetCookiesFromResponse(setCookieResponse(u, "resp=2"))
			if err := s.SetUserData(map[string]any{"seeded": true}); err != nil {
				return nil, err
			}
			return s, nil
		}})
		got := getN(t, p, 1)[0]
		added := addSession(t, p, SessionOptions{})
		for _, s := range []*Session{got, added} {
			for what, s := range map[string]*Session{"returned": s, "held": mustGetByID(t, p, s.ID())} {
				if !s.IsUsable() || s.Retired() || s.UsageCount() != 0 || s.CookieString(u) != "seed=1; resp=2" || s.UserData()["seeded"] != true {
					t.Errorf("%s %s: usable %v retired %v uses %d cookies %q user data %v", what, s.ID(),
						s.IsUsable(), s.Retired(), s.UsageCount(), s.CookieString(u), s.UserData())
				}
			}
		}
		if p.UsableSessionsCount() != 2 || p.RetiredSessionsCount() != 0 {
			t.Errorf("usable %d retired %d", p.UsableSessionsCount(), p.RetiredSessionsCount())
		}
	})
}

// TestCreateSessionFuncFailureOnFullPool: a failing CreateSessionFunc fails
// only the calls that must create a session.
func TestCreateSessionFuncFailureOnFullPool(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		var mu sync.Mutex
		var fail error
		p := b.open(t, Options{MaxPoolSize: 2, CreateSessionFunc: func(ctx context.Context, p *Pool, o SessionOptions) (*Session, error) {
			mu.Lock()
			defer mu.Unlock()
			if fail != nil {
				return nil, fail
			}
			return p.NewSession(o)
		}})
		ss := getN(t, p, 2)
		boom := errors.New("no upstream left")
		mu.Lock()
		fail = boom
		mu.Unlock()
		for i := range 20 {
			s, err := p.GetSession(ctx)
			if err != nil {
				t.Fatalf("GetSession %d on a full pool of usable sessions: %v", i, err)
			}
			if s.ID() != ss[0].ID() && s.ID() != ss[1].ID() {
				t.Fatalf("GetSession %d created %s", i, s.ID())
			}
		}
		ss[0].Retire()
		ss[1].Retire()
		if _, err := p.GetSession(ctx); !errors.Is(err, boom) {
			t.Errorf("GetSession that must create: %v, want %v", err, boom)
		}
	})
}

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

func TestStateAndCounts(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		clock := newFakeClock()
		p := b.open(t, Options{MaxPoolSize: 10, Now: clock.Now})
		ss := getN(t, p, 4)
		ss[0].MarkBad()
		ss[1].Retire()
		ss[2].MarkGood()
		if err := ss[3].SetUserData(map[string]any{"k": "v"}); err != nil {
			t.Fatal(err)
		}
		st := p.State()
		if st.UsableSessionsCount != 3 || st.RetiredSessionsCount != 1 || len(st.Sessions) != 4 {
			t.Fatalf("state counts %d/%d/%d", st.UsableSessionsCount, st.RetiredSessionsCount, len(st.Sessions))
		}
		byID := map[string]SessionState{}
		for _, s := range st.Sessions {
			byID[s.ID] = s
		}
		want := map[string]struct {
			usage   int
			score   float64
			retired bool
		}{ss[0].ID(): {1, 1, false}, ss[1].ID(): {1, 0, true}, ss[2].ID(): {1, 0, false}, ss[3].ID(): {0, 0, false}}
		for id, w := range want {
			got, ok := byID[id]
			if !ok {
				t.Fatalf("state lacks %s", id)
			}
			if got.UsageCount != w.usage || got.ErrorScore != w.score || got.Retired != w.retired ||
				got.MaxUsageCount != 50 || got.MaxErrorScore != 3 || got.ErrorScoreDecrement != 0.5 ||
				!got.CreatedAt.Equal(clock.Now()) || !got.ExpiresAt.Equal(clock.Now().Add(3000*time.Second)) {
				t.Errorf("state of %s: %+v", id, got)
			}
		}
		if byID[ss[3].ID()].UserData["k"] != "v" || byID[ss[0].ID()].UserData == nil {
			t.Errorf("user data in state: %v / %v", byID[ss[3].ID()].UserData, byID[ss[0].ID()].UserData)
		}
		if len(p.Sessions()) != 4 {
			t.Errorf("Sessions() = %d", len(p.Sessions()))
		}
		clock.Advance(3000 * time.Second)
		if p.UsableSessionsCount() != 0 || p.RetiredSessionsCount() != 4 {
			t.Errorf("after expiry: usable %d retired %d", p.UsableSessionsCount(), p.RetiredSessionsCount())
		}
	})
}

func TestOnSessionRetired(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		p := b.open(t, Options{MaxPoolSize: 5})
		var mu sync.Mutex
		var got []SessionState
		cancel := p.OnSessionRetired(func(st SessionState) {
			// Runs outside every lock: calling the pool must not deadlock.
			_ = p.UsableSessionsCount()
			_ = p.State()
			mu.Lock()
			got = append(got, st)
			mu.Unlock()
		})
		second := recordRetired(p)
		ss := getN(t, p, 3)
		ss[0].Retire()
		ss[0].Retire()
		for range 4 {
			ss[1].MarkBad()
		}
		mu.Lock()
		if len(got) != 2 || got[0].ID != ss[0].ID() || !got[0].Retired || got[0].UsageCount != 1 ||
			got[1].ID != ss[1].ID() || got[1].ErrorScore != 3 || !got[1].Retired {
			t.Errorf("events %+v", got)
		}
		mu.Unlock()
		cancel()
		cancel()
		ss[2].Retire()
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n != 2 {
			t.Errorf("canceled subscriber got %d events, want 2", n)
		}
		if second.total() != 3 {
			t.Errorf("other subscriber got %d events, want 3", second.total())
		}
		if p.OnSessionRetired(nil) == nil {
			t.Error("OnSessionRetired(nil) returned a nil cancel")
		}
	})
}

func TestOpenValidatesAllOptions(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		_, err := Open(context.Background(), b.options(t, Options{
			MaxPoolSize:        -1,
			PersistInterval:    -time.Second,
			Strategy:           Strategy(7),
			BlockedStatusCodes: []int{403, 42},
			SessionOptions: SessionOptions{
				ID:            "fixed",
				MaxErrorScore: -1,
				MaxUsageCount: -3,
				MaxAge:        -time.Second,
				ProxyURL:      "127.0.0.1:3128",
				UserData:      map[string]any{"c": make(chan int)},
			},
		}))
		if !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("Open: %v, want ErrInvalidOptions", err)
		}
		for _, want := range []string{"MaxPoolSize -1", "PersistInterval", "Strategy 7", "42", "SessionOptions.ID", "MaxErrorScore", "MaxUsageCount", "MaxAge", "ProxyURL", "UserData"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		if _, err := Open(context.Background(), b.options(t, Options{SessionOptions: SessionOptions{ErrorScoreDecrement: -0.5}})); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("negative decrement: %v", err)
		}
	})
}

func TestOpenDefaults(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		p := b.open(t, Options{})
		if p.maxSize != 1000 || p.strategy != Random || fmt.Sprint(p.blocked) != "[401 403 429]" {
			t.Errorf("defaults: size %d strategy %v blocked %v", p.maxSize, p.strategy, p.blocked)
		}
		if !b.redis && p.key != "SDK_SESSION_POOL_STATE" { // the Redis tests set a key per pool
			t.Errorf("default key %q", p.key)
		}
		if p.done != nil {
			t.Error("a pool without a store started a persist loop")
		}
	})
}

func TestClosedPool(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		opts := Options{}
		if !b.redis {
			opts.Store = NewMemoryStore() // a Redis pool refuses a Store
		}
		p, err := Open(ctx, b.options(t, opts))
		if err != nil {
			t.Fatal(err)
		}
		s := getN(t, p, 1)[0]
		if err := p.Teardown(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Teardown(ctx); err != nil {
			t.Errorf("second Teardown: %v", err)
		}
		if _, err := p.GetSession(ctx); !errors.Is(err, ErrPoolClosed) {
			t.Errorf("GetSession: %v", err)
		}
		if _, err := p.GetSessionByID(ctx, s.ID()); !errors.Is(err, ErrPoolClosed) {
			t.Errorf("GetSessionByID: %v", err)
		}
		if _, err := p.AddSession(ctx, SessionOptions{}); !errors.Is(err, ErrPoolClosed) {
			t.Errorf("AddSession: %v", err)
		}
		if err := p.PersistState(ctx); !errors.Is(err, ErrPoolClosed) {
			t.Errorf("PersistState: %v", err)
		}
		if !b.redis && p.UsableSessionsCount() != 1 {
			// Memory only: the table outlives Teardown (a Redis pool has
			// closed its client; what it held stays on the server).
			t.Errorf("counts after close: %d", p.UsableSessionsCount())
		}
	})
}

func TestGetSessionCanceledContext(t *testing.T) {
	forBackends(t, func(t *testing.T, b testBackend) {
		p := b.open(t, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := p.GetSession(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("GetSession: %v", err)
		}
		if _, err := p.AddSession(ctx, SessionOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("AddSession: %v", err)
		}
		if _, err := p.GetSessionByID(ctx, "session_x"); !errors.Is(err, context.Canceled) {
			t.Errorf("GetSessionByID: %v", err)
		}
		if heldCount(p) != 0 {
			t.Errorf("a canceled call created a session")
		}
	})
}
