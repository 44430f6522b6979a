package sessionpool

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Sites.DropIdle against the uses of a pool it is dropping; the tests look
// at Sites' lock, so they live in the package.

// TestDropIdleKeepsPoolInUse: DropIdle decides a site is idle (no usable
// session, no change since the last sweep), then drops it; the decision is
// made again under the pool's lock as the pool is closed, so a session
// taken from the pool in between (the proxy picks on a pool without Sites'
// lock) keeps the site, its cookies and its marks.
func TestDropIdleKeepsPoolInUse(t *testing.T) {
	t.Run("GetSession between the decision and the drop", func(t *testing.T) {
		ctx := context.Background()
		store := NewMemoryStore()
		ss, err := OpenSites(ctx, Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Teardown(ctx)
		p, err := ss.Pool(ctx, "shop.test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ss.DropIdle(ctx); err != nil { // the first sweep sees the site
			t.Fatal(err)
		}
		// Sites' lock held, the second sweep stops between its decision
		// and the drop: the moment a request arriving then finds.
		ss.mu.Lock()
		type result struct {
			n   int
			err error
		}
		swept := make(chan result, 1)
		go func() {
			n, err := ss.DropIdle(ctx)
			swept <- result{n, err}
		}()
		deadline := time.Now().Add(10 * time.Second)
		for !blockedOnLock("(*Sites).DropIdle.func1") {
			if time.Now().After(deadline) {
				ss.mu.Unlock()
				t.Fatal("DropIdle never reached the drop")
			}
			runtime.Gosched()
		}
		s, err := p.GetSession(ctx)
		if err != nil {
			ss.mu.Unlock()
			t.Fatal(err)
		}
		u, _ := url.Parse("https://shop.test/")
		s.SetCookiesFromResponse(&http.Response{Header: http.Header{"Set-Cookie": {"cart=42"}}, Request: &http.Request{URL: u}})
		s.MarkGood()
		ss.mu.Unlock()
		var r result
		select {
		case r = <-swept:
		case <-time.After(10 * time.Second):
			t.Fatal("DropIdle did not return")
		}
		if r.n != 0 || r.err != nil {
			t.Fatalf("DropIdle dropped %d site(s) (%v), want none: the site's pool was in use", r.n, r.err)
		}
		p2, err := ss.Pool(ctx, "shop.test")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := p2.GetSessionByID(ctx, s.ID()); err != nil || got.CookieString(u) != "cart=42" {
			t.Fatalf("the session %s, made and marked good with a cookie during the sweep, is lost: %v", s.ID(), err)
		}
	})
	t.Run("a creation in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			release := make(chan struct{})
			ss, err := OpenSites(ctx, Options{CreateSessionFunc: func(ctx context.Context, p *Pool, o SessionOptions) (*Session, error) {
				<-release // CreateSessionFunc logging in
				return p.NewSession(o)
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer ss.Teardown(ctx)
			p, err := ss.Pool(ctx, "shop.test")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ss.DropIdle(ctx); err != nil { // the first sweep sees the site
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() {
				_, err := p.GetSession(ctx)
				got <- err
			}()
			synctest.Wait() // the session is being created
			if n, err := ss.DropIdle(ctx); n != 0 || err != nil {
				t.Errorf("DropIdle dropped %d site(s) (%v) while a session was being created", n, err)
			}
			close(release)
			if err := <-got; err != nil {
				t.Fatalf("GetSession: %v", err)
			}
			if ss.Lookup("shop.test") != p {
				t.Fatal("the site's pool is not the one that made the session")
			}
		})
	})
}

// gatedStore is a MemoryStore whose Set or Delete of one key waits, while
// gate is not nil, until gate is closed (a slow store).
type gatedStore struct {
	*MemoryStore
	key        string
	setGate    chan struct{}
	deleteGate chan struct{}
}

func (g *gatedStore) Set(ctx context.Context, key string, data []byte) error {
	if key == g.key && g.setGate != nil {
		<-g.setGate
	}
	return g.MemoryStore.Set(ctx, key, data)
}

func (g *gatedStore) Delete(ctx context.Context, key string) error {
	if key == g.key && g.deleteGate != nil {
		<-g.deleteGate
	}
	return g.MemoryStore.Delete(ctx, key)
}

// TestDropIdleDeletesDocumentLast: the document of a site DropIdle drops
// is deleted after a persist of its pool already in flight (which would
// otherwise write it again, for good: the site is no longer persisted nor
// listed), and before the site's next pool loads and persists its own
// (which the deletion would otherwise take).
func TestDropIdleDeletesDocumentLast(t *testing.T) {
	const key = DefaultPersistStateKey + "@shop.test"
	// openIdle opens a Sites on store with the site shop.test persisted
	// and seen once by DropIdle.
	openIdle := func(t *testing.T, store Store) *Sites {
		ctx := context.Background()
		ss, err := OpenSites(ctx, Options{Store: store, PersistInterval: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Teardown(ctx) })
		if _, err := ss.Pool(ctx, "shop.test"); err != nil {
			t.Fatal(err)
		}
		if err := ss.PersistState(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := ss.DropIdle(ctx); n != 0 || err != nil {
			t.Fatalf("first sweep: %d, %v", n, err)
		}
		return ss
	}
	t.Run("a persist in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			store := &gatedStore{MemoryStore: NewMemoryStore(), key: key}
			ss := openIdle(t, store)
			store.setGate = make(chan struct{})
			persisted := make(chan error, 1)
			go func() { persisted <- ss.PersistState(ctx) }()
			synctest.Wait() // the site's document is being written
			type result struct {
				n   int
				err error
			}
			swept := make(chan result, 1)
			go func() {
				n, err := ss.DropIdle(ctx)
				swept <- result{n, err}
			}()
			synctest.Wait()
			close(store.setGate)
			if err := <-persisted; err != nil {
				t.Fatal(err)
			}
			if r := <-swept; r.n != 1 || r.err != nil {
				t.Fatalf("DropIdle: %d, %v; want shop.test dropped", r.n, r.err)
			}
			if _, err := store.Get(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the dropped site's document after the persist in flight ended: %v, want it deleted", err)
			}
		})
	})
	t.Run("the site's next pool", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			store := &gatedStore{MemoryStore: NewMemoryStore(), key: key}
			ss := openIdle(t, store)
			store.deleteGate = make(chan struct{})
			swept := make(chan error, 1)
			go func() {
				_, err := ss.DropIdle(ctx)
				swept <- err
			}()
			synctest.Wait() // the document is being deleted
			used := make(chan error, 1)
			go func() { // the site's next request, and a persist
				p, err := ss.Pool(ctx, "shop.test")
				if err == nil {
					_, err = p.AddSession(ctx, SessionOptions{ID: "alice"})
				}
				if err == nil {
					err = ss.PersistState(ctx)
				}
				used <- err
			}()
			synctest.Wait()
			close(store.deleteGate)
			if err := <-swept; err != nil {
				t.Fatal(err)
			}
			if err := <-used; err != nil {
				t.Fatal(err)
			}
			if data, err := store.Get(ctx, key); err != nil || !strings.Contains(string(data), `"alice"`) {
				t.Fatalf("the site's next pool's document: %v %.80q, want alice in it", err, data)
			}
		})
	})
}

// goroutineStacks returns the stacks of every goroutine.
func goroutineStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// blockedOnLock reports whether the goroutine running fn waits for a mutex.
func blockedOnLock(fn string) bool {
	for _, g := range strings.Split(goroutineStacks(), "\n\n") {
		if strings.Contains(g, fn) && strings.Contains(g, "[sync.Mutex.Lock") {
			return true
		}
	}
	return false
}
