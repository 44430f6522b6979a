package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// errBusy answers a request that waited longer than pacing.max_wait for a
// session that is not busy (pool.exclusive).
var errBusy = errors.New("proxy: every session is busy")

// sharedPoll is how often a request waiting for a session that another
// instance on the Redis pool holds looks again.
const sharedPoll = 50 * time.Millisecond

// hold takes sess for the request when no other request holds it: in this
// instance, and on a Redis pool in any (sessionpool.Sites.TryHold). It
// returns the release.
func (s *Server) hold(ctx context.Context, sess *sessionpool.Session) (func(), bool) {
	key := refOf(sess)
	if !s.busy.tryAcquire(key) {
		return nil, false
	}
	local := func() { s.busy.release(key) }
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
