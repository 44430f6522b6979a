package sessionpooltest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// The contract of GetSession: fill, then pick among the held sessions with
// the pool's strategy; an unusable pick evicts every unusable session and a
// new one is created. And GetSessionByID, which never creates.

func testGetSessionFillsThenPicksUniformly(t *testing.T, b Backend) {
	ctx := context.Background()
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 5})
	picks := map[string]int{}
	var first []string
	for i := range 5 {
		s := GetN(t, p, 1)[0]
		if _, dup := picks[s.ID()]; dup {
			t.Fatalf("call %d returned an earlier session while filling", i)
		}
		picks[s.ID()] = 0
		first = append(first, s.ID())
		if got := HeldCount(p); got != i+1 {
			t.Errorf("after %d calls the pool holds %d", i+1, got)
		}
	}
	const n = 5000
	for _, s := range GetN(t, p, n) {
		if _, ok := picks[s.ID()]; !ok {
			t.Fatalf("a full pool of usable sessions created a new session")
		}
		picks[s.ID()]++
	}
	if HeldCount(p) != 5 || p.UsableSessionsCount() != 5 || p.RetiredSessionsCount() != 0 {
		t.Errorf("held %d usable %d retired %d", HeldCount(p), p.UsableSessionsCount(), p.RetiredSessionsCount())
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
}

func testGetSessionNeverReturnsUnusable(t *testing.T, b Backend) {
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 3})
	ss := GetN(t, p, 3)
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
			if HeldCount(p) != 3 {
				t.Fatalf("a usable pick changed the pool: %d held", HeldCount(p))
			}
			continue
		}
		// A new session: the pick was unusable.
		if got := HeldCount(p); got != 2 {
			t.Errorf("after eviction the pool holds %d, want 2 (the usable one and the new one)", got)
		}
		if p.RetiredSessionsCount() != 0 || p.UsableSessionsCount() != 2 {
			t.Errorf("usable %d retired %d, want 2 and 0", p.UsableSessionsCount(), p.RetiredSessionsCount())
		}
		for _, old := range ss[:2] {
			if _, err := p.GetSessionByID(context.Background(), old.ID()); !errors.Is(err, sessionpool.ErrSessionNotFound) {
				t.Errorf("evicted session still found: %v", err)
			}
		}
		break
	}
	// Not full any more: the next call fills.
	s := GetN(t, p, 1)[0]
	if s.ID() == ss[2].ID() || HeldCount(p) != 3 {
		t.Errorf("the pool did not fill again: held %d", HeldCount(p))
	}
}

func testGetSessionAllUnusable(t *testing.T, b Backend) {
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 4})
	old := map[string]bool{}
	for _, s := range GetN(t, p, 4) {
		s.Retire()
		old[s.ID()] = true
	}
	s := GetN(t, p, 1)[0]
	if !s.IsUsable() || old[s.ID()] || HeldCount(p) != 1 || p.UsableSessionsCount() != 1 {
		t.Errorf("after picking from a spent pool: usable %v, old %v, held %d", s.IsUsable(), old[s.ID()], HeldCount(p))
	}
}

func testGetSessionEvictsExpired(t *testing.T, b Backend) {
	clock := NewClock()
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 4, Now: clock.Now})
	short1 := AddSession(t, p, sessionpool.SessionOptions{MaxAge: time.Minute})
	short2 := AddSession(t, p, sessionpool.SessionOptions{MaxAge: 2 * time.Minute})
	long := GetN(t, p, 2)
	clock.Advance(2 * time.Minute)
	if p.UsableSessionsCount() != 2 || p.RetiredSessionsCount() != 2 {
		t.Fatalf("usable %d retired %d, want 2 and 2", p.UsableSessionsCount(), p.RetiredSessionsCount())
	}
	for {
		s := GetN(t, p, 1)[0]
		if s.ID() == short1.ID() || s.ID() == short2.ID() {
			t.Fatal("an expired session was returned")
		}
		if s.ID() != long[0].ID() && s.ID() != long[1].ID() {
			break // a new one: an expired session was picked
		}
	}
	if got := HeldCount(p); got != 3 {
		t.Errorf("held %d after evicting both expired sessions, want 3", got)
	}
	if p.RetiredSessionsCount() != 0 {
		t.Errorf("retired count %d, want 0", p.RetiredSessionsCount())
	}
}

func testRoundRobin(t *testing.T, b Backend) {
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 3, Strategy: sessionpool.RoundRobin})
	first := GetN(t, p, 3)
	next := GetN(t, p, 6)
	for i, s := range next {
		if s.ID() != first[i%3].ID() {
			t.Fatalf("call %d: got %s, want %s (cycle in order)", i+4, s.ID(), first[i%3].ID())
		}
	}
	first[1].Retire()
	seen := map[string]int{}
	for _, s := range GetN(t, p, 30) {
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
}

func testUseUntilFailure(t *testing.T, b Backend) {
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 3, Strategy: sessionpool.UseUntilFailure})
	a := GetN(t, p, 1)[0]
	for _, s := range GetN(t, p, 10) {
		if s.ID() != a.ID() {
			t.Fatal("UseUntilFailure switched sessions while the last one is usable")
		}
	}
	a.MarkBad()
	a.MarkBad()
	if s := GetN(t, p, 1)[0]; s.ID() != a.ID() {
		t.Fatal("switched before the session failed")
	}
	a.MarkBad()
	next := GetN(t, p, 1)[0]
	if next.ID() == a.ID() {
		t.Fatal("returned a blocked session")
	}
	if s := GetN(t, p, 1)[0]; s.ID() != next.ID() {
		t.Fatal("did not stick to the new session")
	}
}

func testGetSessionByID(t *testing.T, b Backend) {
	ctx := context.Background()
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 2})
	s := GetN(t, p, 1)[0]
	got, err := p.GetSessionByID(ctx, s.ID())
	if err != nil || got.ID() != s.ID() {
		t.Fatalf("GetSessionByID = %v, %v", got, err)
	}
	if _, err := p.GetSessionByID(ctx, "session_nope"); !errors.Is(err, sessionpool.ErrSessionNotFound) {
		t.Errorf("unknown ID: %v, want ErrSessionNotFound", err)
	}
	s.Retire()
	if _, err := p.GetSessionByID(ctx, s.ID()); !errors.Is(err, sessionpool.ErrSessionNotFound) {
		t.Errorf("retired session: %v, want ErrSessionNotFound", err)
	}
	if HeldCount(p) != 1 {
		t.Errorf("GetSessionByID created sessions: %d held", HeldCount(p))
	}
}

func testGetSessionCanceledContext(t *testing.T, b Backend) {
	p := b.Open(t, sessionpool.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.GetSession(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("GetSession: %v", err)
	}
	if _, err := p.AddSession(ctx, sessionpool.SessionOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("AddSession: %v", err)
	}
	if _, err := p.GetSessionByID(ctx, "session_x"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetSessionByID: %v", err)
	}
	if HeldCount(p) != 0 {
		t.Errorf("a canceled call created a session")
	}
}
