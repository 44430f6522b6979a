package sessionpool

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBackend keeps a pool's sessions on a Redis server, shared by every
// process that opens a pool on the same server with the same
// PersistStateKey. See redis_scripts.go for the keys and the scripts.
//
// The server holds the truth; a *Session of such a pool is this process's
// copy of one session as the last script that touched it returned it:
// reads (counters, predicates, cookies) are local, every mutation is a
// script run that updates the copy with the server's answer. So a process
// that dies loses nothing the server acknowledged.
type redisBackend struct {
	p  *Pool
	c  redis.UniversalClient
	sc redis.Scripter // runs the scripts on the request path: c's autopipeliner when it has one
	// inflight counts the scripts of the request path running now (see eval).
	inflight atomic.Int32
	own      bool   // the pool made c and closes it
	name     string // the store in messages: its URL without the password
	pfx      string // "sp:{KEY}:"
	keys     []string
	channel  string // retirement events
	origin   string // this pool's tag in the events it publishes
	onErr    func(error)
	timeout  time.Duration // bounds the calls that take no context (RedisOptions.Timeout)

	ps   *redis.PubSub
	done chan struct{} // closed when the event loop returns

	mu    sync.Mutex
	spare []*Session // candidates built and not yet needed
	last  string     // UseUntilFailure: the ID this process returned last
}

// maxSpare bounds the candidates kept between GetSession calls: enough for
// the concurrency of a busy proxy, so that a candidate built for a call that
// found a held session is rarely thrown away (its CreateSessionFunc call,
// which may count or assign an upstream, would be wasted).
const maxSpare = 64

func openRedis(ctx context.Context, p *Pool, opts *RedisOptions) (*redisBackend, error) {
	b := &redisBackend{
		p:       p,
		c:       opts.Client,
		origin:  newID(),
		onErr:   opts.OnError,
		timeout: cmp.Or(opts.Timeout, DefaultRedisTimeout),
		done:    make(chan struct{}),
	}
	if b.c == nil {
		ro, err := redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("%w: Redis.URL: %v", ErrInvalidOptions, redactErr(err, opts.URL))
		}
		setFailFast(ro, opts.URL)
		b.c = redis.NewClient(ro)
		b.own = true
		b.name = redactURL(opts.URL)
	} else {
		b.name = "redis " + strings.Join(redisAddrs(b.c), ",")
	}
	b.sc = b.c
	if ap := autoPipeliner(b.c); ap != nil {
		b.sc = ap
	}
	b.pfx = "sp:{" + p.key + "}:"
	b.keys = []string{b.pfx + "held", b.pfx + "exp", b.pfx + "retired", b.pfx + "ring"}
	b.channel = b.pfx + "events"
	b.ps = b.c.Subscribe(ctx, b.channel)
	b.awaitSubscription(ctx)
	b.run()
	return b, nil
}

// The states of a Redis pool's session (sessionCold.rstate).
const (
	rfree    int32 = iota // built by NewSession, not given to the pool
	rclaimed              // taken by the pool as a candidate, not yet on the server
	rheld                 // on the server
)

// onServer reports whether s is on the server: its mutators then run there. A
// session built for the pool and not yet added (in CreateSessionFunc, say)
// is changed locally, like any other.
func onServer(s *Session) bool { return s.rstate.Load() == rheld }

// subscribeWait bounds how long Open waits for the server to confirm the
// subscription to the events.
const subscribeWait = 5 * time.Second

// awaitSubscription waits until the server has confirmed the subscription
// to the retirement events, so that a retirement another process publishes
// after Open has returned reaches this pool (SUBSCRIBE is only sent by
// Subscribe: a PUBLISH from another connection may be run first). When the
// server cannot be reached it gives up without an error: Open does not need
// the server, and the event loop subscribes once it is back.
func (b *redisBackend) awaitSubscription(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, subscribeWait)
	defer cancel()
	for {
		msg, err := b.ps.Receive(ctx)
		if err != nil {
			return
		}
		if _, ok := msg.(*redis.Subscription); ok {
			return
		}
	}
}

