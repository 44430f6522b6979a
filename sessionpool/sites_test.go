package sessionpool_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// openSites opens a Sites torn down at the end of the test.
func openSites(t *testing.T, opts sessionpool.Options) *sessionpool.Sites {
	t.Helper()
	ss, err := sessionpool.OpenSites(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Teardown(context.Background()) })
	return ss
}

func sitePool(t *testing.T, ss *sessionpool.Sites, site string) *sessionpool.Pool {
	t.Helper()
	p, err := ss.Pool(context.Background(), site)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func giveCookie(s *sessionpool.Session, rawURL, line string) {
	u, _ := url.Parse(rawURL)
	s.SetCookiesFromResponse(&http.Response{Header: http.Header{"Set-Cookie": {line}}, Request: &http.Request{URL: u}})
}

// sitesCases runs the isolation checks on both backends.
func TestSitesIsolation(t *testing.T) {
	for _, b := range []struct {
		name string
		opts func(t *testing.T) sessionpool.Options
	}{
		{"memory", func(*testing.T) sessionpool.Options { return sessionpool.Options{MaxPoolSize: 2} }},
		{"redis", func(t *testing.T) sessionpool.Options {
			return redisBackend().Options(t, sessionpool.Options{MaxPoolSize: 2})
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			ss := openSites(t, b.opts(t))
			a, bp := sitePool(t, ss, "a.test"), sitePool(t, ss, "b.test")
			if a == bp || a.Site() != "a.test" || bp.Site() != "b.test" {
				t.Fatalf("pools: %p %q, %p %q", a, a.Site(), bp, bp.Site())
			}
			if again := sitePool(t, ss, "a.test"); again != a {
				t.Fatal("a second use of a site opened another pool")
			}
			var retired []sessionpool.SessionState
			var mu sync.Mutex
			ss.OnSessionRetired(func(st sessionpool.SessionState) {
				mu.Lock()
				retired = append(retired, st)
				mu.Unlock()
			})
			// One name on two sites: two sessions, their own cookies.
			aliceA, err := a.AddSession(ctx, sessionpool.SessionOptions{ID: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			aliceB, err := bp.AddSession(ctx, sessionpool.SessionOptions{ID: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			giveCookie(aliceB, "https://b.test/", "cart=7")
			aliceA.Retire()
			if _, err := a.GetSessionByID(ctx, "alice"); !errors.Is(err, sessionpool.ErrSessionNotFound) {
				t.Fatalf("alice on a.test after retirement: %v", err)
			}
			got, err := bp.GetSessionByID(ctx, "alice")
			if err != nil {
				t.Fatalf("alice on b.test after a.test retired its alice: %v", err)
			}
			if c := got.CookieString(mustURL("https://b.test/")); c != "cart=7" || got.Site() != "b.test" {
				t.Fatalf("alice on b.test: cookies %q, site %q", c, got.Site())
			}
			mu.Lock()
			if len(retired) != 1 || retired[0].ID != "alice" || retired[0].Site != "a.test" {
				t.Errorf("retirement events: %+v", retired)
			}
			mu.Unlock()
			// MaxPoolSize holds per site: b.test still fills to 2 while
			// a.test holds its own.
			for range 3 {
				if _, err := a.GetSession(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := bp.GetSession(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(bp.Sessions()); n != 2 {
				t.Errorf("b.test holds %d sessions, want its MaxPoolSize 2", n)
			}
			if n, want := ss.UsableSessionsCount(), a.UsableSessionsCount()+bp.UsableSessionsCount(); n != want || n < 3 {
				t.Errorf("usable over both sites: %d, want %d (a.test's plus b.test's 2)", n, want)
			}
			if ps := ss.Pools(); len(ps) != 2 || ps[0] != a || ps[1] != bp {
				t.Errorf("Pools: %v", ps)
			}
			if ss.Lookup("c.test") != nil {
				t.Error("Lookup opened a site")
			}
		})
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// Each site's pool persists under its own key, the index lists them, and
// OpenSites brings them all back; the site "" is the key of a plain pool.
func TestSitesPersist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sessionpool.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A pool persisted by Open is the site "" of a Sites on its key.
	plain, err := sessionpool.Open(ctx, sessionpool.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.AddSession(ctx, sessionpool.SessionOptions{ID: "old"}); err != nil {
		t.Fatal(err)
	}
	if err := plain.Teardown(ctx); err != nil {
		t.Fatal(err)
	}

	ss, err := sessionpool.OpenSites(ctx, sessionpool.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"a.test", "b.test"} {
		s, err := sitePool(t, ss, site).AddSession(ctx, sessionpool.SessionOptions{ID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		giveCookie(s, "https://"+site+"/", "site="+site)
	}
	if _, err := sitePool(t, ss, "").GetSessionByID(ctx, "old"); err != nil {
		t.Fatalf("the plain pool's session as site \"\": %v", err)
	}
	if err := ss.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"SDK_SESSION_POOL_STATE@a.test.json", "SDK_SESSION_POOL_STATE@b.test.json", "SDK_SESSION_POOL_STATE.sites.json"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", f, fi.Mode().Perm())
		}
	}

	again := openSites(t, sessionpool.Options{Store: store})
	ps := again.Pools()
	if len(ps) != 3 || ps[0].Site() != "" || ps[1].Site() != "a.test" || ps[2].Site() != "b.test" {
		t.Fatalf("sites after reopening: %v", ps)
	}
	for _, p := range ps[1:] {
		s, err := p.GetSessionByID(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if c := s.CookieString(mustURL("https://" + p.Site() + "/")); c != "site="+p.Site() {
			t.Errorf("%s: cookies %q", p.Site(), c)
		}
	}
}

// A site whose document was written but is missing from the index (a crash
// between the two writes) is loaded on its first use.
func TestSitesUnlistedSiteLoadsOnUse(t *testing.T) {
	ctx := context.Background()
	store := sessionpool.NewMemoryStore()
	ss := openSites(t, sessionpool.Options{Store: store})
	if _, err := sitePool(t, ss, "a.test").AddSession(ctx, sessionpool.SessionOptions{ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := ss.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "SDK_SESSION_POOL_STATE.sites"); err != nil {
		t.Fatal(err)
	}
	again := openSites(t, sessionpool.Options{Store: store})
	if n := len(again.Pools()); n != 0 {
		t.Fatalf("%d sites open without an index", n)
	}
	if _, err := sitePool(t, again, "a.test").GetSessionByID(ctx, "alice"); err != nil {
		t.Fatalf("alice after the site's first use: %v", err)
	}
}

// Bad persisted state fails OpenSites with an error naming the key, and
// writes nothing.
func TestSitesBadState(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, key, value string
		want             []string // in the error
	}{
		{"index not JSON", "K.sites", "{", []string{`"K.sites"`, "1:2: unexpected end"}},
		{"index of another version", "K.sites", `{"version":2,"sites":[]}`, []string{`"K.sites"`, "got version 2"}},
		{"index with a site not a string", "K.sites", "{\"version\": 1,\n \"sites\": [\"a\", 7]}", []string{`"K.sites"`, "2:", "sites"}},
		{"site document", "K@a.test", `{"version":1,"sessions":[{"id":5}]}`, []string{`"K@a.test"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := sessionpool.NewMemoryStore()
			if tc.key != "K.sites" {
				store.Set(ctx, "K.sites", []byte(`{"version":1,"sites":["a.test"]}`))
			}
			store.Set(ctx, tc.key, []byte(tc.value))
			_, err := sessionpool.OpenSites(ctx, sessionpool.Options{Store: store, PersistStateKey: "K"})
			if !errors.Is(err, sessionpool.ErrInvalidState) {
				t.Fatalf("err = %v, want ErrInvalidState", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %s", err, w)
				}
			}
			if got, _ := store.Get(ctx, tc.key); string(got) != tc.value {
				t.Errorf("%s was rewritten: %q", tc.key, got)
			}
		})
	}
}

// Concurrent first uses of a site open one pool.
func TestSitesOpenOnce(t *testing.T) {
	ss := openSites(t, sessionpool.Options{})
	var wg sync.WaitGroup
	got := make([]*sessionpool.Pool, 16)
	for i := range got {
		wg.Go(func() { got[i], _ = ss.Pool(context.Background(), "a.test") })
	}
	wg.Wait()
	for _, p := range got {
		if p == nil || p != got[0] {
			t.Fatalf("pools: %v", got)
		}
	}
	if err := ss.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Pool(context.Background(), "b.test"); !errors.Is(err, sessionpool.ErrPoolClosed) {
		t.Fatalf("Pool after Teardown: %v", err)
	}
}

// TestSitesSharedSlotsAndTurns: processes on one Redis share each site's
// slots and each session's turns; other sites and sessions are apart.
// Without Redis everything is granted.
func TestSitesSharedSlotsAndTurns(t *testing.T) {
	ctx := context.Background()
	opts := redisBackend().Options(t, sessionpool.Options{})
	a, b := openSites(t, opts), openSites(t, opts)
	if !a.Shared() {
		t.Fatal("a Redis Sites is not Shared")
	}
	var releases []func()
	for i, ss := range []*sessionpool.Sites{a, b} {
		rel, ok, err := ss.TrySlot(ctx, "x.test", 2, time.Minute)
		if err != nil || !ok {
			t.Fatalf("slot %d: %v %v", i, ok, err)
		}
		releases = append(releases, rel)
	}
	if _, ok, err := a.TrySlot(ctx, "x.test", 2, time.Minute); ok || err != nil {
		t.Fatalf("a third slot of two: %v %v", ok, err)
	}
	if rel, ok, err := a.TrySlot(ctx, "y.test", 2, time.Minute); !ok || err != nil {
		t.Fatalf("another site's slot: %v %v", ok, err)
	} else {
		rel()
	}
	releases[1]()
	releases[1]() // idempotent: frees one slot, not two
	rel, ok, err := b.TrySlot(ctx, "x.test", 2, time.Minute)
	if !ok || err != nil {
		t.Fatalf("a slot after a release: %v %v", ok, err)
	}
	rel()
	if _, ok, _ := b.TrySlot(ctx, "x.test", 2, time.Minute); !ok {
		t.Fatal("the second slot after its release")
	}
	if _, ok, _ := b.TrySlot(ctx, "x.test", 2, time.Minute); ok {
		t.Fatal("a double release freed two slots")
	}
	// A lease ends with its life: a process that died gives its slots back.
	if _, ok, _ := a.TrySlot(ctx, "z.test", 1, 50*time.Millisecond); !ok {
		t.Fatal("slot of z.test")
	}
	time.Sleep(60 * time.Millisecond) // the lease's life, which nothing signals
	if _, ok, _ := b.TrySlot(ctx, "z.test", 1, time.Minute); !ok {
		t.Fatal("the slot of an expired lease did not come back")
	}

	if w, err := a.TryTurn(ctx, "x.test", "alice", time.Second); w != 0 || err != nil {
		t.Fatalf("first turn: %v %v", w, err)
	}
	if w, err := b.TryTurn(ctx, "x.test", "alice", time.Second); w <= 0 || w > time.Second || err != nil {
		t.Fatalf("alice's next turn on another process: wait %v (%v), want (0, 1s]", w, err)
	}
	for _, other := range [][2]string{{"x.test", "bob"}, {"y.test", "alice"}} {
		if w, _ := b.TryTurn(ctx, other[0], other[1], time.Second); w != 0 {
			t.Errorf("%s on %s waits %v for alice on x.test", other[1], other[0], w)
		}
	}

	local := openSites(t, sessionpool.Options{})
	if local.Shared() {
		t.Error("a Sites in memory is Shared")
	}
	for range 3 {
		if _, ok, err := local.TrySlot(ctx, "x.test", 1, time.Minute); !ok || err != nil {
			t.Fatalf("without Redis: %v %v", ok, err)
		}
		if w, _ := local.TryTurn(ctx, "x.test", "alice", time.Second); w != 0 {
			t.Fatalf("without Redis a turn waits %v", w)
		}
	}
}

// TestSitesSharedHold: a session held by one process is held for all on
// the same Redis, until released; another session or site is apart.
func TestSitesSharedHold(t *testing.T) {
	ctx := context.Background()
	opts := redisBackend().Options(t, sessionpool.Options{})
	a, b := openSites(t, opts), openSites(t, opts)
	rel, ok, err := a.TryHold(ctx, "x.test", "alice", time.Minute)
	if !ok || err != nil {
		t.Fatalf("hold: %v %v", ok, err)
	}
	if _, ok, _ := b.TryHold(ctx, "x.test", "alice", time.Minute); ok {
		t.Fatal("alice held twice")
	}
	for _, other := range [][2]string{{"x.test", "bob"}, {"y.test", "alice"}} {
		if r, ok, _ := b.TryHold(ctx, other[0], other[1], time.Minute); !ok {
			t.Errorf("%s on %s is held with alice on x.test", other[1], other[0])
		} else {
			r()
		}
	}
	rel()
	if _, ok, _ := b.TryHold(ctx, "x.test", "alice", time.Minute); !ok {
		t.Fatal("alice not free after her release")
	}
}

// TestSitesRedisEvents: a retirement in one process reaches the other's
// subscribers through the Sites' one subscription, naming the site; each
// site's events go to that site's pool.
func TestSitesRedisEvents(t *testing.T) {
	ctx := context.Background()
	opts := redisBackend().Options(t, sessionpool.Options{})
	a, b := openSites(t, opts), openSites(t, opts)
	got := make(chan sessionpool.SessionState, 4)
	b.OnSessionRetired(func(st sessionpool.SessionState) { got <- st })
	for _, site := range []string{"x.test", "y.test"} {
		sitePool(t, b, site) // b's pools of both sites are open
		s, err := sitePool(t, a, site).AddSession(ctx, sessionpool.SessionOptions{ID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		s.Retire()
		select {
		case st := <-got:
			if st.ID != "alice" || st.Site != site {
				t.Errorf("event %s on %q, want alice on %s", st.ID, st.Site, site)
			}
		case <-time.After(eventTimeout):
			t.Fatalf("no event in the other process for %s", site)
		}
	}
}

// TestSitesDropIdle: a site with no usable session that did not change
// between two sweeps is dropped (its document too, and from the index);
// one with a usable session, one that changed, and the site "" stay.
func TestSitesDropIdle(t *testing.T) {
	ctx := context.Background()
	store := sessionpool.NewMemoryStore()
	ss := openSites(t, sessionpool.Options{Store: store})
	for _, site := range []string{"", "busy.test", "idle.test"} {
		s, err := sitePool(t, ss, site).AddSession(ctx, sessionpool.SessionOptions{ID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if site != "busy.test" {
			s.Retire()
		}
	}
	if err := ss.PersistState(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := ss.DropIdle(ctx); n != 0 || err != nil {
		t.Fatalf("first sweep dropped %d (%v): a site must be seen idle twice", n, err)
	}
	if n, err := ss.DropIdle(ctx); n != 1 || err != nil {
		t.Fatalf("second sweep dropped %d (%v), want idle.test", n, err)
	}
	if ss.Lookup("idle.test") != nil || ss.Lookup("busy.test") == nil || ss.Lookup("") == nil {
		t.Errorf("after the sweep: idle.test %v, busy.test %v, \"\" %v", ss.Lookup("idle.test"), ss.Lookup("busy.test"), ss.Lookup(""))
	}
	if _, err := store.Get(ctx, "SDK_SESSION_POOL_STATE@idle.test"); !errors.Is(err, sessionpool.ErrNotFound) {
		t.Errorf("the dropped site's document: %v, want it deleted", err)
	}
	if err := ss.PersistState(ctx); err != nil {
		t.Fatal(err)
	}
	if idx, _ := store.Get(ctx, "SDK_SESSION_POOL_STATE.sites"); strings.Contains(string(idx), "idle.test") || !strings.Contains(string(idx), "busy.test") {
		t.Errorf("index after the drop: %s", idx)
	}
	// A dropped site opens afresh on its next use.
	if _, err := sitePool(t, ss, "idle.test").AddSession(ctx, sessionpool.SessionOptions{ID: "alice"}); err != nil {
		t.Fatalf("alice on idle.test after the drop: %v", err)
	}
}

// TestSitesDropIdleAfterPoolTeardown: a site's pool torn down by the
// caller (Pool.Teardown) is dropped by DropIdle like any idle one, without
// closing again what Teardown closed (a panic in the caller's sweeper),
// and the site's next Pool is a fresh, open one.
func TestSitesDropIdleAfterPoolTeardown(t *testing.T) {
	ctx := context.Background()
	ss := openSites(t, sessionpool.Options{})
	if err := sitePool(t, ss, "a.test").Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	var dropped int
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("DropIdle of a site whose pool was torn down panicked: %v", r)
			}
		}()
		for range 2 { // the first sweep sees the site, the second drops it
			n, err := ss.DropIdle(ctx)
			if err != nil {
				t.Fatalf("DropIdle: %v", err)
			}
			dropped += n
		}
	}()
	if dropped != 1 {
		t.Fatalf("dropped %d sites, want a.test", dropped)
	}
	if _, err := sitePool(t, ss, "a.test").GetSession(ctx); err != nil {
		t.Fatalf("GetSession on the site's next pool: %v", err)
	}
}

// stuckStore is a MemoryStore whose Get of one key waits until release is
// closed, ignoring its context (a store stuck in I/O).
type stuckStore struct {
	*sessionpool.MemoryStore
	key     string
	release chan struct{}
}

func (s stuckStore) Get(ctx context.Context, key string) ([]byte, error) {
	if key == s.key {
		<-s.release
	}
	return s.MemoryStore.Get(ctx, key)
}

// TestSitesTeardownHonoursContext: Sites.Teardown returns when its context
// ends (with the context's error), as Pool.Teardown does, even while a
// site is being opened from a store stuck in I/O; a later call, once the
// open is done, tears that site down too.
func TestSitesTeardownHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := stuckStore{sessionpool.NewMemoryStore(), "K@slow.test", make(chan struct{})}
		ss, err := sessionpool.OpenSites(ctx, sessionpool.Options{Store: store, PersistStateKey: "K"})
		if err != nil {
			t.Fatal(err)
		}
		opened := make(chan *sessionpool.Pool, 1)
		go func() {
			p, _ := ss.Pool(ctx, "slow.test")
			opened <- p
		}()
		synctest.Wait() // the open waits for the store
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := ss.Teardown(tctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Teardown: %v, want the context's error", err)
		}
		close(store.release)
		p := <-opened
		if p == nil {
			t.Fatal("the open of slow.test failed")
		}
		if err := ss.Teardown(ctx); err != nil {
			t.Fatalf("Teardown again: %v", err)
		}
		if _, err := p.GetSession(ctx); !errors.Is(err, sessionpool.ErrPoolClosed) {
			t.Errorf("the site opened during the first Teardown: GetSession %v, want it torn down", err)
		}
	})
}

// waitStore is a MemoryStore whose Get of one key waits until release is
// closed or its context ends (a slow store that honours its context).
type waitStore struct {
	*sessionpool.MemoryStore
	key     string
	release chan struct{}
}

func (s waitStore) Get(ctx context.Context, key string) ([]byte, error) {
	if key == s.key {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.MemoryStore.Get(ctx, key)
}

// TestSitesOpenSurvivesAnotherCallersCancel: the first request to a site
// opens its pool with its own context, and a second request for the same
// site waits for that open. When the first request's client goes away, the
// open fails with its "context canceled"; the second request, whose
// context is alive, opens the site again and gets its pool instead of
// failing with the first one's error.
func TestSitesOpenSurvivesAnotherCallersCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := waitStore{sessionpool.NewMemoryStore(), "K@a.test", make(chan struct{})}
		ss, err := sessionpool.OpenSites(context.Background(), sessionpool.Options{Store: store, PersistStateKey: "K"})
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Teardown(context.Background())
		ctxA, cancelA := context.WithCancel(context.Background())
		errA, errB := make(chan error, 1), make(chan error, 1)
		go func() {
			_, err := ss.Pool(ctxA, "a.test")
			errA <- err
		}()
		synctest.Wait() // A opens the site
		go func() {
			_, err := ss.Pool(context.Background(), "a.test")
			errB <- err
		}()
		synctest.Wait() // B waits for A's open
		cancelA()
		if err := <-errA; !errors.Is(err, context.Canceled) {
			t.Errorf("A: %v, want its context's error", err)
		}
		synctest.Wait()
		select {
		case err := <-errB:
			t.Fatalf("B, whose context is alive, returned with A's open: %v", err)
		default: // B opens the site again, and waits for the store
		}
		close(store.release)
		if err := <-errB; err != nil {
			t.Fatalf("B: %v", err)
		}
		if ss.Lookup("a.test") == nil {
			t.Fatal("a.test is not open")
		}
	})
}
