package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// errBusy answers a request that waited longer than pacing.max_wait for a
// session that is not busy (pool.exclusive).
var errBusy = errors.New("proxy: every session is busy")

// busySessions keeps which sessions serve a request now, for pool.exclusive:
// a session serves one request at a time. Requests for a busy session wait
// in arrival order; a release hands the session to the first of them, or
// tells the requests waiting for any session of its site. The zero value is
// ready to use; safe for concurrent use.
type busySessions struct {
	mu    sync.Mutex
	held  map[string][]chan struct{} // transportKey -> the waiters for it, in order; present while held
	freed map[string]chan struct{}   // site -> closed (and dropped) when one of its sessions is freed

	queued func(key string) // tests: called when a request starts waiting for key; nil otherwise
}

// tryAcquire takes the session key names when it is free.
func (b *busySessions) tryAcquire(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, held := b.held[key]; held {
		return false
	}
	if b.held == nil {
		b.held = map[string][]chan struct{}{}
	}
	b.held[key] = nil
	return true
}

// acquire takes the session key names, waiting behind the requests that
// asked for it earlier until ctx is done.
func (b *busySessions) acquire(ctx context.Context, key string) error {
	b.mu.Lock()
	if _, held := b.held[key]; !held {
		if b.held == nil {
			b.held = map[string][]chan struct{}{}
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
		b.releaseLocked(key, "")
	default:
		if q, held := b.held[key]; held {
			b.held[key] = slices.DeleteFunc(q, func(c chan struct{}) bool { return c == turn })
		}
	}
	return ctx.Err()
}

// release frees the session key names (of site): the first request waiting
// for it gets it, else the requests waiting for any session of site are
// told.
func (b *busySessions) release(key, site string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(key, site)
}

func (b *busySessions) releaseLocked(key, site string) {
	if q := b.held[key]; len(q) > 0 {
		close(q[0])
		b.held[key] = q[1:]
		return
	}
	delete(b.held, key)
	if ch, ok := b.freed[site]; ok {
		close(ch)
		delete(b.freed, site)
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

// exclusivePicks is how many picks of busy sessions an unpinned request
// makes before it creates a session or waits for one.
const exclusivePicks = 8

// freeSession returns a session of pool that is not busy, taken for the
// request (pool.exclusive): a pick of the pool that is free, else a new
// session while the pool holds fewer than max, else the first session
// freed, waiting up to maxWait.
func (s *Server) freeSession(ctx context.Context, pool *sessionpool.Pool, tried []string, max int, maxWait time.Duration) (selection, error) {
	deadline := time.NewTimer(maxWait)
	defer deadline.Stop()
	for {
		freed := s.busy.freedAt(pool.Site()) // before the picks: a release after them is seen
		for range exclusivePicks {
			sess, err := fromPool(ctx, pool, tried)
			if err != nil {
				return selection{}, err
			}
			if free, ok := s.hold(ctx, sess); ok {
				return selection{sess: sess, free: free}, nil
			}
		}
		if len(pool.Sessions()) < max {
			sess, err := pool.AddSession(ctx, sessionpool.SessionOptions{})
			if err != nil {
				return selection{}, err
			}
			if free, ok := s.hold(ctx, sess); ok {
				return selection{sess: sess, free: free}, nil
			}
		}
		var poll <-chan time.Time // sessions freed on other instances announce nothing
		if s.sites.Shared() {
			t := time.NewTimer(sharedPoll)
			defer t.Stop()
			poll = t.C
		}
		select {
		case <-freed:
		case <-poll:
		case <-ctx.Done():
			return selection{}, ctx.Err()
		case <-deadline.C:
			return selection{}, fmt.Errorf("%w: waited pacing.max_wait %v for one on %q", errBusy, maxWait, pool.Site())
		}
	}
}

// sharedPoll is how often a request waiting for a session that another
// instance on the Redis pool holds looks again.
const sharedPoll = 50 * time.Millisecond

// hold takes sess for the request when no other request holds it: in this
// instance, and on a Redis pool in any (sessionpool.Sites.TryHold). It
// returns the release.
func (s *Server) hold(ctx context.Context, sess *sessionpool.Session) (func(), bool) {
	key, site := sessionKey(sess), sess.Site()
	if !s.busy.tryAcquire(key) {
		return nil, false
	}
	local := func() { s.busy.release(key, site) }
	shared, ok, err := s.holdShared(ctx, sess)
	if err != nil || !ok {
		local()
		return nil, false
	}
	return func() { shared(); local() }, true
}

// holdShared takes sess on the Redis pool's server (sessionpool.Sites.TryHold),
// logging the store's errors; without Redis it always grants.
func (s *Server) holdShared(ctx context.Context, sess *sessionpool.Session) (func(), bool, error) {
	shared, ok, err := s.sites.TryHold(ctx, sess.Site(), sess.ID(), slotLife)
	if err != nil {
		s.storeFailed(err)
	}
	return shared, ok, err
}
