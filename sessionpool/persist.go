package sessionpool

import (
	"context"
	"fmt"
	"time"
)

// PersistState writes the pool's state to the store under PersistStateKey
// (nothing to do without a Store, or with a Redis pool: every change is on
// the server as soon as it is made). The session list is copied under the
// pool's lock, each session is read under its own lock, and the encoding and
// the store write happen outside every pool and session lock, so GetSession
// is not held up. One persist runs at a time, in call order.
func (p *Pool) PersistState(ctx context.Context) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return fmt.Errorf("persist state: %w", ErrPoolClosed)
	}
	return p.persist(ctx, true)
}

// persist is PersistState without the closed check, for Teardown and the
// persist loop. It reports every attempt that writes to Options.OnPersist.
// Unless always, it writes nothing when nothing changed since the last
// successful write under the same key: the persist loop of an idle pool
// does no work.
func (p *Pool) persist(ctx context.Context, always bool) error {
	if p.store == nil {
		return nil
	}
	start := time.Now()
	wrote, err := p.persistOnce(ctx, always)
	if p.onPersist != nil && (wrote || err != nil) {
		p.onPersist(time.Since(start), err)
	}
	return err
}

// changed notes a change to the pool's sessions, for the next persist.
func (p *Pool) changed() { p.changes.Add(1) }

func (p *Pool) persistOnce(ctx context.Context, always bool) (wrote bool, err error) {
	select {
	case p.persistSem <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("persist state: %w", ctx.Err())
	}
	defer func() { <-p.persistSem }()

	p.mu.Lock()
	dropped := p.dropped
	p.mu.Unlock()
	if dropped {
		return false, nil // DropIdle deletes the document (deleteState)
	}
	// Read before the snapshot: a change made while it is taken makes the
	// next persist write again.
	changes := p.changes.Load()
	if !always && p.persisted && p.lastKey == p.key && p.lastChanges == changes {
		return false, nil
	}
	if err := p.write(ctx); err != nil {
		return true, err
	}
	p.persisted, p.lastKey, p.lastChanges = true, p.key, changes
	return true, nil
}

// write encodes a snapshot of the pool into the store.
func (p *Pool) write(ctx context.Context) error {
	now := p.now()
	snaps, usable := p.snapshot(now)
	retired := len(snaps) - usable
	var err error
	// The package's own stores are matched by their concrete types, not by
	// interfaces of unexported methods: a caller's type that embeds one
	// would have those methods too, and its own Set would be skipped.
	switch st := p.store.(type) {
	case *FileStore:
		// Written as it is encoded, through one reused buffer.
		err = st.setStream(ctx, p.key, func(write func([]byte) error) error {
			return encodeState(newChunk(), usable, retired, snaps, now, func(b []byte) ([]byte, error) {
				return b[:0], write(b)
			})
		})
	default:
		var chunks [][]byte
		encodeState(newChunk(), usable, retired, snaps, now, func(b []byte) ([]byte, error) {
			chunks = append(chunks, b)
			return newChunk(), nil
		})
		if ms, ok := st.(*MemoryStore); ok {
			err = ms.setChunks(ctx, p.key, chunks)
		} else {
			err = st.Set(ctx, p.key, concat(nil, chunks))
		}
	}
	if err != nil {
		return fmt.Errorf("persist state %q: %w", p.key, err)
	}
	return nil
}

// persistLoop persists every interval until Teardown closes p.stop and
// cancels ctx (which also ends a persist in flight). Its errors have no
// caller: Options.OnPersist is where they are seen.
func (p *Pool) persistLoop(ctx context.Context, interval time.Duration) {
	defer close(p.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
			p.persist(ctx, false) // the error reaches Options.OnPersist
		}
	}
}
