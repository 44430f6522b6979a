package proxy

import (
	"context"
	"slices"
	"sync"
)

// busySessions keeps which sessions serve a request now, for pool.exclusive:
// a session serves one request at a time. Requests for a busy session wait
// in arrival order; a release hands the session to the first of them, or
// tells the requests waiting for any session of its site. The zero value is
// ready to use; safe for concurrent use.
type busySessions struct {
	mu    sync.Mutex
	held  map[sessionRef][]chan struct{} // a session -> the waiters for it, in order; present while held
	freed map[string]chan struct{}       // site -> closed (and dropped) when one of its sessions is freed

	queued func(key sessionRef) // tests: called when a request starts waiting for key; nil otherwise
}

// tryAcquire takes the session key names when it is free.
func (b *busySessions) tryAcquire(key sessionRef) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, held := b.held[key]; held {
		return false
	}
	if b.held == nil {
		b.held = map[sessionRef][]chan struct{}{}
	}
	b.held[key] = nil
	return true
}

// acquire takes the session key names, waiting behind the requests that
// asked for it earlier until ctx is done.
func (b *busySessions) acquire(ctx context.Context, key sessionRef) error {
	b.mu.Lock()
	if _, held := b.held[key]; !held {
		if b.held == nil {
			b.held = map[sessionRef][]chan struct{}{}
		}
		b.held[key] = nil
		b.mu.Unlock()
		return nil
	}
	turn := make(chan struct{})
	b.held[key] = append(b.held[key], turn)
	queued := b.queued
	b.mu.Unlock()
	if queued != nil {
		queued(key)
	}
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-turn: // handed over meanwhile: pass it on
		b.releaseLocked(key)
	default:
		if q, held := b.held[key]; held {
			b.held[key] = slices.DeleteFunc(q, func(c chan struct{}) bool { return c == turn })
		}
	}
	return ctx.Err()
}

// release frees the session key names: the first request waiting for it
// gets it, else the requests waiting for any session of its site are told.
func (b *busySessions) release(key sessionRef) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(key)
}

func (b *busySessions) releaseLocked(key sessionRef) {
	if q := b.held[key]; len(q) > 0 {
		close(q[0])
		b.held[key] = q[1:]
		return
	}
	delete(b.held, key)
	if ch, ok := b.freed[key.site]; ok {
		close(ch)
		delete(b.freed, key.site)
	}
}

// freedAt returns a channel closed when a session of site is next freed.
func (b *busySessions) freedAt(site string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch, ok := b.freed[site]
	if !ok {
		if b.freed == nil {
			b.freed = map[string]chan struct{}{}
		}
		ch = make(chan struct{})
		b.freed[site] = ch
	}
	return ch
}
