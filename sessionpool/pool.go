package sessionpool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Pool holds sessions and hands them out with the seed's allocation flow
// (see GetSession). It is safe for concurrent use. A Pool is made by Open
// and ends with Teardown; the zero Pool is not usable.
type Pool struct {
	clock        func() time.Time // Options.Now; nil: the monotonic clock below
	base         time.Time        // when the pool was opened, with its monotonic reading
	baseWall     int64            // base in unix nanoseconds
	maxSize      int
	strategy     Strategy
	blocked      []int
	defaults     SessionOptions // Options.SessionOptions with package defaults filled in
	defaultLim   *limits        // the limits of defaults, shared by the sessions that have them
	defaultsData []byte         // defaults.UserData as JSON
	create       func(ctx context.Context, p *Pool, opts SessionOptions) (*Session, error)
	store        Store
	key          string
	onPersist    func(time.Duration, error)
	be           backend // where the sessions are kept; set by Open
	site         string  // the site of a Sites pool; "" otherwise

	// mu guards closed, finished, dropped and, with the memory backend, its
	// table: one lock, so that no session is added once Teardown has closed
	// the pool.
	mu       sync.Mutex
	closed   bool
	finished bool // Teardown persisted and returned nil, or discard: nothing more to do
	dropped  bool // dropped as idle (dropIfIdle): no persist writes its document again

	subs subscribers // OnSessionRetired's

	// persistSem lets one persist run at a time, so an older snapshot never
	// overwrites a newer one. It is a channel, not a mutex, so that waiting
	// for it honours the context.
	persistSem chan struct{}
	// changes counts the changes to the pool's sessions (picks, marks,
	// cookies, user data, sessions added or retired); a persist with no
	// change since the last successful one under the same key is skipped.
	// persisted and the last* fields are guarded by persistSem.
	changes     atomic.Uint64
	persisted   bool
	lastChanges uint64
	lastKey     string

	stop       chan struct{}      // closed by Teardown: stops the persist loop
	stopCancel context.CancelFunc // cancels the persist loop's context
	done       chan struct{}      // closed by the persist loop when it returns; nil without one
}

// Open builds a pool. It validates opts, reporting every problem at once
// (each wrapping ErrInvalidOptions). With a Store it loads the state
// persisted under PersistStateKey (an absent key is an empty pool), keeps
// only the sessions still usable, each with its own saved limits, cookies,
// user data and upstream (CreateSessionFunc is not called for them), and
// starts persisting every PersistInterval until Teardown. A document that
// cannot be loaded makes Open fail with an error naming the key and the
// position of the problem; the store is not written. Restored sessions may
// outnumber MaxPoolSize; GetSession then creates no new ones until they are
// evicted. With Options.Redis the sessions are kept on the server instead
// (see RedisOptions): Open connects and loads nothing.
func Open(ctx context.Context, opts Options) (*Pool, error) {
	return open(ctx, opts, "", true)
}

