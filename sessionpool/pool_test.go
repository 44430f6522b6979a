package sessionpool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// held returns the number of sessions the pool holds.
func held(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.t.all)
}

func getN(t *testing.T, p *Pool, n int) []*Session {
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

func TestGetSessionFillsThenPicksUniformly(t *testing.T) {
	p := openPool(t, Options{MaxPoolSize: 5})
	ids := map[*Session]int{}
	var first []*Session
	for i := range 5 {
		s := getN(t, p, 1)[0]
		if _, dup := ids[s]; dup {
			t.Fatalf("call %d returned an earlier session while filling", i)
		}
		ids[s] = 0
		first = append(first, s)
		if got := held(p); got != i+1 {
			t.Errorf("after %d calls the pool holds %d", i+1, got)
		}
	}
	const picks = 5000
	for _, s := range getN(t, p, picks) {
		if _, ok := ids[s]; !ok {
			t.Fatalf("a full pool of usable sessions created a new session")
		}
		ids[s]++
	}
	if held(p) != 5 || p.UsableSessionsCount() != 5 || p.RetiredSessionsCount() != 0 {
		t.Errorf("held %d usable %d retired %d", held(p), p.UsableSessionsCount(), p.RetiredSessionsCount())
	}
	// Each of 5 sessions expects 1000 picks (sd ~28): 800..1200 is > 7 sd.
	for s, n := range ids {
		if n < 800 || n > 1200 {
			t.Errorf("session %s picked %d times of %d: not uniform", s.ID(), n, picks)
		}
	}
	for _, s := range first {
		if s.UsageCount() != 0 {
			t.Errorf("GetSession counted a use: %d", s.UsageCount())
		}
	}
}

func TestGetSessionNeverReturnsUnusable(t *testing.T) {
	p := openPool(t, Options{MaxPoolSize: 3})
	ss := getN(t, p, 3)
	ss[0].Retire()
	ss[1].MarkBad()
	ss[1].MarkBad()
	ss[1].MarkBad()
	if p.UsableSessionsCount() != 1 || p.RetiredSessionsCount() != 2 {
		t.Fatalf("usable %d retired %d, want 1 and 2", p.UsableSessionsCount(), p.RetiredSessionsCount())
	}
	// Unusable sessions stay until a pick hits one; then all go at once and
	// a new session is returned.
	for i := 0; ; i++ {
		s, err := p.GetSession(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if s == ss[0] || s == ss[1] {
			t.Fatalf("GetSession returned an unusable session")
		}
		if s == ss[2] {
			if held(p) != 3 {
				t.Fatalf("a usable pick changed the pool: %d held", held(p))
			}
			continue
		}
		// A new session: the pick was unusable.
		if got := held(p); got != 2 {
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
	if s == ss[2] || held(p) != 3 {
		t.Errorf("the pool did not fill again: held %d", held(p))
	}
}

func TestGetSessionAllUnusable(t *testing.T) {
	p := openPool(t, Options{MaxPoolSize: 4})
	for _, s := range getN(t, p, 4) {
		s.Retire()
	}
	s := getN(t, p, 1)[0]
	if !s.IsUsable() || held(p) != 1 || p.UsableSessionsCount() != 1 {
		t.Errorf("after picking from a spent pool: usable %v, held %d", s.IsUsable(), held(p))
	}
}

func TestGetSessionEvictsExpired(t *testing.T) {
	clock := newFakeClock()
	p := openPool(t, Options{MaxPoolSize: 4, Now: clock.Now})
	short1, err := p.AddSession(context.Background(), SessionOptions{MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	short2, _ := p.AddSession(context.Background(), SessionOptions{MaxAge: 2 * time.Minute})
	long := getN(t, p, 2)
	clock.Advance(2 * time.Minute)
	if p.UsableSessionsCount() != 2 || p.RetiredSessionsCount() != 2 {
		t.Fatalf("usable %d retired %d, want 2 and 2", p.UsableSessionsCount(), p.RetiredSessionsCount())
	}
	for {
		s := getN(t, p, 1)[0]
		if s == short1 || s == short2 {
			t.Fatal("an expired session was returned")
		}
		if s != long[0] && s != long[1] {
			break // a new one: an expired session was picked
		}
	}
	if got := held(p); got != 3 {
		t.Errorf("held %d after evicting both expired sessions, want 3", got)
	}
	if p.RetiredSessionsCount() != 0 {
		t.Errorf("retired count %d, want 0", p.RetiredSessionsCount())
	}
}

func TestRoundRobin(t *testing.T) {
	p := openPool(t, Options{MaxPoolSize: 3, Strategy: RoundRobin})
	first := getN(t, p, 3)
	next := getN(t, p, 6)
	for i, s := range next {
		if s != first[i%3] {
			t.Fatalf("call %d: got %s, want %s (cycle in order)", i+4, s.ID(), first[i%3].ID())
		}
	}
	first[1].Retire()
	seen := map[*Session]int{}
	for _, s := range getN(t, p, 30) {
		if s == first[1] {
			t.Fatal("RoundRobin returned a retired session")
		}
		seen[s]++
	}
	if len(seen) != 3 {
		t.Errorf("RoundRobin cycled over %d sessions, want 3", len(seen))
	}
	// The eviction hands out the new session once out of turn.
	for s, n := range seen {
		if n < 9 || n > 11 {
			t.Errorf("session %s returned %d times of 30, want 10 +- 1", s.ID(), n)
		}
	}
}

func TestUseUntilFailure(t *testing.T) {
	p := openPool(t, Options{MaxPoolSize: 3, Strategy: UseUntilFailure})
	a := getN(t, p, 1)[0]
	for _, s := range getN(t, p, 10) {
		if s != a {
			t.Fatal("UseUntilFailure switched sessions while the last one is usable")
		}
	}
	a.MarkBad()
	a.MarkBad()
	if s := getN(t, p, 1)[0]; s != a {
		t.Fatal("switched before the session failed")
	}
	a.MarkBad()
	b := getN(t, p, 1)[0]
	if b == a {
		t.Fatal("returned a blocked session")
	}
	if s := getN(t, p, 1)[0]; s != b {
		t.Fatal("did not stick to the new session")
	}
}

func TestGetSessionByID(t *testing.T) {
	p := openPool(t, Options{MaxPoolSize: 2})
	s := getN(t, p, 1)[0]
	got, err := p.GetSessionByID(context.Background(), s.ID())
	if err != nil || got != s {
		t.Fatalf("GetSessionByID = %v, %v", got, err)
	}
	if _, err := p.GetSessionByID(context.Background(), "session_nope"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("unknown ID: %v, want ErrSessionNotFound", err)
	}
	s.Retire()
	if _, err := p.GetSessionByID(context.Background(), s.ID()); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("retired session: %v, want ErrSessionNotFound", err)
	}
	if held(p) != 1 {
		t.Errorf("GetSessionByID created sessions: %d held", held(p))
	}
}

func TestAddSession(t *testing.T) {
	ctx := context.Background()
	p := openPool(t, Options{MaxPoolSize: 2})
	a, err := p.AddSession(ctx, SessionOptions{ID: "alpha", MaxUsageCount: 7, ProxyURL: "http://127.0.0.1:3128"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != "alpha" || a.MaxUsageCount() != 7 || a.ProxyURL() != "http://127.0.0.1:3128" || a.MaxErrorScore() != 3 {
		t.Errorf("added session: %s %d %q %v", a.ID(), a.MaxUsageCount(), a.ProxyURL(), a.MaxErrorScore())
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
	if got, _ := p.GetSessionByID(ctx, "alpha"); got != a2 || a2 == a || held(p) != 1 {
		t.Errorf("replacement: got %p want %p, held %d", got, a2, held(p))
	}
	// Full of usable sessions: AddSession exceeds MaxPoolSize.
	getN(t, p, 1)
	if _, err := p.AddSession(ctx, SessionOptions{}); err != nil {
		t.Fatal(err)
	}
	if held(p) != 3 {
		t.Errorf("held %d, want 3 (AddSession may exceed MaxPoolSize)", held(p))
	}
	// Full with an unusable one: it is evicted first.
	a2.Retire()
	if _, err := p.AddSession(ctx, SessionOptions{}); err != nil {
		t.Fatal(err)
	}
	if held(p) != 3 || p.RetiredSessionsCount() != 0 {
		t.Errorf("held %d retired %d, want 3 and 0", held(p), p.RetiredSessionsCount())
	}
	if _, err := p.AddSession(ctx, SessionOptions{MaxUsageCount: -1, MaxErrorScore: -2}); !errors.Is(err, ErrInvalidOptions) ||
		!strings.Contains(err.Error(), "MaxUsageCount") || !strings.Contains(err.Error(), "MaxErrorScore") {
		t.Errorf("invalid options: %v", err)
	}
}

func TestCreateSessionFunc(t *testing.T) {
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
	p := openPool(t, opts)
	ss := getN(t, p, 2)
	added, err := p.AddSession(ctx, SessionOptions{ID: "mine"})
	if err != nil {
		t.Fatal(err)
	}
	if ss[0].ProxyURL() != upstreams[0] || ss[1].ProxyURL() != upstreams[1] || added.ProxyURL() != upstreams[0] {
		t.Errorf("upstreams %q %q %q", ss[0].ProxyURL(), ss[1].ProxyURL(), added.ProxyURL())
	}
	if gotOpts[0].MaxUsageCount != 9 || gotOpts[2].ID != "mine" || gotOpts[2].MaxUsageCount != 9 {
		t.Errorf("hook options %+v", gotOpts)
	}
	if added.ID() != "mine" || ss[0].MaxUsageCount() != 9 {
		t.Errorf("session %s max usage %d", added.ID(), ss[0].MaxUsageCount())
	}

	boom := errors.New("boom")
	other := openPool(t, Options{})
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
			p := openPool(t, Options{MaxPoolSize: 1, CreateSessionFunc: tc.fn})
			if _, err := p.GetSession(ctx); !errors.Is(err, tc.want) {
				t.Errorf("GetSession: %v, want %v", err, tc.want)
			}
			if _, err := p.AddSession(ctx, SessionOptions{}); !errors.Is(err, tc.want) {
				t.Errorf("AddSession: %v, want %v", err, tc.want)
			}
			// The reserved slot was given back: the pool is still empty.
			p.mu.Lock()
			n, pending := len(p.t.all), p.t.pending
			p.mu.Unlock()
			if n != 0 || pending != 0 {
				t.Errorf("held %d pending %d after failures", n, pending)
			}
		})
	}
	t.Run("session already held", func(t *testing.T) {
		var first *Session
		p := openPool(t, Options{MaxPoolSize: 3, CreateSessionFunc: func(ctx context.Context, p *Pool, o SessionOptions) (*Session, error) {
			if first != nil {
				return first, nil
			}
			s, err := p.NewSession(o)
			first = s
			return s, err
		}})
		getN(t, p, 1)
		if _, err := p.GetSession(ctx); !errors.Is(err, ErrForeignSession) {
			t.Errorf("re-adding a held session: %v", err)
		}
	})
}

func TestGetSessionWaitsForPendingCreation(t *testing.T) {
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
	clock := newFakeClock()
	p := openPool(t, Options{MaxPoolSize: 10, Now: clock.Now})
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
	want := map[*Session]struct {
		usage   int
		score   float64
		retired bool
	}{ss[0]: {1, 1, false}, ss[1]: {1, 0, true}, ss[2]: {1, 0, false}, ss[3]: {0, 0, false}}
	for s, w := range want {
		got, ok := byID[s.ID()]
		if !ok {
			t.Fatalf("state lacks %s", s.ID())
		}
		if got.UsageCount != w.usage || got.ErrorScore != w.score || got.Retired != w.retired ||
			got.MaxUsageCount != 50 || got.MaxErrorScore != 3 || got.ErrorScoreDecrement != 0.5 ||
			!got.CreatedAt.Equal(clock.Now()) || !got.ExpiresAt.Equal(clock.Now().Add(3000*time.Second)) {
			t.Errorf("state of %s: %+v", s.ID(), got)
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
}

func TestOnSessionRetired(t *testing.T) {
	p := openPool(t, Options{MaxPoolSize: 5})
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
		got[1].ID != ss[1].ID() || got[1].ErrorScore != 3 {
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
}

func TestOpenValidatesAllOptions(t *testing.T) {
	_, err := Open(context.Background(), Options{
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
	})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Open: %v, want ErrInvalidOptions", err)
	}
	for _, want := range []string{"MaxPoolSize -1", "PersistInterval", "Strategy 7", "42", "SessionOptions.ID", "MaxErrorScore", "MaxUsageCount", "MaxAge", "ProxyURL", "UserData"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Open(context.Background(), Options{SessionOptions: SessionOptions{ErrorScoreDecrement: -0.5}}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("negative decrement: %v", err)
	}
}

func TestOpenDefaults(t *testing.T) {
	p := openPool(t, Options{})
	if p.maxSize != 1000 || p.key != "SDK_SESSION_POOL_STATE" || p.strategy != Random || fmt.Sprint(p.blocked) != "[401 403 429]" {
		t.Errorf("defaults: size %d key %q strategy %v blocked %v", p.maxSize, p.key, p.strategy, p.blocked)
	}
	if p.done != nil {
		t.Error("a pool without a store started a persist loop")
	}
}

func TestClosedPool(t *testing.T) {
	ctx := context.Background()
	p, err := Open(ctx, Options{Store: NewMemoryStore()})
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
	if p.UsableSessionsCount() != 1 {
		t.Errorf("counts after close: %d", p.UsableSessionsCount())
	}
}

func TestGetSessionCanceledContext(t *testing.T) {
	p := openPool(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.GetSession(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("GetSession: %v", err)
	}
	if _, err := p.AddSession(ctx, SessionOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("AddSession: %v", err)
	}
	if held(p) != 0 {
		t.Errorf("a canceled call created a session")
	}
}
