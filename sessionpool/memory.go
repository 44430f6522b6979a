package sessionpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// memBackend keeps a pool's sessions in this process, in a table (see
// table.go). The table is guarded by Pool.mu, the lock that guards
// Pool.closed too, so that no session is added once Teardown has closed the
// pool (and taken its last snapshot). The sessions handed out are the ones
// held: a mark changes the held session itself.
type memBackend struct {
	p *Pool
	t table // guarded by p.mu
}

// openMemory makes the table and, when the pool has a Store, restores the
// usable sessions of its persisted document.
func openMemory(ctx context.Context, p *Pool) (*memBackend, error) {
	m := &memBackend{p: p}
	m.t.byID = make(map[string]*Session)
	for i := range m.t.ahead {
		m.t.ahead[i] = rand.Uint64()
	}
	if p.store != nil {
		if err := m.load(ctx); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// load restores the usable sessions of the persisted document, if any.
func (m *memBackend) load(ctx context.Context) error {
	p := m.p
	data, err := p.store.Get(ctx, p.key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load state %q: %w", p.key, err)
	}
	now := p.now()
	sessions, err := decodeState(data, p, now)
	if err != nil {
		return fmt.Errorf("load state %q: %w", p.key, err)
	}
	nowNs := now.UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range sessions {
		if s.usableLocked(nowNs) { // s is not shared yet
			m.t.add(s)
		}
	}
	return nil
}

// getSession runs the allocation flow of Pool.GetSession on the table. A
// creation reserves its slot (table.pending) before CreateSessionFunc runs,
// without the lock; a caller that finds every slot reserved and none held
// waits for a creation to end.
func (m *memBackend) getSession(ctx context.Context) (*Session, error) {
	p, t := m.p, &m.t
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		now := p.nowNanos()
		if p.strategy == UseUntilFailure && t.last != nil && t.last.usableAt(now) {
			s := t.last
			p.mu.Unlock()
			return s, nil
		}
		if len(t.all)+t.pending < p.maxSize {
			t.pending++
			p.mu.Unlock()
			return m.createReserved(ctx)
		}
		if len(t.all) == 0 {
			// Every slot is being filled by other callers: wait for one.
			if t.wait == nil {
				t.wait = make(chan struct{})
			}
			wait := t.wait
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if s := m.pickLocked(now); s != nil {
			p.mu.Unlock()
			return s, nil
		}
		t.pending++
		p.mu.Unlock()
		return m.createReserved(ctx)
	}
}

// pickLocked picks a held session of the full table with the pool's
// strategy and returns it when it is usable at now. An unusable pick evicts
// every unusable session and returns nil: the caller creates one.
func (m *memBackend) pickLocked(now int64) *Session {
	t := &m.t
	var s *Session
	if m.p.strategy == RoundRobin {
		if t.rr >= len(t.all) {
			t.rr = 0
		}
		s = t.all[t.rr]
		t.rr++
	} else {
		s = t.pickRandom()
	}
	if s.usableAt(now) {
		if m.p.strategy == UseUntilFailure {
			t.last = s
		}
		return s
	}
	m.p.changed() // evictions change what a persist writes
	t.evictUnusable(now)
	if s.idx >= 0 { // retired but its event not yet handled by the table
		t.remove(s)
	}
	if m.p.strategy == RoundRobin {
		// Resume the cycle at the evicted pick's slot, which now holds the
		// session swapped into it; the new one goes at the end.
		t.rr--
	}
	return nil
}

// createReserved builds a session for a slot reserved by getSession and
// adds it.
func (m *memBackend) createReserved(ctx context.Context) (*Session, error) {
	p := m.p
	s, err := p.build(ctx, p.defaults, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	m.t.pending--
	m.t.wakeWaiters()
	if err != nil {
		return nil, err
	}
	if p.closed {
		return nil, ErrPoolClosed
	}
	if err := m.insertLocked(s); err != nil {
		return nil, err
	}
	if p.strategy == UseUntilFailure {
		m.t.last = s
	}
	return s, nil
}

// insertLocked adds a newly built session, giving it a fresh ID when it has
// none. A usable session holding its ID makes it fail with ErrSessionExists;
// an unusable one is evicted.
func (m *memBackend) insertLocked(s *Session) error {
	t := &m.t
	if s.idx >= 0 {
		return fmt.Errorf("session %q: %w", s.id, ErrForeignSession)
	}
	if s.id == "" {
		s.id = t.uniqueID()
	} else if held := t.byID[s.id]; held != nil {
		if held.usableAt(m.p.nowNanos()) {
			return fmt.Errorf("session %q: %w", s.id, ErrSessionExists)
		}
		t.remove(held)
	}
	t.add(s)
	m.p.changed()
	return nil
}

// addSession is Pool.AddSession on the table: the session holding o.ID, if
// any, and (when the pool is full) the unusable sessions are evicted before
// the new session is built, without the lock.
func (m *memBackend) addSession(ctx context.Context, o SessionOptions) (*Session, error) {
	p := m.p
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	now := p.nowNanos()
	if held := m.t.byID[o.ID]; o.ID != "" && held != nil {
		if held.usableAt(now) {
			p.mu.Unlock()
			return nil, fmt.Errorf("session %q: %w", o.ID, ErrSessionExists)
		}
		m.t.remove(held)
	}
	if len(m.t.all) >= p.maxSize {
		m.t.evictUnusable(now)
	}
	p.changed()
	p.mu.Unlock()

	s, err := p.build(ctx, o, false)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPoolClosed
	}
	if err := m.insertLocked(s); err != nil {
		return nil, err
	}
	return s, nil
}

func (m *memBackend) getByID(_ context.Context, id string) (*Session, error) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	if m.p.closed {
		return nil, ErrPoolClosed
	}
	return m.t.byID[id], nil
}

func (m *memBackend) uniqueID() string {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	return m.t.uniqueID()
}

func (m *memBackend) counts() (usable, unusable int) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	unusable = m.t.unusable(m.p.nowNanos())
	return len(m.t.all) - unusable, unusable
}

// idleLocked: no usable session held, none being created.
func (m *memBackend) idleLocked(now int64) bool {
	return len(m.t.all) == m.t.unusable(now) && m.t.pending == 0
}

func (m *memBackend) sessions() []*Session {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	return slices.Clone(m.t.all)
}

// prepare does nothing: a session of this process needs nothing more.
func (m *memBackend) prepare(*Session) {}

// commit applies m to the session itself, whose cookies are already stored.
func (m *memBackend) commit(_ context.Context, s *Session, mark Mark) error {
	s.applyLocal(mark)
	m.p.changed()
	return nil
}

func (m *memBackend) commitDetached(s *Session, mark Mark) {
	s.applyLocal(mark)
	m.p.changed()
}

// setUserData has nothing to store (the session is the one held), but the
// next persist has.
func (m *memBackend) setUserData(*Session, []byte) error {
	m.p.changed()
	return nil
}

// pause has nothing to store either.
func (m *memBackend) pause(*Session) error {
	m.p.changed()
	return nil
}

// retired moves the session to the table's retired list (if it is held).
func (m *memBackend) retired(s *Session) {
	m.p.mu.Lock()
	m.t.markRetired(s)
	m.p.mu.Unlock()
}

// close wakes the callers waiting for a slot: they find the pool closed.
func (m *memBackend) close() error {
	m.p.mu.Lock()
	m.t.wakeWaiters()
	m.p.mu.Unlock()
	return nil
}