// open is Open for a pool serving site; without loop it starts no persist
// loop (Sites persists its pools from one loop).
func open(ctx context.Context, opts Options, site string, loop bool) (*Pool, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	p := &Pool{
		clock:      opts.Now,
		maxSize:    opts.MaxPoolSize,
		strategy:   opts.Strategy,
		blocked:    slices.Clone(opts.BlockedStatusCodes),
		defaults:   opts.SessionOptions.merge(packageDefaults()),
		create:     opts.CreateSessionFunc,
		store:      opts.Store,
		key:        opts.PersistStateKey,
		onPersist:  opts.OnPersist,
		site:       site,
		persistSem: make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	p.base = time.Now()
	p.baseWall = p.base.UnixNano()
	if p.maxSize == 0 {
		p.maxSize = DefaultMaxPoolSize
	}
	if len(p.blocked) == 0 {
		p.blocked = DefaultBlockedStatusCodes()
	}
	if p.key == "" {
		p.key = DefaultPersistStateKey
	}
	var err error
	p.defaultLim = &limits{maxUsage: p.defaults.MaxUsageCount, maxErr: p.defaults.MaxErrorScore, errDecr: p.defaults.ErrorScoreDecrement}
	if p.defaultsData, err = encodeUserData(p.defaults.UserData); err != nil {
		return nil, fmt.Errorf("open pool: %w", err) // validate already marshalled it
	}
	if p.be, err = openBackend(ctx, p, &opts); err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if p.store == nil || !loop {
		return p, nil
	}
	interval := opts.PersistInterval
	if interval == 0 {
		interval = DefaultPersistInterval
	}
	p.done = make(chan struct{})
	loopCtx, cancel := context.WithCancel(context.Background())
	p.stopCancel = cancel
	go p.persistLoop(loopCtx, interval)
	return p, nil
}

// nowNanos returns the pool's time in unix nanoseconds. Without Options.Now
// it is the wall time at Open plus the monotonic time elapsed since: half the
// cost of time.Now (one clock read instead of two) on the hot path, and
// immune to wall-clock jumps.
func (p *Pool) nowNanos() int64 {
	if p.clock != nil {
		return p.clock().UnixNano()
	}
	return p.baseWall + int64(time.Since(p.base))
}

// now returns the pool's time (see nowNanos).
func (p *Pool) now() time.Time {
	if p.clock != nil {
		return p.clock()
	}
	return time.Unix(0, p.nowNanos())
}

// GetSession returns a usable session, with the seed's allocation flow:
//
//  1. Until the pool holds MaxPoolSize sessions (usable plus unusable), each
//     call creates a new session (CreateSessionFunc), adds it and returns it.
//  2. Unusable sessions stay in the pool but are never returned.
//  3. Once full, a held session is picked (Random: uniformly, O(1)).
//  4. If the pick is unusable, every unusable session is evicted and a new
//     session is created and returned.
//
// RoundRobin picks the held sessions in turn instead; UseUntilFailure returns
// the session returned last while it is usable. Getting a session counts no
// use. Concurrent callers never push the pool past MaxPoolSize: a creation
// reserves its slot before CreateSessionFunc runs (without any lock held).
func (p *Pool) GetSession(ctx context.Context) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	s, err := p.be.getSession(ctx)
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// isClosed reports whether Teardown was called.
func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// build makes a new, not yet held session from merged options, with
// CreateSessionFunc when set. Without it, the session's ID (when not given)
// is left to the backend that adds it.
func (p *Pool) build(ctx context.Context, o SessionOptions, defaults bool) (*Session, error) {
	if p.create == nil {
		data := p.defaultsData
		if !defaults {
			var err error
			if data, err = encodeUserData(o.UserData); err != nil {
				return nil, fmt.Errorf("create session: %w", err)
			}
		}
		return p.newSession(o, data), nil
	}
	s, err := p.create(ctx, p, o)
	if err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	if s == nil || s.pool != p {
		return nil, fmt.Errorf("create session: %w", ErrForeignSession)
	}
	return s, nil
}

// newSession builds a session from merged, validated options; data is the
// JSON of its user data. The ID stays "" when not given.
func (p *Pool) newSession(o SessionOptions, data []byte) *Session {
	now := p.nowNanos()
	s := &Session{
		pool:    p,
		expires: addNanos(now, o.MaxAge),
		limits:  p.limitsFor(limits{maxUsage: o.MaxUsageCount, maxErr: o.MaxErrorScore, errDecr: o.ErrorScoreDecrement}),
		sessionCold: &sessionCold{
			id:       o.ID,
			proxyURL: o.ProxyURL,
			fprint:   o.Fingerprint,
			created:  now,
			userData: data,
			idx:      -1,
			hidx:     -1,
		},
	}
	p.be.prepare(s)
	s.publishLocked() // s is not shared yet
	return s
}

// limitsFor returns the pool's shared default limits when l equals them
// (so that most sessions point at one cached copy), else a new copy of l.
func (p *Pool) limitsFor(l limits) *limits {
	if l == *p.defaultLim {
		return p.defaultLim
	}
	return &l
}

// NewSession builds a session with the pool's defaults filled in
// (Options.SessionOptions, then the package defaults) without adding it: the
// building block of a CreateSessionFunc. Without opts.ID it gets a random ID
// not held in the pool.
func (p *Pool) NewSession(opts SessionOptions) (*Session, error) {
	o := opts.merge(p.defaults)
	if errs := o.validate(""); len(errs) > 0 {
		return nil, fmt.Errorf("new session: %w", errors.Join(errs...))
	}
	data, err := encodeUserData(o.UserData)
	if err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	s := p.newSession(o, data)
	if s.id == "" {
		s.id = p.be.uniqueID()
	}
	return s, nil
}

// AddSession adds a new session built from opts (zero fields take the
// pool's defaults) through CreateSessionFunc. An ID held by a usable session
// fails with ErrSessionExists (the message names the ID); an unusable
// session holding it is evicted and replaced. When the pool is full it first
// evicts the unusable sessions, then adds anyway: the pool may exceed
// MaxPoolSize this way, as in the seed.
func (p *Pool) AddSession(ctx context.Context, opts SessionOptions) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("add session: %w", err)
	}
	o := opts.merge(p.defaults)
	if errs := o.validate(""); len(errs) > 0 {
		return nil, fmt.Errorf("add session: %w", errors.Join(errs...))
	}
	s, err := p.be.addSession(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("add session: %w", err)
	}
	return s, nil
}

// GetSessionByID returns the held session with that ID when it is usable;
// otherwise an error matching ErrSessionNotFound. It never creates.
func (p *Pool) GetSessionByID(ctx context.Context, id string) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get session %q: %w", id, err)
	}
	s, err := p.be.getByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get session %q: %w", id, err)
	}
	if s == nil || !s.IsUsable() {
		return nil, fmt.Errorf("get session %q: %w", id, ErrSessionNotFound)
	}
	return s, nil
}

// Site returns the site the pool serves (see Sites), "" for a pool opened
// by Open.
func (p *Pool) Site() string { return p.site }

