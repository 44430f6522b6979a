package sessionpool

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sites keeps one Pool per site, so that what happens on one site (a block,
// a retirement, a worn-out session) costs nothing on another: scrapy-zyte-api
// keeps its sessions per domain the same way. A site is any label the caller
// chooses (the proxy uses the registrable domain of the request's host); ""
// is a site like any other. Each site's pool is opened on first use with the
// same Options, and has the semantics of a Pool opened by Open, MaxPoolSize
// included: the limits hold per site. A session belongs to its site's pool:
// two sites may each hold a session with the same ID, and they share
// nothing.
//
// With a Store, each site's pool keeps its document under its own key,
// PersistStateKey + "@" + site (the site "" under PersistStateKey itself, so
// a pool persisted by Open is the site "" of a Sites on the same key), and
// an index of the sites under PersistStateKey + ".sites". OpenSites opens
// every site of the index; a site missing from it (a crash between the two
// writes) is loaded when it is first used. One goroutine persists every
// site's pool every PersistInterval. With Options.Redis the site pools share
// one client (unless RedisOptions.Client is given, which they all use) and
// one pattern subscription to their retirement events; each site's keys are
// hash-tagged by its own key ("sp:{KEY@site}:..."), so a Redis Cluster
// spreads the sites over its slots; All lists the sites any process used.
//
// All methods are safe for concurrent use. The zero Sites is not usable:
// use OpenSites.
type Sites struct {
	opts     Options // the template of every site's pool; PersistStateKey filled in
	interval time.Duration
	client   redis.UniversalClient // the shared client Sites made, closed by Teardown; nil otherwise

	subs subscribers // OnSessionRetired's

	mu      sync.Mutex
	slots   sync.Map      // site -> *siteSlot; added and deleted under mu, read without it
	closed  atomic.Bool   // set under mu
	ended   bool          // guarded by mu: Teardown met no error, or discard
	redisMu sync.Once     // closes the Redis subscription and client once
	gen     uint64        // guarded by mu: counts the sites opened and dropped
	listed  uint64        // guarded by mu: the gen of the index last written
	indexMu chan struct{} // one index write at a time, in order
	sweepMu sync.Mutex    // one DropIdle at a time; guards the slots' swept fields
	// dropping holds, for each site whose document DropIdle is deleting, a
	// channel closed once it is deleted: the site's next open waits for it,
	// so that the deletion never takes the next pool's document. Guarded by
	// mu; nil while no drop is in progress.
	dropping map[string]chan struct{}

	stop       chan struct{}      // closed by Teardown: stops the persist loop
	stopCancel context.CancelFunc // cancels the persist loop's context
	done       chan struct{}      // closed by the persist loop when it returns; nil without one
}

// siteSlot is one site's pool, being opened until ready is closed.
type siteSlot struct {
	ready chan struct{}
	p     *Pool // set before ready is closed
	err   error // set before ready is closed

	swept   uint64 // guarded by Sites.sweepMu: the pool's changes at the last DropIdle
	sweptAt bool   // guarded by Sites.sweepMu: a DropIdle has seen the pool
	// retry is set before ready is closed when the open failed because its
	// opener's context ended: the callers waiting for it open the site
	// again rather than fail with that context's error.
	retry bool
}

// sitesIndex is the document listing the sites of a Sites with a Store.
type sitesIndex struct {
	Version int      `json:"version"`
	Sites   []string `json:"sites"`
}

// OpenSites validates opts (every problem at once, each wrapping
// ErrInvalidOptions) and opens the sites persisted in opts.Store, each
// loaded as Open loads a pool; a document that cannot be loaded makes
// OpenSites fail with an error naming its key and position, and nothing is
// written. Options.OnPersist is called for every site's persist and for
// the index's.
func OpenSites(ctx context.Context, opts Options) (*Sites, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("open sites: %w", err)
	}
	if opts.PersistStateKey == "" {
		opts.PersistStateKey = DefaultPersistStateKey
	}
	ss := &Sites{
		opts:     opts,
		interval: cmp.Or(opts.PersistInterval, DefaultPersistInterval),
		indexMu:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	if r := opts.Redis; r != nil {
		shared := *r
		if r.Client == nil {
			ro, err := redis.ParseURL(r.URL)
			if err != nil {
				return nil, fmt.Errorf("open sites: %w: Redis.URL: %v", ErrInvalidOptions, redactErr(err, r.URL))
			}
			setFailFast(ro, r.URL)
			ss.client = redis.NewClient(ro)
			shared.Client, shared.name = ss.client, redactURL(r.URL)
		}
		shared.events = subscribeEvents(ctx, shared.Client, opts.PersistStateKey)
		ss.opts.Redis = &shared
	}
	if err := ss.load(ctx); err != nil {
		ss.discard()
		return nil, fmt.Errorf("open sites: %w", err)
	}
	if opts.Store != nil {
		ss.done = make(chan struct{})
		loopCtx, cancel := context.WithCancel(context.Background())
		ss.stopCancel = cancel
		go ss.persistLoop(loopCtx)
	}
	return ss, nil
}

// indexKey is the store key of the sites' index.
func (ss *Sites) indexKey() string { return ss.opts.PersistStateKey + ".sites" }

// siteKey is the store key of site's pool.
func (ss *Sites) siteKey(site string) string {
	if site == "" {
		return ss.opts.PersistStateKey
	}
	return ss.opts.PersistStateKey + "@" + site
}

// load opens every site of the index.
func (ss *Sites) load(ctx context.Context) error {
	if ss.opts.Store == nil {
		return nil
	}
	data, err := ss.opts.Store.Get(ctx, ss.indexKey())
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load %q: %w", ss.indexKey(), err)
	}
	var idx sitesIndex
	d := &stateDecoder{data: data} // for its positions
	if err := json.Unmarshal(data, &idx); err != nil {
		return fmt.Errorf("load %q: %w", ss.indexKey(), d.jsonErr(err, 0, ""))
	}
	if idx.Version != stateVersion {
		return fmt.Errorf("load %q: %w", ss.indexKey(), d.errAt(0, "not a sites index of version %d (got version %d)", stateVersion, idx.Version))
	}
	for _, site := range idx.Sites {
		if _, err := ss.Pool(ctx, site); err != nil {
			return err
		}
	}
	ss.mu.Lock()
	ss.listed = ss.gen
	ss.mu.Unlock()
	return nil
}