// setFailFast sets go-redis's retries, unless the URL sets them. By default
// a command is sent again after a network error, up to 3 times, each dial
// tried up to 5 times 100 ms apart: a caller would wait seconds to learn
// that the store is down, and a mark whose reply was lost could be counted
// twice (the server may have run it). Here nothing is sent twice (a
// restarted server's dead connections are found by go-redis's health check
// before use, not by a failed command) and a dial is tried once, within 2 s.
// The deadline of a call's context bounds its reads and writes too
// (ContextTimeoutEnabled), so that RedisOptions.Timeout and the deadlines
// of callers' contexts hold on the connection as well.
func setFailFast(ro *redis.Options, rawURL string) {
	q := url.Values{}
	if u, err := url.Parse(rawURL); err == nil {
		q = u.Query()
	}
	if !q.Has("max_retries") {
		ro.MaxRetries = -1
	}
	if !q.Has("dial_timeout") {
		ro.DialTimeout = 2 * time.Second
	}
	ro.DialerRetries = 1
	ro.ContextTimeoutEnabled = true
}

// eval runs a script of the request path. Alone it goes straight to a
// connection of its own; while other scripts are in flight it joins them in
// the autopipeliner's next batch. A lone caller so waits one round trip, not
// the autopipeliner's hand-offs too (64 against 121 µs a script here), and
// concurrent callers share round trips.
func (b *redisBackend) eval(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	sc := b.sc
	if b.inflight.Add(1) == 1 {
		sc = b.c
	}
	defer b.inflight.Add(-1)
	return script.Run(ctx, sc, keys, args...)
}

// autoPipeliner returns c's autopipeliner, nil when it has none. It sends
// the scripts that concurrent callers run at the same moment in one write
// and reads their replies in one go, so that under load a round trip carries
// many requests' scripts: in a test with 32 callers it ran 1.5 times as many
// scripts a second as one connection per call, with less CPU on both sides.
// Each caller still waits for its own reply, so a call is acknowledged only
// when the server has run it.
func autoPipeliner(c redis.UniversalClient) redis.Scripter {
	var (
		ap  *redis.AutoPipeliner
		err error
	)
	switch c := c.(type) {
	case *redis.Client:
		ap, err = c.AutoPipeline()
	case *redis.ClusterClient:
		ap, err = c.AutoPipeline()
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	return ap
}

// redisAddrs lists the server addresses of a client, for messages.
func redisAddrs(c redis.UniversalClient) []string {
	switch c := c.(type) {
	case *redis.Client:
		return []string{c.Options().Addr}
	case *redis.ClusterClient:
		return c.Options().Addrs
	}
	return []string{"?"}
}

// redactURL returns u with its password replaced by "xxxxx".
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "redis (unparsable URL)"
	}
	return pu.Redacted()
}

// redactErr returns err's text with the URL's password removed.
func redactErr(err error, u string) string {
	msg := err.Error()
	if pu, perr := url.Parse(u); perr == nil && pu.User != nil {
		if pw, ok := pu.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

// storeErr wraps an error of the server as ErrStoreUnavailable, naming it.
func (b *redisBackend) storeErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", b.name, err) // the caller gave up: the store may be fine
	}
	return fmt.Errorf("%w: %s: %w", ErrStoreUnavailable, b.name, err)
}

// detached returns the context of a call that takes none (MarkGood,
// UsableSessionsCount...): it ends after the pool's Redis timeout.
func (b *redisBackend) detached() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.timeout)
}

// report passes an error of a call that cannot return one to
// RedisOptions.OnError.
func (b *redisBackend) report(err error) {
	if err != nil && b.onErr != nil {
		b.onErr(err)
	}
}

// run starts the event loop: retirements published by other processes fire
// this pool's OnSessionRetired subscribers. go-redis resubscribes by itself
// after a reconnection; events published while disconnected are lost (Redis
// pub/sub keeps nothing).
func (b *redisBackend) run() {
	ch := b.ps.Channel()
	go func() {
		defer close(b.done)
		for msg := range ch {
			st, origin, err := b.decodeEvent(msg.Payload)
			if err != nil {
				b.report(fmt.Errorf("sessionpool: retirement event: %w", err))
				continue
			}
			if origin == b.origin {
				continue // fired when this process retired it
			}
			b.p.fireState(st)
		}
	}()
}

// close stops the event loop and, when the pool made it, the client.
func (b *redisBackend) close() error {
	err := b.ps.Close()
	<-b.done
	if b.own {
		err = errors.Join(err, b.c.Close())
	}
	return err
}

