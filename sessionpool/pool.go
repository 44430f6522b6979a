package sessionpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	rb           *redisBackend // nil: the sessions live in t

	mu     sync.Mutex
	closed bool
	t      table

	subsMu   sync.Mutex
	subsNext uint64
	subs     atomic.Pointer[[]subscriber] // copy-on-write under subsMu

	// persistSem lets one persist run at a time, so an older snapshot never
	// overwrites a newer one. It is a channel, not a mutex, so that waiting
	// for it honours the context.
	persistSem chan struct{}

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
// evicted.
func Open(ctx context.Context, opts Options) (*Pool, error) {
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
	p.t.byID = make(map[string]*Session)
	for i := range p.t.ahead {
		p.t.ahead[i] = rand.Uint64()
	}
	if opts.Redis != nil {
		if p.rb, err = openRedis(ctx, p, opts.Redis); err != nil {
			return nil, fmt.Errorf("open pool: %w", err)
		}
		p.rb.run(p)
		return p, nil
	}
	if p.store == nil {
		return p, nil
	}
	if err := p.load(ctx); err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
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

// load restores the usable sessions of the persisted document, if any.
func (p *Pool) load(ctx context.Context) error {
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
			p.t.add(s)
		}
	}
	return nil
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
	if p.rb != nil {
		if p.isClosed() {
			return nil, fmt.Errorf("get session: %w", ErrPoolClosed)
		}
		s, err := p.rb.getSession(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("get session: %w", err)
		}
		return s, nil
	}
	t := &p.t
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, fmt.Errorf("get session: %w", ErrPoolClosed)
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
			return p.createReserved(ctx)
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
				return nil, fmt.Errorf("get session: %w", ctx.Err())
			}
		}
		var s *Session
		if p.strategy == RoundRobin {
			if t.rr >= len(t.all) {
				t.rr = 0
			}
			s = t.all[t.rr]
			t.rr++
		} else {
			s = t.pickRandom()
		}
		if s.usableAt(now) {
			if p.strategy == UseUntilFailure {
				t.last = s
			}
			p.mu.Unlock()
			return s, nil
		}
		t.evictUnusable(now)
		if s.idx >= 0 { // retired but its event not yet handled by the table
			t.remove(s)
		}
		if p.strategy == RoundRobin {
			// Resume the cycle at the evicted pick's slot, which now holds
			// the session swapped into it; the new one goes at the end.
			t.rr--
		}
		t.pending++
		p.mu.Unlock()
		return p.createReserved(ctx)
	}
}