// Pool returns site's pool, opening it (and loading its document, with a
// Store) on its first use. Concurrent first uses of a site open it once,
// with the first caller's context; when that context ends before the open
// is done, the other callers (whose contexts are alive) open the site
// again rather than fail with its error. After Teardown it fails with
// ErrPoolClosed.
func (ss *Sites) Pool(ctx context.Context, site string) (*Pool, error) {
	for {
		if v, ok := ss.slots.Load(site); ok && !ss.closed.Load() {
			// The path of every request to a known site: no lock.
			if sl := v.(*siteSlot); isClosed(sl.ready) && sl.p != nil {
				return sl.p, nil
			}
		}
		ss.mu.Lock()
		if ss.closed.Load() {
			ss.mu.Unlock()
			return nil, fmt.Errorf("open site %q: %w", site, ErrPoolClosed)
		}
		v, loaded := ss.slots.LoadOrStore(site, &siteSlot{ready: make(chan struct{})})
		dropping := ss.dropping[site]
		ss.mu.Unlock()
		sl := v.(*siteSlot)
		if !loaded {
			ss.openSlot(ctx, site, sl, dropping)
		}
		select {
		case <-sl.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("open site %q: %w", site, ctx.Err())
		}
		if sl.err == nil {
			return sl.p, nil
		}
		if !sl.retry || ctx.Err() != nil {
			return nil, sl.err
		}
		// Another caller's context ended the open: the slot is gone, and
		// this caller opens the site with its own.
	}
}

