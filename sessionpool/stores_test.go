package sessionpool

import (
	"context"
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
