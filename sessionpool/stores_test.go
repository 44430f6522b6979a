package sessionpool

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

var errSwitch = errors.New("switched off")

// switchStore is a plain Store (only the interface's methods, so the pool
// uses Set) over a MemoryStore, whose writes fail once fail is set.
type switchStore struct {
	mem  *MemoryStore
	fail atomic.Bool
}

func (s *switchStore) Get(ctx context.Context, key string) ([]byte, error) {
	return s.mem.Get(ctx, key)
}
func (s *switchStore) Delete(ctx context.Context, key string) error { return s.mem.Delete(ctx, key) }
func (s *switchStore) Set(ctx context.Context, key string, value []byte) error {
	if s.fail.Load() {
		return errSwitch
	}
	return s.mem.Set(ctx, key, value)
}

// notifyStore is a plain Store over a MemoryStore that signals every Set.
type notifyStore struct {
	mem  *MemoryStore
	sets chan struct{}
}

func (s *notifyStore) Get(ctx context.Context, key string) ([]byte, error) {
	return s.mem.Get(ctx, key)
}
func (s *notifyStore) Delete(ctx context.Context, key string) error { return s.mem.Delete(ctx, key) }
func (s *notifyStore) Set(ctx context.Context, key string, value []byte) error {
	err := s.mem.Set(ctx, key, value)
	select {
	case s.sets <- struct{}{}:
	default:
	}
	return err
}