// micros converts unix nanoseconds to the microseconds the server keeps.
func micros(ns int64) int64 { return ns / 1000 }

// candidate returns a session built for the next creation: a spare one
// built earlier or a new one from CreateSessionFunc.
func (b *redisBackend) candidate(ctx context.Context) (*Session, error) {
	b.mu.Lock()
	if n := len(b.spare); n > 0 {
		s := b.spare[n-1]
		b.spare = b.spare[:n-1]
		b.mu.Unlock()
		return s, nil
	}
	b.mu.Unlock()
	s, err := b.p.build(ctx, b.p.defaults, true)
	if err != nil {
		return nil, err
	}
	if err := b.claim(s); err != nil {
		return nil, err
	}
	if s.id == "" {
		s.id = newID()
	}
	return s, nil
}

// claim takes s, just built by CreateSessionFunc or NewSession, for the pool
// to add: a session already held (or taken by an earlier call) is refused,
// as the memory pool refuses it, rather than renamed under its holder.
func (b *redisBackend) claim(s *Session) error {
	if !s.rstate.CompareAndSwap(rfree, rclaimed) {
		return fmt.Errorf("create session: %w: the session is already held", ErrForeignSession)
	}
	return nil
}

// keep saves an unused candidate (nil: none) for a later creation.
func (b *redisBackend) keep(s *Session) {
	if s == nil {
		return
	}
	b.mu.Lock()
	if len(b.spare) < maxSpare {
		b.spare = append(b.spare, s)
	}
	b.mu.Unlock()
}

// maxAgeMicros bounds a session's age on the server (142 years), so that
// its expiry stays exact in Lua's doubles (2^53 µs) and in unix nanoseconds
// (int64) for centuries.
const maxAgeMicros = 1 << 52

