package sessionpool

import "context"

// backend keeps a pool's sessions and makes its allocation decisions. There
// are two: memBackend keeps them in this process (memory.go, on the table of
// table.go), redisBackend on a Redis server shared with other processes
// (redis*.go). The Pool does what both share (validating options, building
// sessions with CreateSessionFunc, the closed flag, retirement events,
// persistence to a Store) and leaves the rest to its backend; a Session
// sends its changes through its pool's backend.
//
// Errors are returned without the name of the Pool method that called: the
// Pool adds it. Every method is safe for concurrent use.
type backend interface {
	// getSession is GetSession once ctx is checked: a usable session,
	// created (through Pool.build) when the allocation flow says so.
	// ErrPoolClosed once the pool is closed.
	getSession(ctx context.Context) (*Session, error)
	// addSession is AddSession once ctx and o (merged with the pool's
	// defaults and valid) are checked.
	addSession(ctx context.Context, o SessionOptions) (*Session, error)
	// getByID returns the held session id, usable or not; nil when none
	// is held. ErrPoolClosed once the pool is closed.
	getByID(ctx context.Context, id string) (*Session, error)
	// uniqueID returns a random session ID that no held session has.
	uniqueID() string
	// counts returns the numbers of held sessions that are usable and that
	// are not.
	counts() (usable, unusable int)
	// idleLocked reports, with Pool.mu held and without I/O, whether
	// closing the pool now loses nothing a caller uses: no usable session
	// held and no creation in flight.
	idleLocked(now int64) bool
	// sessions returns the held sessions, in no particular order.
	sessions() []*Session
	// prepare readies a session just built for this pool (NewSession),
	// before it is shared.
	prepare(s *Session)
	// commit stores the cookie changes of s and applies the mark m (NoMark:
	// none) where s is kept: Session.Commit.
	commit(ctx context.Context, s *Session, m Mark) error
	// commitDetached is commit for the Session methods that take no context
	// and return no error (MarkGood, SetCookies...): bounded by the
	// backend, its error reported by the backend.
	commitDetached(s *Session, m Mark)
	// setUserData stores the new user data of s (a JSON object, or nil)
	// where s is kept, before the session's copy is changed.
	setUserData(s *Session, data []byte) error
	// pause stores the end of the pause of s (an extension: a later end
	// stored meanwhile stands) where s is kept, leaving its user data there
	// as they are.
	pause(s *Session) error
	// retired is told, outside the session's lock, that a mark on this
	// process's copy of s set its retired flag.
	retired(s *Session)
	// close releases what the backend holds, once the pool is closed.
	close() error
}

// openBackend opens the backend opts ask for: Redis when opts.Redis is set,
// else the table in memory, loaded from the pool's Store when it has one.
func openBackend(ctx context.Context, p *Pool, opts *Options) (backend, error) {
	if opts.Redis != nil {
		return openRedis(ctx, p, opts.Redis)
	}
	return openMemory(ctx, p)
}