// openSlot opens site's pool into sl, once the deletion of its previous
// pool's document is done (dropping, when not nil, is closed then). A
// failed open leaves the site unopened, for the next use to try again;
// sl.retry says whether the failure is ctx's end.
func (ss *Sites) openSlot(ctx context.Context, site string, sl *siteSlot, dropping chan struct{}) {
	opts := ss.opts
	opts.PersistStateKey = ss.siteKey(site)
	var err error
	if dropping != nil {
		select {
		case <-dropping:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	var p *Pool
	if err == nil {
		p, err = open(ctx, opts, site, false)
	}
	if err != nil {
		sl.err = fmt.Errorf("open site %q: %w", site, err)
		ctxErr := ctx.Err()
		sl.retry = ctxErr != nil && errors.Is(err, ctxErr)
		ss.mu.Lock()
		ss.slots.Delete(site)
		ss.mu.Unlock()
		close(sl.ready)
		return
	}
	p.OnSessionRetired(ss.subs.fire)
	sl.p = p
	close(sl.ready)
	ss.mu.Lock()
	ss.gen++
	ss.mu.Unlock()
	if r := ss.opts.Redis; r != nil {
		// Listed on the server for the other processes (All). A failure
		// leaves the site unlisted until a process opens it again.
		if err := r.Client.SAdd(ctx, ss.redisIndex(), site).Err(); err != nil && r.OnError != nil {
			r.OnError(fmt.Errorf("sessionpool: list site %q: %w", site, ss.storeErr(err)))
		}
	}
}

// storeErr wraps an error of the Redis server as ErrStoreUnavailable,
// naming the server (as the pools' errors do).
func (ss *Sites) storeErr(err error) error {
	r := ss.opts.Redis
	name := r.name
	if name == "" {
		name = "redis " + strings.Join(redisAddrs(r.Client), ",")
	}
	return fmt.Errorf("%w: %s: %s", ErrStoreUnavailable, name, redactErr(err, r.URL))
}

// redisIndex is the Redis set of the sites any process opened.
func (ss *Sites) redisIndex() string { return "sp:{" + ss.indexKey() + "}" }

// All returns the pools of every site known: with a Redis pool, every site
// any process sharing it has used (each opened here on the way, as Pool
// opens it); otherwise the open ones (Pools), which are every site of the
// store's index and every site used since. Ordered by site.
func (ss *Sites) All(ctx context.Context) ([]*Pool, error) {
	r := ss.opts.Redis
	if r == nil {
		return ss.Pools(), nil
	}
	listed, err := r.Client.SMembers(ctx, ss.redisIndex()).Result()
	if err != nil {
		return ss.Pools(), fmt.Errorf("list sites: %w", ss.storeErr(err))
	}
	for _, site := range listed {
		if _, err := ss.Pool(ctx, site); err != nil {
			return ss.Pools(), err
		}
	}
	return ss.Pools(), nil
}

// DropIdle closes and forgets the pools of the sites that hold no usable
// session and did not change since the previous DropIdle (so idle for at
// least the time between two calls); the site "" is kept. The decision is
// made again as the pool is closed, under its lock: a site whose pool gave
// a session or began creating one meanwhile is kept. A caller that got a
// dropped site's pool before the drop gets ErrPoolClosed from it; a later
// Pool of the site opens it afresh. With a Store, a dropped site's document
// is deleted, and the next persist writes the index without it. It returns
// how many sites it dropped, and the store's errors. Sites visited once no
// longer hold memory for as long as the process runs.
func (ss *Sites) DropIdle(ctx context.Context) (int, error) {
	ss.sweepMu.Lock()
	defer ss.sweepMu.Unlock()
	var errs []error
	n := 0
	ss.slots.Range(func(k, v any) bool {
		site, sl := k.(string), v.(*siteSlot)
		if site == "" || !isClosed(sl.ready) || sl.p == nil {
			return true
		}
		changes := sl.p.changes.Load()
		idle := sl.sweptAt && sl.swept == changes && sl.p.UsableSessionsCount() == 0
		sl.swept, sl.sweptAt = changes, true
		if !idle {
			return true
		}
		// Decided again under the pool's lock, which closes the pool and
		// forgets the site in that same critical section: a session taken
		// from the pool since the decision keeps the site.
		ss.mu.Lock()
		if ss.closed.Load() {
			ss.mu.Unlock()
			return false
		}
		dropped, first := false, false
		var deleted chan struct{}
		if v, ok := ss.slots.Load(site); ok && v == sl {
			dropped, first = sl.p.dropIfIdle(changes, func() {
				ss.slots.Delete(site)
				ss.gen++
				if ss.opts.Store != nil {
					deleted = make(chan struct{})
					if ss.dropping == nil {
						ss.dropping = make(map[string]chan struct{})
					}
					ss.dropping[site] = deleted
				}
			})
		}
		ss.mu.Unlock()
		if !dropped {
			return true
		}
		if first {
			sl.p.shut()
		}
		if deleted != nil {
			// After a persist in flight (none starts again), and before
			// the site's next pool loads.
			if err := sl.p.deleteState(ctx); err != nil {
				errs = append(errs, fmt.Errorf("drop site %q: %w", site, err))
			}
			ss.mu.Lock()
			delete(ss.dropping, site)
			ss.mu.Unlock()
			close(deleted)
		}
		n++
		return true
	})
	return n, errors.Join(errs...)
}

// Lookup returns site's pool when it is open, nil otherwise; it never
// opens one.
func (ss *Sites) Lookup(site string) *Pool {
	v, ok := ss.slots.Load(site)
	if !ok {
		return nil
	}
	if sl := v.(*siteSlot); isClosed(sl.ready) {
		return sl.p
	}
	return nil
}

// Pools returns the open sites' pools, ordered by site.
func (ss *Sites) Pools() []*Pool {
	var ps []*Pool
	ss.slots.Range(func(_, v any) bool {
		if sl := v.(*siteSlot); isClosed(sl.ready) && sl.p != nil {
			ps = append(ps, sl.p)
		}
		return true
	})
	slices.SortFunc(ps, func(a, b *Pool) int { return strings.Compare(a.site, b.site) })
	return ps
}

// UsableSessionsCount returns the usable sessions of every site: with a
// Redis pool every site any process used (see All; its error goes to
// RedisOptions.OnError, and the open sites are counted), else the open ones.
func (ss *Sites) UsableSessionsCount() int { return ss.count((*Pool).UsableSessionsCount) }

// RetiredSessionsCount returns the unusable sessions of every site, as
// UsableSessionsCount counts them.
func (ss *Sites) RetiredSessionsCount() int { return ss.count((*Pool).RetiredSessionsCount) }

// count sums f over the sites UsableSessionsCount counts.
func (ss *Sites) count(f func(*Pool) int) int {
	pools := ss.Pools()
	if r := ss.opts.Redis; r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(r.Timeout, DefaultRedisTimeout))
		defer cancel()
		var err error
		if pools, err = ss.All(ctx); err != nil && r.OnError != nil {
			r.OnError(err)
		}
	}
	n := 0
	for _, p := range pools {
		n += f(p)
	}
	return n
}