// TestOnPersist: every persist that writes, explicit, periodic or final,
// reports to Options.OnPersist with its error.
func TestOnPersist(t *testing.T) {
	store := &switchStore{mem: NewMemoryStore()}
	type report struct{ err error }
	reports := make(chan report, 16)
	p, err := Open(context.Background(), Options{
		Store:           store,
		PersistInterval: time.Hour, // only the explicit calls below
		OnPersist: func(took time.Duration, err error) {
			if took < 0 {
				t.Errorf("negative duration %v", took)
			}
			reports <- report{err}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PersistState(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := <-reports; r.err != nil {
		t.Errorf("a good persist reported %v", r.err)
	}
	store.fail.Store(true)
	if err := p.PersistState(context.Background()); !errors.Is(err, errSwitch) {
		t.Fatalf("PersistState: %v, want errSwitch", err)
	}
	if r := <-reports; !errors.Is(r.err, errSwitch) {
		t.Errorf("a failed persist reported %v, want errSwitch", r.err)
	}
	store.fail.Store(false)
	if err := p.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := <-reports; r.err != nil {
		t.Errorf("Teardown's persist reported %v", r.err)
	}
}

// reversed returns b's bytes in reverse order (a stand-in for encryption).
func reversed(b []byte) []byte {
	r := make([]byte, len(b))
	for i, c := range b {
		r[len(b)-1-i] = c
	}
	return r
}

// reversingFileStore and reversingMemoryStore wrap the package's stores by
// embedding, as a caller would to encrypt what is stored: their Set and
// Get must be the ones the pool calls.
type reversingFileStore struct {
	*FileStore
	sets atomic.Int32
}

func (s *reversingFileStore) Set(ctx context.Context, key string, value []byte) error {
	s.sets.Add(1)
	return s.FileStore.Set(ctx, key, reversed(value))
}
func (s *reversingFileStore) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.FileStore.Get(ctx, key)
	return reversed(v), err
}

type reversingMemoryStore struct {
	*MemoryStore
	sets atomic.Int32
}

func (s *reversingMemoryStore) Set(ctx context.Context, key string, value []byte) error {
	s.sets.Add(1)
	return s.MemoryStore.Set(ctx, key, reversed(value))
}
func (s *reversingMemoryStore) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.MemoryStore.Get(ctx, key)
	return reversed(v), err
}

// TestStoreEmbeddingOwnStore: a Store that embeds FileStore or MemoryStore
// and has its own Set gets every write through that Set, and the pool
// reopens from what it stored.
func TestStoreEmbeddingOwnStore(t *testing.T) {
	ctx := context.Background()
	fs, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		store Store
	}{
		{"FileStore", &reversingFileStore{FileStore: fs}},
		{"MemoryStore", &reversingMemoryStore{MemoryStore: NewMemoryStore()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Open(ctx, Options{Store: tc.store})
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.GetSession(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Teardown(ctx); err != nil {
				t.Fatal(err)
			}
			var sets int32
			switch st := tc.store.(type) {
			case *reversingFileStore:
				sets = st.sets.Load()
			case *reversingMemoryStore:
				sets = st.sets.Load()
			}
			if sets == 0 {
				t.Errorf("the pool persisted without calling the store's own Set")
			}
			p2, err := Open(ctx, Options{Store: tc.store})
			if err != nil {
				t.Fatalf("reopening from what the store's Set wrote: %v", err)
			}
			defer p2.Teardown(ctx)
			if _, err := p2.GetSessionByID(ctx, s.ID()); err != nil {
				t.Errorf("session %s was not restored: %v", s.ID(), err)
			}
		})
	}
}

// TestTeardownRetriesFailedPersist: when Teardown's final persist fails,
// the pool (and Sites) are closed, and a later Teardown persists again;
// once one has succeeded, Teardown does nothing more.
func TestTeardownRetriesFailedPersist(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		open func(Store) (teardown func(context.Context) error, id string, reopen func(Store) error)
	}{
		{"Pool", func(st Store) (func(context.Context) error, string, func(Store) error) {
			p, err := Open(ctx, Options{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.GetSession(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return p.Teardown, s.ID(), func(st Store) error {
				q, err := Open(ctx, Options{Store: st})
				if err != nil {
					return err
				}
				defer q.Teardown(ctx)
				_, err = q.GetSessionByID(ctx, s.ID())
				return err
			}
		}},
		{"Sites", func(st Store) (func(context.Context) error, string, func(Store) error) {
			ss, err := OpenSites(ctx, Options{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			p, err := ss.Pool(ctx, "example.com")
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.GetSession(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return ss.Teardown, s.ID(), func(st Store) error {
				again, err := OpenSites(ctx, Options{Store: st})
				if err != nil {
					return err
				}
				defer again.Teardown(ctx)
				q, err := again.Pool(ctx, "example.com")
				if err != nil {
					return err
				}
				_, err = q.GetSessionByID(ctx, s.ID())
				return err
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &switchStore{mem: NewMemoryStore()}
			teardown, id, reopen := tc.open(st)
			st.fail.Store(true)
			if err := teardown(ctx); !errors.Is(err, errSwitch) {
				t.Fatalf("Teardown with a failing store: %v, want errSwitch", err)
			}
			st.fail.Store(false)
			if err := teardown(ctx); err != nil {
				t.Fatalf("Teardown again: %v", err)
			}
			if err := reopen(st); err != nil {
				t.Fatalf("session %s after the second Teardown: %v", id, err)
			}
			st.fail.Store(true) // done: a third Teardown writes nothing
			if err := teardown(ctx); err != nil {
				t.Errorf("Teardown after one that succeeded: %v, want nil", err)
			}
		})
	}
}

// nested returns user data whose value nests depth levels deep in all
// (the outer object counting one).
func nested(depth int) map[string]any {
	var v any = "leaf"
	for range depth - 1 {
		v = []any{v}
	}
	return map[string]any{"k": v}
}

// TestNamesAreText: an ID or ProxyURL that is not valid UTF-8 is refused
// by AddSession, since the state document would bring it back changed (two
// such IDs as one, and the pool would not open again); a valid one, any
// script, persists and comes back whole.
func TestNamesAreText(t *testing.T) {
	ctx := context.Background()
	st := NewMemoryStore()
	p, err := Open(ctx, Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []SessionOptions{{ID: "a\xff"}, {ID: "a\xfe"}, {ProxyURL: "http://h\xff:1"}} {
		if _, err := p.AddSession(ctx, o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("AddSession(ID %q, ProxyURL %q): %v, want ErrInvalidOptions", o.ID, o.ProxyURL, err)
		}
	}
	if _, err := p.AddSession(ctx, SessionOptions{ID: "名前-é"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, Options{Store: st})
	if err != nil {
		t.Fatalf("reopening from the pool's own document: %v", err)
	}
	defer again.Teardown(ctx)
	if _, err := again.GetSessionByID(ctx, "名前-é"); err != nil {
		t.Errorf("the session did not come back: %v", err)
	}
}

// TestUserDataDepth: user data may nest MaxUserDataDepth levels, and such
// a pool persists and opens again; deeper user data is refused by
// AddSession and SetUserData, changing nothing, so that nothing is written
// that could not be loaded (encoding/json stops at 10,000 levels).
func TestUserDataDepth(t *testing.T) {
	ctx := context.Background()
	if d := jsonDepth([]byte(`{"a":"[{[\"\\\"{","b":[[{}]]}`)); d != 4 {
		t.Errorf("jsonDepth counted %d levels, want 4 (brackets in strings do not count)", d)
	}
	st := NewMemoryStore()
	p, err := Open(ctx, Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.AddSession(ctx, SessionOptions{ID: "deep", UserData: nested(MaxUserDataDepth)})
	if err != nil {
		t.Fatalf("user data %d levels deep: %v", MaxUserDataDepth, err)
	}
	if _, err := p.AddSession(ctx, SessionOptions{UserData: nested(MaxUserDataDepth + 1)}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("AddSession with user data %d levels deep: %v, want ErrInvalidOptions", MaxUserDataDepth+1, err)
	}
	if err := s.SetUserData(nested(20_000)); err == nil {
		t.Error("SetUserData took user data 20,000 levels deep")
	}
	if got := jsonDepth(mustJSON(t, s.UserData())); got != MaxUserDataDepth {
		t.Errorf("after a refused SetUserData the user data nests %d levels, want the %d it had", got, MaxUserDataDepth)
	}
	if err := p.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, Options{Store: st})
	if err != nil {
		t.Fatalf("reopening a pool whose user data nests %d levels: %v", MaxUserDataDepth, err)
	}
	defer again.Teardown(ctx)
	if _, err := again.GetSessionByID(ctx, "deep"); err != nil {
		t.Error(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