// isClosed reports whether Teardown was called.
func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// createReserved builds a session for a slot reserved by GetSession and
// adds it.
func (p *Pool) createReserved(ctx context.Context) (*Session, error) {
	s, err := p.build(ctx, p.defaults, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.t.pending--
	p.t.wakeWaiters()
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	if p.closed {
		return nil, fmt.Errorf("get session: %w", ErrPoolClosed)
	}
	if err := p.insertLocked(s); err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	if p.strategy == UseUntilFailure {
		p.t.last = s
	}
	return s, nil
}

// build makes a new, not yet held session from merged options, with
// CreateSessionFunc when set. Without it, the session's ID (when not given)
// is assigned by insertLocked.
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

// insertLocked adds a newly built session, giving it a fresh ID when it has
// none. A usable session holding its ID makes it fail with ErrSessionExists;
// an unusable one is evicted.
func (p *Pool) insertLocked(s *Session) error {
	t := &p.t
	if s.idx >= 0 {
		return fmt.Errorf("add session %q: %w", s.id, ErrForeignSession)
	}
	if s.id == "" {
		s.id = t.uniqueID()
	} else if held := t.byID[s.id]; held != nil {
		if held.usableAt(p.nowNanos()) {
			return fmt.Errorf("add session %q: %w", s.id, ErrSessionExists)
		}
		t.remove(held)
	}
	t.add(s)
	return nil
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
			created:  now,
			userData: data,
			idx:      -1,
			hidx:     -1,
		},
	}
	s.jar.track = p.rb != nil
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
		p.mu.Lock()
		s.id = p.t.uniqueID()
		p.mu.Unlock()
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
	if p.rb != nil {
		if p.isClosed() {
			return nil, fmt.Errorf("add session: %w", ErrPoolClosed)
		}
		s, err := p.build(ctx, o, false)
		if err != nil {
			return nil, fmt.Errorf("add session: %w", err)
		}
		if s, err = p.rb.addSession(ctx, p, s, o.ID != ""); err != nil {
			return nil, fmt.Errorf("add session: %w", err)
		}
		return s, nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("add session: %w", ErrPoolClosed)
	}
	now := p.nowNanos()
	if held := p.t.byID[o.ID]; o.ID != "" && held != nil {
		if held.usableAt(now) {
			p.mu.Unlock()
			return nil, fmt.Errorf("add session %q: %w", o.ID, ErrSessionExists)
		}
		p.t.remove(held)
	}
	if len(p.t.all) >= p.maxSize {
		p.t.evictUnusable(now)
	}
	p.mu.Unlock()

	s, err := p.build(ctx, o, false)
	if err != nil {
		return nil, fmt.Errorf("add session: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("add session: %w", ErrPoolClosed)
	}
	if err := p.insertLocked(s); err != nil {
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
	if p.rb != nil {
		if p.isClosed() {
			return nil, fmt.Errorf("get session %q: %w", id, ErrPoolClosed)
		}
		s, err := p.rb.getByID(ctx, p, id)
		if err != nil {
			return nil, fmt.Errorf("get session %q: %w", id, err)
		}
		if s == nil || !s.IsUsable() {
			return nil, fmt.Errorf("get session %q: %w", id, ErrSessionNotFound)
		}
		return s, nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("get session %q: %w", id, ErrPoolClosed)
	}
	s := p.t.byID[id]
	p.mu.Unlock()
	if s == nil || !s.IsUsable() {
		return nil, fmt.Errorf("get session %q: %w", id, ErrSessionNotFound)
	}
	return s, nil
}

// UsableSessionsCount returns the number of held sessions that are usable.
func (p *Pool) UsableSessionsCount() int {
	if p.rb != nil {
		held, retired, expired := p.remoteCounts()
		return held - retired - expired
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.t.all) - p.t.unusable(p.nowNanos())
}

// RetiredSessionsCount returns the number of held sessions that are not
// usable (retired, blocked, worn out or expired) and not yet evicted.
func (p *Pool) RetiredSessionsCount() int {
	if p.rb != nil {
		_, retired, expired := p.remoteCounts()
		return retired + expired
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.t.unusable(p.nowNanos())
}

// remoteCounts reads the counts of a Redis pool; errors go to
// RedisOptions.OnError.
func (p *Pool) remoteCounts() (held, retired, expired int) {
	ctx, cancel := p.rb.detached()
	defer cancel()
	held, retired, expired, err := p.rb.counts(ctx, p)
	if err != nil {
		p.rb.report(fmt.Errorf("count sessions: %w", err))
		return 0, 0, 0
	}
	return held, retired, expired
}

// Sessions returns the held sessions, usable or not, in no particular order.
// With a Redis pool they are copies read from the server; errors go to
// RedisOptions.OnError: nil is returned when the server cannot be read, and
// a session whose data does not parse is left out.
func (p *Pool) Sessions() []*Session {
	if p.rb != nil {
		ctx, cancel := p.rb.detached()
		defer cancel()
		ss, err := p.rb.sessions(ctx, p)
		if err != nil {
			p.rb.report(fmt.Errorf("list sessions: %w", err))
		}
		return ss
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.t.all)
}

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
	var all []*Session
	if p.rb != nil {
		all = p.Sessions()
	} else {
		p.mu.Lock()
		all = slices.Clone(p.t.all)
		p.mu.Unlock()
	}
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
// when its retired flag is set: the table moves it to its retired list, then
// the subscribers run, outside every lock.
func (p *Pool) sessionRetired(s *Session) {
	p.mu.Lock()
	p.t.markRetired(s)
	p.mu.Unlock()
	p.fireRetired(s)
}

// Teardown stops periodic persistence, persists the state once more (with a
// Store) and closes the pool: later GetSession, GetSessionByID, AddSession
// and PersistState calls fail with ErrPoolClosed. Idempotent: later calls do
// nothing and return nil. The returned error is the final persist's; the
// pool is closed either way.
func (p *Pool) Teardown(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.t.wakeWaiters()
	p.mu.Unlock()
	close(p.stop)
	if p.rb != nil {
		if err := p.rb.close(); err != nil {
			return fmt.Errorf("teardown: %w", err)
		}
		return nil
	}
	if p.done != nil {
		p.stopCancel()
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("teardown: %w", ctx.Err())
		}
	}
	if err := p.persist(ctx); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	return nil
}