// UsableSessionsCount returns the number of held sessions that are usable.
// With a Redis pool, errors go to RedisOptions.OnError and the count is 0.
func (p *Pool) UsableSessionsCount() int {
	usable, _ := p.be.counts()
	return usable
}

// RetiredSessionsCount returns the number of held sessions that are not
// usable (retired, blocked, worn out or expired) and not yet evicted. With a
// Redis pool, errors go to RedisOptions.OnError and the count is 0.
func (p *Pool) RetiredSessionsCount() int {
	_, unusable := p.be.counts()
	return unusable
}

// Sessions returns the held sessions, usable or not, in no particular order.
// With a Redis pool they are copies read from the server; errors go to
// RedisOptions.OnError: nil is returned when the server cannot be read, and
// a session whose data does not parse is left out.
func (p *Pool) Sessions() []*Session { return p.be.sessions() }

// State returns both counts and every held session's state. The session
// list is copied under the pool's lock; each session is then read under its
// own lock, so the counts agree with the returned sessions.
func (p *Pool) State() PoolState {
	now := p.now()
	snaps, usable := p.snapshot(now)
	st := PoolState{
		UsableSessionsCount:  usable,
		RetiredSessionsCount: len(snaps) - usable,
		Sessions:             make([]SessionState, len(snaps)),
	}
	for i := range snaps {
		st.Sessions[i] = snaps[i].state()
		st.Sessions[i].Cookies = snaps[i].s.jar.export(now)
	}
	return st
}

// snapshot copies the held sessions' states (without cookies) and counts
// the usable ones at now. The pool lock is held only to copy the pointers.
func (p *Pool) snapshot(now time.Time) ([]sessionSnap, int) {
	all := p.be.sessions()
	nowNs := now.UnixNano()
	snaps := make([]sessionSnap, len(all))
	usable := 0
	for i, s := range all {
		snaps[i] = s.snapshot()
		if snaps[i].usableAt(nowNs) {
			usable++
		}
	}
	return snaps, usable
}

// sessionRetired is called by a session of this pool, outside its lock, once
// when a mark on it set its retired flag: the backend is told, then the
// subscribers run, outside every lock.
func (p *Pool) sessionRetired(s *Session) {
	p.be.retired(s)
	p.fireRetired(s)
}

// discard closes a pool without a persist loop and without persisting (for
// Sites whose opening failed). Idempotent, and safe after Teardown: what
// Teardown closed is not closed again.
func (p *Pool) discard() {
	p.mu.Lock()
	first := !p.closed
	p.closed, p.finished = true, true
	p.mu.Unlock()
	if first {
		p.shut()
	}
}

// dropIfIdle closes the pool as discard does, but only if it is still
// idle: no change since changes was read, no usable session, no creation
// in flight. The decision and the closing are one critical section of the
// pool's lock, so that no GetSession or AddSession gets a session from the
// pool after it was found idle: one before it keeps the pool, one after it
// fails with ErrPoolClosed. forget runs in that critical section too (Sites
// forgets the site there, under its own lock, which the caller holds), so
// that whoever finds the pool closed finds the site forgotten. When the
// pool was dropped and first, the caller calls shut, outside its locks.
func (p *Pool) dropIfIdle(changes uint64, forget func()) (dropped, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changes.Load() != changes || !p.be.idleLocked(p.nowNanos()) {
		return false, false
	}
	first = !p.closed
	p.closed, p.finished, p.dropped = true, true, true
	forget()
	return true, first
}

// deleteState deletes the pool's document once a persist in flight has
// ended; called after dropIfIdle, so no later persist writes it again.
func (p *Pool) deleteState(ctx context.Context) error {
	select {
	case p.persistSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("delete state %q: %w", p.key, ctx.Err())
	}
	defer func() { <-p.persistSem }()
	if err := p.store.Delete(ctx, p.key); err != nil {
		return fmt.Errorf("delete state %q: %w", p.key, err)
	}
	return nil
}

// shut stops what a pool closed by discard or dropIfIdle runs (a pool
// without a persist loop).
func (p *Pool) shut() {
	close(p.stop)
	p.be.close()
}

// Teardown stops periodic persistence, persists the state once more (with a
// Store) and closes the pool: later GetSession, GetSessionByID, AddSession
// and PersistState calls fail with ErrPoolClosed. The returned error is the
// final persist's (or ctx's, when it ends first); the pool is closed either
// way, and a later call persists again, so that a store that failed once
// still gets the state. Idempotent once it has returned nil: later calls do
// nothing and return nil.
func (p *Pool) Teardown(ctx context.Context) error {
	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		return nil
	}
	first := !p.closed
	p.closed = true
	p.mu.Unlock()
	if first {
		close(p.stop)
		if p.done != nil {
			p.stopCancel()
		}
		if err := p.be.close(); err != nil {
			return fmt.Errorf("teardown: %w", err)
		}
	}
	if p.done != nil {
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("teardown: %w", ctx.Err())
		}
	}
	if err := p.persist(ctx, true); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	p.mu.Lock()
	p.finished = true
	p.mu.Unlock()
	return nil
}