// candidateArgs returns the arguments of the allocation script for the
// candidate s. They do not depend on the time (the script stamps the
// creation), so they are built once per candidate and kept with it until
// its ID changes: a GetSession that finds a held session pays nothing for
// the candidate it carries along. s is not shared.
func (b *redisBackend) candidateArgs(s *Session) []any {
	if s.cand != nil && s.cand[0] == s.id {
		return s.cand
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := "0"
	if s.retired {
		r = "1"
	}
	age := min(micros(s.expires-s.created), maxAgeMicros)
	head, tail := recordParts(s)
	args := make([]any, 0, 5)
	args = append(args, s.id, strconv.FormatInt(age, 10), r, head, tail)
	s.jar.takeDelta() // the whole jar goes with the candidate
	for _, c := range s.jar.export(s.clock()) {
		args = append(args, cookieField(c.Name, c.Domain, c.Path), cookieValue(&c, 0))
	}
	s.cand = args
	return args
}

// stamp makes the candidate s created at now (µs), as the allocation script
// that added it did, and forgets its arguments.
func stamp(s *Session, now int64) {
	age := min(micros(s.expires-s.created), maxAgeMicros)
	s.created = now * 1000
	s.expires = (now + age) * 1000
	s.cand = nil
}

// alloc runs the allocation script for op ("get", "get:ID" or "add") with
// the candidate s (nil: none; the script then replies 'need' when it would
// create). When the script added s, s is stamped with the script's time.
func (b *redisBackend) alloc(ctx context.Context, op string, s *Session) ([]any, error) {
	p := b.p
	now := micros(p.nowNanos())
	args := []any{b.pfx, now, p.maxSize, strategyCode(p.strategy), op}
	if s != nil {
		args = append(args, b.candidateArgs(s)...)
	} else {
		args = append(args, "")
	}
	res, err := b.eval(ctx, allocScript, b.keys, args...).Slice()
	if err != nil {
		return nil, b.storeErr(err)
	}
	if kind, _ := res[0].(string); kind == "new" {
		stamp(s, now)
	}
	return res, nil
}

func strategyCode(s Strategy) string {
	switch s {
	case RoundRobin:
		return "o"
	case UseUntilFailure:
		return "u"
	}
	return "r"
}

// getSession is GetSession on the server: one script run (a spare
// candidate makes creating a session cost no extra round trip). When no
// candidate can be built (CreateSessionFunc failed), the script runs
// without one: only a call that must create a session fails, with that
// error, as with the memory pool.
func (b *redisBackend) getSession(ctx context.Context) (*Session, error) {
	if b.p.isClosed() {
		return nil, ErrPoolClosed
	}
	p := b.p
	cand, cerr := b.candidate(ctx)
	if cerr != nil && ctx.Err() != nil {
		return nil, cerr
	}
	op := "get"
	if p.strategy == UseUntilFailure {
		b.mu.Lock()
		if b.last != "" {
			op = "get:" + b.last
		}
		b.mu.Unlock()
	}
	for range 8 {
		res, err := b.alloc(ctx, op, cand)
		if err != nil {
			b.keep(cand)
			return nil, err
		}
		var s *Session
		switch kind, _ := res[0].(string); kind {
		case "hit":
			b.keep(cand)
			if s, err = b.decodeReply(res[1:]); err != nil {
				return nil, err
			}
		case "new":
			s = cand
			s.rstate.Store(rheld)
		case "need":
			if cerr == nil {
				return nil, fmt.Errorf("%w: %s: unexpected reply %q", ErrStoreUnavailable, b.name, kind)
			}
			return nil, cerr
		case "taken":
			cand.id = newID()
			continue
		case "bad":
			b.keep(cand)
			if id, _ := res[1].(string); p.strategy == UseUntilFailure {
				b.mu.Lock()
				if b.last == id {
					b.last = "" // draw another next time
				}
				b.mu.Unlock()
			}
			return nil, b.badSession(res[1:])
		default:
			b.keep(cand)
			return nil, fmt.Errorf("%w: %s: unexpected reply %q", ErrStoreUnavailable, b.name, kind)
		}
		if p.strategy == UseUntilFailure {
			b.mu.Lock()
			b.last = s.id
			b.mu.Unlock()
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s: no free session ID after 8 draws", ErrStoreUnavailable, b.name)
}

// addSession is AddSession on the server: the session is built and then
// added (see add).
func (b *redisBackend) addSession(ctx context.Context, o SessionOptions) (*Session, error) {
	if b.p.isClosed() {
		return nil, ErrPoolClosed
	}
	s, err := b.p.build(ctx, o, false)
	if err != nil {
		return nil, err
	}
	return b.add(ctx, s, o.ID != "")
}

// add adds s (built, not held) to the server under its ID; without one it
// gets a fresh ID. named: the ID was asked for, so that a held one fails
// with ErrSessionExists rather than another being drawn.
func (b *redisBackend) add(ctx context.Context, s *Session, named bool) (*Session, error) {
	if err := b.claim(s); err != nil {
		return nil, err
	}
	if s.id == "" {
		s.id = newID()
	}
	for range 8 {
		res, err := b.alloc(ctx, "add", s)
		if err != nil {
			return nil, err
		}
		switch kind, _ := res[0].(string); kind {
		case "new":
			s.rstate.Store(rheld)
			return s, nil
		case "exists", "taken":
			if named {
				return nil, fmt.Errorf("session %q: %w", s.id, ErrSessionExists)
			}
			s.id = newID()
		case "bad":
			return nil, b.badSession(res[1:])
		default:
			return nil, fmt.Errorf("%w: %s: unexpected reply %q", ErrStoreUnavailable, b.name, kind)
		}
	}
	return nil, fmt.Errorf("%w: %s: no free session ID after 8 draws", ErrStoreUnavailable, b.name)
}

// getByID reads one session; nil when it is not held.
func (b *redisBackend) getByID(ctx context.Context, id string) (*Session, error) {
	if b.p.isClosed() {
		return nil, ErrPoolClosed
	}
	res, err := b.eval(ctx, readScript, []string{b.pfx + "s:" + id, b.pfx + "c:" + id}).Slice()
	if err != nil {
		return nil, b.storeErr(err)
	}
	if res[0] == nil {
		return nil, nil
	}
	return b.decodeReply(append([]any{id}, res...))
}

// counts reads the counts on the server; errors go to RedisOptions.OnError
// and make both 0.
func (b *redisBackend) counts() (usable, unusable int) {
	ctx, cancel := b.detached()
	defer cancel()
	held, retired, expired, err := b.readCounts(ctx)
	if err != nil {
		b.report(fmt.Errorf("count sessions: %w", err))
		return 0, 0
	}
	return held - retired - expired, retired + expired
}

// readCounts returns the held, retired and expired-not-retired sessions.
func (b *redisBackend) readCounts(ctx context.Context) (held, retired, expired int, err error) {
	res, err := countScript.Run(ctx, b.c, b.keys, micros(b.p.nowNanos())).Int64Slice()
	if err != nil {
		return 0, 0, 0, b.storeErr(err)
	}
	return int(res[0]), int(res[1]), int(res[2]), nil
}

// sessions reads every held session; errors go to RedisOptions.OnError:
// nil when the server cannot be read, and a session whose data does not
// parse is left out.
func (b *redisBackend) sessions() []*Session {
	ctx, cancel := b.detached()
	defer cancel()
	ss, err := b.readSessions(ctx)
	if err != nil {
		b.report(fmt.Errorf("list sessions: %w", err))
	}
	return ss
}

// readSessions reads every held session, in no particular order. A session
// that does not parse is left out, its error joined to the one returned.
func (b *redisBackend) readSessions(ctx context.Context) ([]*Session, error) {
	ids, err := b.c.SMembers(ctx, b.keys[0]).Result()
	if err != nil {
		return nil, b.storeErr(err)
	}
	out := make([]*Session, 0, len(ids))
	var bad []error
	for chunk := range slices.Chunk(ids, 256) {
		pipe := b.c.Pipeline()
		type pair struct {
			rec     *redis.StringCmd
			cookies *redis.MapStringStringCmd
		}
		cmds := make([]pair, len(chunk))
		for i, id := range chunk {
			cmds[i] = pair{pipe.Get(ctx, b.pfx+"s:"+id), pipe.HGetAll(ctx, b.pfx+"c:"+id)}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, b.storeErr(err)
		}
		for i, id := range chunk {
			rec, err := cmds[i].rec.Result()
			if errors.Is(err, redis.Nil) {
				continue // gone since SMEMBERS
			}
			s, err := b.sessionFrom(id, rec, slices.Collect(maps.Values(cmds[i].cookies.Val())))
			if err != nil {
				bad = append(bad, err)
				continue
			}
			out = append(out, s)
		}
	}
	return out, errors.Join(bad...)
}

// decodeReply builds a session from {id, session record, cookie hash as a
// flat array}.
func (b *redisBackend) decodeReply(res []any) (*Session, error) {
	id, _ := res[0].(string)
	rec, _ := res[1].(string)
	var cookies []string
	if cf, _ := res[2].([]any); len(cf) > 0 {
		cookies = make([]string, 0, len(cf)/2)
		for i := 1; i < len(cf); i += 2 {
			v, _ := cf[i].(string)
			cookies = append(cookies, v)
		}
	}
	return b.sessionFrom(id, rec, cookies)
}

// badSession is the error of a session the scripts found unparsable, from
// the reply {id, session record, cookie hash}: sessionFrom's, which names
// the fields.
func (b *redisBackend) badSession(res []any) error {
	if _, err := b.decodeReply(res); err != nil {
		return err
	}
	id, _ := res[0].(string)
	return fmt.Errorf("%w: %s: session %q: a field does not parse", ErrInvalidState, b.name, id)
}

// recordFields names the space-separated fields of a session record's first
// line, in order (see redis_scripts.go); p and d are its second and third
// lines.
var recordFields = [...]string{"v", "u", "e", "r", "mu", "me", "ed", "c", "x"}

// recordParts returns s's record, as the server keeps it, without its
// creation and expiry: the first line up to them and the rest from the end
// of the first line. s.mu must be held.
func recordParts(s *Session) (head, tail string) {
	l := s.lim()
	dst := make([]byte, 0, 64)
	dst = strconv.AppendInt(dst, s.ver, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(s.usage), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendFloat(dst, s.errScore, 'g', -1, 64)
	if s.retired {
		dst = append(dst, " 1 "...)
	} else {
		dst = append(dst, " 0 "...)
	}
	dst = strconv.AppendInt(dst, int64(l.maxUsage), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendFloat(dst, l.maxErr, 'g', -1, 64)
	dst = append(dst, ' ')
	dst = strconv.AppendFloat(dst, l.errDecr, 'g', -1, 64)
	return string(dst), "\n" + s.proxyURL + "\n" + string(s.userData)
}

// record is a session record split into its fields (see recordFields).
type record struct {
	f    [len(recordFields)]string
	p, d string
}

// get returns the field named name ("v", ..., "x", "p", "d").
func (r *record) get(name string) string {
	switch name {
	case "p":
		return r.p
	case "d":
		return r.d
	}
	return r.f[slices.Index(recordFields[:], name)]
}

// splitRecord splits a session record into its fields; ok is false when it
// does not have the record's shape.
func splitRecord(rec string) (r record, ok bool) {
	head, rest, ok1 := strings.Cut(rec, "\n")
	r.p, r.d, ok = strings.Cut(rest, "\n")
	if !ok1 || !ok {
		return r, false
	}
	for i := range r.f {
		var more bool
		r.f[i], head, more = strings.Cut(head, " ")
		if more != (i < len(r.f)-1) {
			return r, false
		}
	}
	return r, true
}

// sessionFrom builds this process's copy of a session from its record and
// its cookie values. A record that does not parse is an error naming the
// session and the field: something else wrote the pool's keys.
func (b *redisBackend) sessionFrom(id string, rec string, cookies []string) (*Session, error) {
	p := b.p
	h, ok := splitRecord(rec)
	if !ok {
		return nil, fmt.Errorf("%w: %s: session %q: its record is not \"v u e r mu me ed c x\\np\\nd\" (got %q)", ErrInvalidState, b.name, id, clip(rec))
	}
	var errs []error
	bad := func(field string) {
		errs = append(errs, fmt.Errorf("%w: %s: session %q: field %q is %q", ErrInvalidState, b.name, id, field, clip(h.get(field))))
	}
	intField := func(k string) int64 {
		v, err := strconv.ParseInt(h.get(k), 10, 64)
		if err != nil {
			bad(k)
		}
		return v
	}
	floatField := func(k string) float64 {
		v, err := strconv.ParseFloat(h.get(k), 64)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			bad(k)
		}
		return v
	}
	u, mu, c, x, v := intField("u"), intField("mu"), intField("c"), intField("x"), intField("v")
	e, me, ed := floatField("e"), floatField("me"), floatField("ed")
	r := h.get("r")
	if r != "0" && r != "1" {
		bad("r")
	}
	var data []byte
	if h.d != "" {
		if h.d[0] != '{' || !json.Valid([]byte(h.d)) {
			bad("d")
		}
		data = []byte(h.d)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Session{
		pool:     p,
		usage:    int(u),
		errScore: e,
		retired:  r == "1",
		expires:  x * 1000,
		limits:   p.limitsFor(limits{maxUsage: int(mu), maxErr: me, errDecr: ed}),
		sessionCold: &sessionCold{
			id:       id,
			proxyURL: h.p,
			created:  c * 1000,
			userData: data,
			ver:      v,
			idx:      -1,
			hidx:     -1,
		},
	}
	if err := s.jar.load(decodeCookies(cookies), p.now()); err != nil {
		return nil, fmt.Errorf("%w: %s: session %q: %w", ErrInvalidState, b.name, id, err)
	}
	s.jar.track = true
	s.rstate.Store(rheld)
	s.publishLocked() // s is not shared yet
	return s, nil
}

// clip shortens a value quoted in a message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// cookieField is a cookie's field in its session's cookie hash.
func cookieField(name, domain, path string) string {
	return name + "\x00" + domain + "\x00" + path
}

// cookieValue is a cookie as stored, its fields separated by tabs (which
// no cookie name, value, domain or path holds): its sequence number (the
// order among cookies created at the same instant), its flags (h: host
// only, s: secure, x: HttpOnly, each or '-'), name, value, domain, path,
// SameSite, expiry ("-" for a session cookie) and creation, times as unix
// seconds.nanoseconds. Not JSON: a request reads every cookie of its
// session, and encoding/json took 2 µs and 11 allocations a cookie.
func cookieValue(c *Cookie, seq uint64) string {
	b := make([]byte, 0, 64+len(c.Name)+len(c.Value)+len(c.Domain)+len(c.Path))
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '\t', flagByte(c.HostOnly, 'h'), flagByte(c.Secure, 's'), flagByte(c.HTTPOnly, 'x'), '\t')
	for _, f := range [...]string{c.Name, c.Value, c.Domain, c.Path, c.SameSite} {
		b = append(b, f...)
		b = append(b, '\t')
	}
	if c.Expires.IsZero() {
		b = append(b, '-')
	} else {
		b = appendUnix(b, c.Expires)
	}
	b = append(b, '\t')
	return string(appendUnix(b, c.Creation))
}

func flagByte(set bool, c byte) byte {
	if set {
		return c
	}
	return '-'
}

// appendUnix appends t as unix seconds, '.', nanoseconds.
func appendUnix(b []byte, t time.Time) []byte {
	b = strconv.AppendInt(b, t.Unix(), 10)
	b = append(b, '.')
	return strconv.AppendInt(b, int64(t.Nanosecond()), 10)
}

// parseUnix parses appendUnix's form.
func parseUnix(s string) (time.Time, bool) {
	sec, ns, ok := strings.Cut(s, ".")
	a, err1 := strconv.ParseInt(sec, 10, 64)
	n, err2 := strconv.ParseInt(ns, 10, 64)
	if !ok || err1 != nil || err2 != nil || n < 0 || n >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(a, n).UTC(), true
}

// parseCookieValue parses cookieValue's form; ok is false when v does not
// have it.
func parseCookieValue(v string) (c Cookie, seq uint64, ok bool) {
	var f [9]string
	for i := range f {
		var more bool
		f[i], v, more = strings.Cut(v, "\t")
		if more != (i < len(f)-1) {
			return c, 0, false
		}
	}
	seq, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || len(f[1]) != 3 {
		return c, 0, false
	}
	c = Cookie{
		Name: f[2], Value: f[3], Domain: f[4], Path: f[5], SameSite: f[6],
		HostOnly: f[1][0] == 'h', Secure: f[1][1] == 's', HTTPOnly: f[1][2] == 'x',
	}
	if f[7] != "-" {
		if c.Expires, ok = parseUnix(f[7]); !ok {
			return c, 0, false
		}
	}
	c.Creation, ok = parseUnix(f[8])
	return c, seq, ok
}

// decodeCookies parses stored cookie values, in the order the jar needs
// (creation, then sequence). Values that do not parse are skipped: one bad
// cookie must not cost a session all the others.
func decodeCookies(vals []string) []Cookie {
	type seqCookie struct {
		seq uint64
		c   Cookie
	}
	parsed := make([]seqCookie, 0, len(vals))
	for _, v := range vals {
		c, seq, ok := parseCookieValue(v)
		if !ok {
			continue
		}
		if _, err := entryFromCookie(&c); err != nil {
			continue
		}
		parsed = append(parsed, seqCookie{seq, c})
	}
	slices.SortFunc(parsed, func(a, b seqCookie) int {
		if c := a.c.Creation.Compare(b.c.Creation); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	out := make([]Cookie, len(parsed))
	for i := range parsed {
		out[i] = parsed[i].c
	}
	return out
}

// deltaArgs turns a jar's changes into field/value pairs for the commit
// script: an empty value deletes; a change received over plain http is
// marked with a leading '-' (the script then leaves a Secure cookie alone).
func deltaArgs(args []any, delta []cookieDelta) []any {
	for i := range delta {
		d := &delta[i]
		f := cookieField(d.e.name(), d.e.domain, d.e.path)
		mark := ""
		if d.insecure {
			mark = "-"
		}
		if d.del {
			args = append(args, f, mark)
			continue
		}
		c := d.e.export()
		args = append(args, f, mark+cookieValue(&c, d.e.seq))
	}
	return args
}

// requeueDelta puts back the cookie changes of a commit that failed, so
// that the copy's next commit sends them. A cookie the jar still holds is
// sent as it is now: an older state must not undo a later change (queued
// since, or sent by a concurrent commit of the same copy).
func requeueDelta(j *jar, failed []cookieDelta) {
	if len(failed) == 0 {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]cookieDelta, 0, len(failed)+len(j.delta))
	for _, d := range failed {
		name := d.e.name()
		for i := range j.entries {
			if e := &j.entries[i]; e.name() == name && e.domain == d.e.domain && e.path == d.e.path {
				d = cookieDelta{e: *e, insecure: d.insecure}
				break
			}
		}
		out = append(out, d)
	}
	j.delta = append(out, j.delta...)
}

// commit sends s's cookie changes and the mark m in one script run and
// updates s with the server's answer. A session not on the server yet is
// changed locally.
func (b *redisBackend) commit(ctx context.Context, s *Session, m Mark) error {
	if !onServer(s) {
		s.applyLocal(m)
		return nil
	}
	delta := s.jar.takeDelta()
	if m == NoMark && len(delta) == 0 {
		return nil
	}
	p := s.pool
	args := make([]any, 0, 5+2*len(delta))
	args = append(args, m.code(), micros(p.nowNanos()), b.channel, b.origin, s.id)
	args = deltaArgs(args, delta)
	keys := []string{b.pfx + "s:" + s.id, b.pfx + "c:" + s.id, b.keys[2], b.keys[1]}
	res, err := b.eval(ctx, commitScript, keys, args...).Slice()
	if errors.Is(err, redis.Nil) {
		// The session is gone from the server (evicted or expired): this
		// copy is spent too. Nothing is fired: its retirement, if any, was.
		s.mu.Lock()
		s.retired = true
		s.publishLocked()
		s.mu.Unlock()
		return nil
	}
	if err != nil {
		requeueDelta(&s.jar, delta) // the mark is not sent again: it may have been counted
		return fmt.Errorf("session %q: %w", s.id, b.storeErr(err))
	}
	if len(res) == 2 {
		if kind, _ := res[0].(string); kind == "bad" {
			requeueDelta(&s.jar, delta)
			return b.badSession([]any{s.id, res[1], []any{}})
		}
	}
	if len(res) != 5 {
		return fmt.Errorf("%w: %s: unexpected reply to a mark", ErrStoreUnavailable, b.name)
	}
	u, _ := res[0].(int64)
	es, _ := res[1].(string)
	e, _ := strconv.ParseFloat(es, 64)
	r, _ := res[2].(int64)
	v, _ := res[3].(int64)
	fired, _ := res[4].(int64)
	s.mu.Lock()
	if v > s.ver {
		s.usage, s.errScore, s.retired, s.ver = int(u), e, r == 1, v
		s.publishLocked()
	}
	s.mu.Unlock()
	if fired == 1 {
		p.fireRetired(s)
	}
	return nil
}

// commitDetached is commit for the calls that take no context and return
// no error: bounded by the pool's Redis timeout, its error reported.
func (b *redisBackend) commitDetached(s *Session, m Mark) {
	if !onServer(s) {
		s.applyLocal(m)
		return
	}
	ctx, cancel := b.detached()
	defer cancel()
	b.report(b.commit(ctx, s, m))
}

// setUserData stores s's user data on the server (nothing to do for a
// session not on it yet).
func (b *redisBackend) setUserData(s *Session, data []byte) error {
	if !onServer(s) {
		return nil
	}
	ctx, cancel := b.detached()
	defer cancel()
	if err := userDataScript.Run(ctx, b.c, []string{b.pfx + "s:" + s.id}, string(data)).Err(); err != nil {
		return fmt.Errorf("session %q: %w", s.id, b.storeErr(err))
	}
	return nil
}

// event is a retirement as published by the commit script.
type event struct {
	Origin  string          `json:"o"`
	ID      string          `json:"id"`
	Record  string          `json:"s"`
	Cookies json.RawMessage `json:"c"` // an array, or {} when empty (Lua cannot tell)
}

// decodeEvent parses a published retirement into the session's state and
// the origin tag of the pool that published it.
func (b *redisBackend) decodeEvent(payload string) (SessionState, string, error) {
	var ev event
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		return SessionState{}, "", err
	}
	var cookies []string
	if c := bytes.TrimSpace(ev.Cookies); len(c) > 0 && c[0] == '[' {
		if err := json.Unmarshal(c, &cookies); err != nil {
			return SessionState{}, "", err
		}
	}
	s, err := b.sessionFrom(ev.ID, ev.Record, cookies)
	if err != nil {
		return SessionState{}, "", err
	}
	return s.State(), ev.Origin, nil
}

func (b *redisBackend) uniqueID() string { return newID() }

// prepare makes the session's jar record its changes, which the commit
// script sends cookie by cookie.
func (b *redisBackend) prepare(s *Session) { s.jar.track = true }

// retired has nothing to do: a session on the server retires there (the
// commit script), and one not on it yet is in no list.
func (b *redisBackend) retired(*Session) {}
