package sessionpooltest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// The contract of the pool as a whole: its counts and State, retirement
// events, the checks and defaults of Open, and Teardown.

func testStateAndCounts(t *testing.T, b Backend) {
	clock := NewClock()
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 10, Now: clock.Now})
	ss := GetN(t, p, 4)
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
	byID := map[string]sessionpool.SessionState{}
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
}

func testOnSessionRetired(t *testing.T, b Backend) {
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 5})
	var mu sync.Mutex
	var got []sessionpool.SessionState
	cancel := p.OnSessionRetired(func(st sessionpool.SessionState) {
		// Runs outside every lock: calling the pool must not deadlock.
		_ = p.UsableSessionsCount()
		_ = p.State()
		mu.Lock()
		got = append(got, st)
		mu.Unlock()
	})
	second := RecordRetired(p)
	ss := GetN(t, p, 3)
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
	if second.Total() != 3 {
		t.Errorf("other subscriber got %d events, want 3", second.Total())
	}
	if p.OnSessionRetired(nil) == nil {
		t.Error("OnSessionRetired(nil) returned a nil cancel")
	}
}

func testOpenValidatesAllOptions(t *testing.T, b Backend) {
	_, err := sessionpool.Open(context.Background(), b.Options(t, sessionpool.Options{
		MaxPoolSize:        -1,
		PersistInterval:    -time.Second,
		Strategy:           sessionpool.Strategy(7),
		BlockedStatusCodes: []int{403, 42},
		SessionOptions: sessionpool.SessionOptions{
			ID:            "fixed",
			MaxErrorScore: -1,
			MaxUsageCount: -3,
			MaxAge:        -time.Second,
			ProxyURL:      "127.0.0.1:3128",
			UserData:      map[string]any{"c": make(chan int)},
		},
	}))
	if !errors.Is(err, sessionpool.ErrInvalidOptions) {
		t.Fatalf("Open: %v, want ErrInvalidOptions", err)
	}
	for _, want := range []string{"MaxPoolSize -1", "PersistInterval", "Strategy 7", "42", "SessionOptions.ID", "MaxErrorScore", "MaxUsageCount", "MaxAge", "ProxyURL", "UserData"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := sessionpool.Open(context.Background(), b.Options(t, sessionpool.Options{SessionOptions: sessionpool.SessionOptions{ErrorScoreDecrement: -0.5}})); !errors.Is(err, sessionpool.ErrInvalidOptions) {
		t.Errorf("negative decrement: %v", err)
	}
}

func testOpenDefaults(t *testing.T, b Backend) {
	p := b.Open(t, sessionpool.Options{})
	if b.Inspect == nil {
		t.Skip("the defaults are internal: no Inspector")
	}
	maxSize, strategy, blocked, key, persisting := b.Inspect.Defaults(p)
	if maxSize != 1000 || strategy != sessionpool.Random || fmt.Sprint(blocked) != "[401 403 429]" {
		t.Errorf("defaults: size %d strategy %v blocked %v", maxSize, strategy, blocked)
	}
	if !b.Remote && key != "SDK_SESSION_POOL_STATE" { // the Redis tests set a key per pool
		t.Errorf("default key %q", key)
	}
	if persisting {
		t.Error("a pool without a store started a persist loop")
	}
}

func testClosedPool(t *testing.T, b Backend) {
	ctx := context.Background()
	opts := sessionpool.Options{}
	if !b.Remote {
		opts.Store = sessionpool.NewMemoryStore() // a Redis pool refuses a Store
	}
	p, err := sessionpool.Open(ctx, b.Options(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	s := GetN(t, p, 1)[0]
	if err := p.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	if _, err := p.GetSession(ctx); !errors.Is(err, sessionpool.ErrPoolClosed) {
		t.Errorf("GetSession: %v", err)
	}
	if _, err := p.GetSessionByID(ctx, s.ID()); !errors.Is(err, sessionpool.ErrPoolClosed) {
		t.Errorf("GetSessionByID: %v", err)
	}
	if _, err := p.AddSession(ctx, sessionpool.SessionOptions{}); !errors.Is(err, sessionpool.ErrPoolClosed) {
		t.Errorf("AddSession: %v", err)
	}
	if err := p.PersistState(ctx); !errors.Is(err, sessionpool.ErrPoolClosed) {
		t.Errorf("PersistState: %v", err)
	}
	if !b.Remote && p.UsableSessionsCount() != 1 {
		// Memory only: the table outlives Teardown (a Redis pool has
		// closed its client; what it held stays on the server).
		t.Errorf("counts after close: %d", p.UsableSessionsCount())
	}
}