// OnSessionRetired subscribes fn to the retirements of every site's pool,
// as Pool.OnSessionRetired does for one (the state's Site names the site).
// The returned cancel unsubscribes (idempotent).
func (ss *Sites) OnSessionRetired(fn func(SessionState)) (cancel func()) {
	return ss.subs.add(fn)
}

// PersistState persists every open site's pool (as Pool.PersistState does)
// and the index of the sites. Nothing to do without a Store.
func (ss *Sites) PersistState(ctx context.Context) error {
	if ss.closed.Load() {
		return fmt.Errorf("persist state: %w", ErrPoolClosed)
	}
	return ss.persist(ctx, true)
}

// persist writes every site's pool (unless always, only those that changed)
// and then the index when the set of sites changed since it was written.
func (ss *Sites) persist(ctx context.Context, always bool) error {
	if ss.opts.Store == nil {
		return nil
	}
	var errs []error
	for _, p := range ss.Pools() {
		errs = append(errs, p.persist(ctx, always))
	}
	errs = append(errs, ss.writeIndex(ctx, always))
	return errors.Join(errs...)
}

// writeIndex writes the index of the open sites when a site was opened or
// dropped since the last one written (or always).
func (ss *Sites) writeIndex(ctx context.Context, always bool) error {
	select {
	case ss.indexMu <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("persist sites: %w", ctx.Err())
	}
	defer func() { <-ss.indexMu }()
	ss.mu.Lock()
	gen, listed := ss.gen, ss.listed
	ss.mu.Unlock()
	if !always && listed == gen {
		return nil
	}
	pools := ss.Pools()
	idx := sitesIndex{Version: stateVersion, Sites: make([]string, len(pools))}
	for i, p := range pools {
		idx.Sites[i] = p.site
	}
	data, _ := json.Marshal(idx) // strings only: cannot fail
	start := time.Now()
	err := ss.opts.Store.Set(ctx, ss.indexKey(), data)
	if err != nil {
		err = fmt.Errorf("persist sites %q: %w", ss.indexKey(), err)
	} else {
		ss.mu.Lock()
		ss.listed = gen
		ss.mu.Unlock()
	}
	if ss.opts.OnPersist != nil {
		ss.opts.OnPersist(time.Since(start), err)
	}
	return err
}

