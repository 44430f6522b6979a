package sessionpooltest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// The contract of AddSession and of Options.CreateSessionFunc, the hook
// that builds every new session.

func testAddSession(t *testing.T, b Backend) {
	ctx := context.Background()
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 2})
	a, err := p.AddSession(ctx, sessionpool.SessionOptions{ID: "alpha", MaxUsageCount: 7, ProxyURL: "http://127.0.0.1:3128"})
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
	_, err = p.AddSession(ctx, sessionpool.SessionOptions{ID: "alpha"})
	if !errors.Is(err, sessionpool.ErrSessionExists) || !strings.Contains(err.Error(), `"alpha"`) {
		t.Errorf("duplicate usable ID: %v, want ErrSessionExists naming alpha", err)
	}
	// A spent session's ID is free again.
	a.Retire()
	a2, err := p.AddSession(ctx, sessionpool.SessionOptions{ID: "alpha"})
	if err != nil {
		t.Fatalf("re-adding a retired session's ID: %v", err)
	}
	// The replacement is a new session: not the retired one revived.
	got, err := p.GetSessionByID(ctx, "alpha")
	if err != nil {
		t.Fatalf("the replacement is not found: %v", err)
	}
	if got.ID() != "alpha" || a2.ID() != "alpha" || got.Retired() || got.UsageCount() != 0 ||
		got.MaxUsageCount() != 50 || got.ProxyURL() != "" || HeldCount(p) != 1 {
		t.Errorf("replacement: retired %v, uses %d, max %d, proxy %q; held %d",
			got.Retired(), got.UsageCount(), got.MaxUsageCount(), got.ProxyURL(), HeldCount(p))
	}
	// Full of usable sessions: AddSession exceeds MaxPoolSize.
	GetN(t, p, 1)
	if _, err := p.AddSession(ctx, sessionpool.SessionOptions{}); err != nil {
		t.Fatal(err)
	}
	if HeldCount(p) != 3 {
		t.Errorf("held %d, want 3 (AddSession may exceed MaxPoolSize)", HeldCount(p))
	}
	// Full with an unusable one: it is evicted first.
	a2.Retire()
	if _, err := p.AddSession(ctx, sessionpool.SessionOptions{}); err != nil {
		t.Fatal(err)
	}
	if HeldCount(p) != 3 || p.RetiredSessionsCount() != 0 {
		t.Errorf("held %d retired %d, want 3 and 0", HeldCount(p), p.RetiredSessionsCount())
	}
	if _, err := p.GetSessionByID(ctx, "alpha"); !errors.Is(err, sessionpool.ErrSessionNotFound) {
		t.Errorf("the evicted alpha: %v, want ErrSessionNotFound", err)
	}
	if _, err := p.AddSession(ctx, sessionpool.SessionOptions{MaxUsageCount: -1, MaxErrorScore: -2}); !errors.Is(err, sessionpool.ErrInvalidOptions) ||
		!strings.Contains(err.Error(), "MaxUsageCount") || !strings.Contains(err.Error(), "MaxErrorScore") {
		t.Errorf("invalid options: %v", err)
	}
}

func testCreateSessionFunc(t *testing.T, b Backend) {
	ctx := context.Background()
	upstreams := []string{"http://127.0.0.1:1001", "http://127.0.0.1:1002"}
	var mu sync.Mutex
	calls := 0
	var gotOpts []sessionpool.SessionOptions
	opts := sessionpool.Options{
		MaxPoolSize:    4,
		SessionOptions: sessionpool.SessionOptions{MaxUsageCount: 9},
		CreateSessionFunc: func(ctx context.Context, p *sessionpool.Pool, o sessionpool.SessionOptions) (*sessionpool.Session, error) {
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
	p := b.Open(t, opts)
	ss := GetN(t, p, 2)
	added, err := p.AddSession(ctx, sessionpool.SessionOptions{ID: "mine"})
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
	createSessionFuncFailures(t, b)
	t.Run("session already held", func(t *testing.T) { createSessionFuncHeldSession(t, b) })
}

// createSessionFuncFailures: a hook that fails, returns no session or
// another pool's session fails the calls that create, and the pool holds
// nothing after them.
func createSessionFuncFailures(t *testing.T, b Backend) {
	ctx := context.Background()
	boom := errors.New("boom")
	other := b.Open(t, sessionpool.Options{})
	tests := []struct {
		name string
		fn   func(context.Context, *sessionpool.Pool, sessionpool.SessionOptions) (*sessionpool.Session, error)
		want error
	}{
		{"error", func(context.Context, *sessionpool.Pool, sessionpool.SessionOptions) (*sessionpool.Session, error) {
			return nil, boom
		}, boom},
		{"nil session", func(context.Context, *sessionpool.Pool, sessionpool.SessionOptions) (*sessionpool.Session, error) {
			return nil, nil
		}, sessionpool.ErrForeignSession},
		{"other pool's session", func(context.Context, *sessionpool.Pool, sessionpool.SessionOptions) (*sessionpool.Session, error) {
			return other.NewSession(sessionpool.SessionOptions{})
		}, sessionpool.ErrForeignSession},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := b.Open(t, sessionpool.Options{MaxPoolSize: 1, CreateSessionFunc: tc.fn})
			if _, err := p.GetSession(ctx); !errors.Is(err, tc.want) {
				t.Errorf("GetSession: %v, want %v", err, tc.want)
			}
			if _, err := p.AddSession(ctx, sessionpool.SessionOptions{}); !errors.Is(err, tc.want) {
				t.Errorf("AddSession: %v, want %v", err, tc.want)
			}
			if n := HeldCount(p); n != 0 {
				t.Errorf("held %d after failures", n)
			}
			if !b.Remote && b.Inspect != nil {
				// Memory only: the reserved slot was given back.
				b.Inspect.CheckTable(t, p)
			}
		})
	}
}

// createSessionFuncHeldSession: a hook that returns a session the pool
// already holds fails, and the held session is left as it is.
func createSessionFuncHeldSession(t *testing.T, b Backend) {
	ctx := context.Background()
	var first *sessionpool.Session
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 3, CreateSessionFunc: func(ctx context.Context, p *sessionpool.Pool, o sessionpool.SessionOptions) (*sessionpool.Session, error) {
		if first != nil {
			return first, nil
		}
		s, err := p.NewSession(o)
		first = s
		return s, err
	}})
	s := GetN(t, p, 1)[0]
	id := s.ID()
	if _, err := p.GetSession(ctx); !errors.Is(err, sessionpool.ErrForeignSession) {
		t.Errorf("re-adding a held session: %v", err)
	}
	if _, err := p.AddSession(ctx, sessionpool.SessionOptions{}); !errors.Is(err, sessionpool.ErrForeignSession) {
		t.Errorf("re-adding a held session with AddSession: %v", err)
	}
	if s.ID() != id || HeldCount(p) != 1 {
		t.Errorf("the held session became %s (was %s); held %d", s.ID(), id, HeldCount(p))
	}
}

// testCreateSessionFuncSeedsSession: the hook may set cookies and user data
// on the session it builds before returning it; the pool holds them.
func testCreateSessionFuncSeedsSession(t *testing.T, b Backend) {
	u, _ := url.Parse("https://example.com/")
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 2, CreateSessionFunc: func(ctx context.Context, p *sessionpool.Pool, o sessionpool.SessionOptions) (*sessionpool.Session, error) {
		s, err := p.NewSession(o)
		if err != nil {
			return nil, err
		}
		s.SetCookies(u, []*http.Cookie{{Name: "seed", Value: "1"}})
		s.SetCookiesFromResponse(SetCookieResponse(u, "resp=2"))
		if err := s.SetUserData(map[string]any{"seeded": true}); err != nil {
			return nil, err
		}
		return s, nil
	}})
	got := GetN(t, p, 1)[0]
	added := AddSession(t, p, sessionpool.SessionOptions{})
	for _, s := range []*sessionpool.Session{got, added} {
		for what, s := range map[string]*sessionpool.Session{"returned": s, "held": MustGetByID(t, p, s.ID())} {
			if !s.IsUsable() || s.Retired() || s.UsageCount() != 0 || s.CookieString(u) != "seed=1; resp=2" || s.UserData()["seeded"] != true {
				t.Errorf("%s %s: usable %v retired %v uses %d cookies %q user data %v", what, s.ID(),
					s.IsUsable(), s.Retired(), s.UsageCount(), s.CookieString(u), s.UserData())
			}
		}
	}
	if p.UsableSessionsCount() != 2 || p.RetiredSessionsCount() != 0 {
		t.Errorf("usable %d retired %d", p.UsableSessionsCount(), p.RetiredSessionsCount())
	}
}

// testCreateSessionFuncFailureOnFullPool: a failing CreateSessionFunc fails
// only the calls that must create a session.
func testCreateSessionFuncFailureOnFullPool(t *testing.T, b Backend) {
	ctx := context.Background()
	var mu sync.Mutex
	var fail error
	p := b.Open(t, sessionpool.Options{MaxPoolSize: 2, CreateSessionFunc: func(ctx context.Context, p *sessionpool.Pool, o sessionpool.SessionOptions) (*sessionpool.Session, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail != nil {
			return nil, fail
		}
		return p.NewSession(o)
	}})
	ss := GetN(t, p, 2)
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
}