// persistLoop persists every interval until Teardown closes ss.stop and
// cancels ctx (which also ends a persist in flight).
func (ss *Sites) persistLoop(ctx context.Context) {
	defer close(ss.done)
	tick := time.NewTicker(ss.interval)
	defer tick.Stop()
	for {
		select {
		case <-ss.stop:
			return
		case <-tick.C:
			ss.persist(ctx, false) // errors reach Options.OnPersist
		}
	}
}

// discard closes the pools a failed OpenSites opened, writing nothing.
func (ss *Sites) discard() {
	ss.mu.Lock()
	ss.closed.Store(true)
	ss.ended = true
	ss.mu.Unlock()
	for _, p := range ss.Pools() {
		p.discard()
	}
	ss.closeRedis()
}

// closeRedis ends the sites' event subscription and closes the client
// Sites made, once every pool is closed; later calls do nothing.
func (ss *Sites) closeRedis() error {
	var errs []error
	ss.redisMu.Do(func() {
		if r := ss.opts.Redis; r != nil {
			errs = append(errs, r.events.close())
		}
		if ss.client != nil {
			errs = append(errs, ss.client.Close())
		}
	})
	return errors.Join(errs...)
}

// Teardown stops the persist loop and tears down every site's pool (each
// persists once more), then writes the index (with a Store, always); later
// calls of Pool fail with ErrPoolClosed. It returns every error met, and
// returns when ctx ends (with its error), even while a site is still being
// opened; the sites are closed either way, and a later call tears down and
// writes again (Pool.Teardown), so that a store that failed once still
// gets the state. Idempotent once it has returned nil.
func (ss *Sites) Teardown(ctx context.Context) error {
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return nil
	}
	first := !ss.closed.Load()
	ss.closed.Store(true)
	ss.mu.Unlock()
	if first {
		close(ss.stop)
		if ss.done != nil {
			ss.stopCancel()
		}
	}
	if ss.done != nil {
		select {
		case <-ss.done:
		case <-ctx.Done():
			return fmt.Errorf("teardown: %w", ctx.Err())
		}
	}
	// Wait for opens in flight, so that none is left open.
	var slots []*siteSlot
	ss.slots.Range(func(_, v any) bool {
		slots = append(slots, v.(*siteSlot))
		return true
	})
	var errs []error
	for _, sl := range slots {
		select {
		case <-sl.ready:
		case <-ctx.Done():
			// The open (a store stuck in I/O) is left to a later call.
			return errors.Join(append(errs, fmt.Errorf("teardown: %w", ctx.Err()))...)
		}
		if sl.p != nil {
			errs = append(errs, sl.p.Teardown(ctx))
		}
	}
	if ss.opts.Store != nil {
		errs = append(errs, ss.writeIndex(ctx, true))
	}
	errs = append(errs, ss.closeRedis())
	err := errors.Join(errs...)
	if err == nil {
		ss.mu.Lock()
		ss.ended = true
		ss.mu.Unlock()
	}
	return err
}

// isClosed reports whether ch is closed (a slot's ready).
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
