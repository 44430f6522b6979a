package sessionpool

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	c       redis.UniversalClient
	sc      redis.Scripter // runs the scripts on the request path: c's autopipeliner when it has one
	own     bool           // the pool made c and closes it
	name    string         // the store in messages: its URL without the password
	pfx     string         // "sp:{KEY}:"
	keys    []string
	channel string // retirement events
	origin  string // this pool's tag in the events it publishes
	onErr   func(error)

	ps   *redis.PubSub
	done chan struct{} // closed when the event loop returns

	mu    sync.Mutex
	spare []*Session // candidates built and not yet needed
	last  string     // UseUntilFailure: the ID this process returned last
}

// maxSpare bounds the candidates kept between GetSession calls.
const maxSpare = 16

func openRedis(ctx context.Context, p *Pool, opts *Options) (*redisBackend, error) {
	b := &redisBackend{
		c:      opts.RedisClient,
		origin: newID(),
		onErr:  opts.OnStoreError,
		done:   make(chan struct{}),
	}
	if b.c == nil {
		ro, err := redis.ParseURL(opts.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("%w: RedisURL: %v", ErrInvalidOptions, redactErr(err, opts.RedisURL))
		}
		setFailFast(ro, opts.RedisURL)
		b.c = redis.NewClient(ro)
		b.own = true
		b.name = redactURL(opts.RedisURL)
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
	return b, nil
}

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

// report passes an error of a call that cannot return one to OnStoreError.
func (b *redisBackend) report(err error) {
	if err != nil && b.onErr != nil {
		b.onErr(err)
	}
}

// run starts the event loop: retirements published by other processes fire
// this pool's OnSessionRetired subscribers. go-redis resubscribes by itself
// after a reconnection; events published while disconnected are lost (Redis
// pub/sub keeps nothing).
func (b *redisBackend) run(p *Pool) {
	ch := b.ps.Channel()
	go func() {
		defer close(b.done)
		for msg := range ch {
			st, origin, err := decodeEvent(p, msg.Payload)
			if err != nil {
				b.report(fmt.Errorf("sessionpool: retirement event: %w", err))
				continue
			}
			if origin == b.origin {
				continue // fired when this process retired it
			}
			p.fireState(st)
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
func (b *redisBackend) candidate(ctx context.Context, p *Pool) (*Session, error) {
	b.mu.Lock()
	if n := len(b.spare); n > 0 {
		s := b.spare[n-1]
		b.spare = b.spare[:n-1]
		b.mu.Unlock()
		return s, nil
	}
	b.mu.Unlock()
	s, err := p.build(ctx, p.defaults, true)
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

// candidateArgs stamps s as created at now (unix ns) and returns its
// arguments for the allocation script.
func (b *redisBackend) candidateArgs(s *Session, now int64) []any {
	maxAge := s.expires - s.created
	created := micros(now) * 1000
	s.created = created
	s.expires = addNanos(created, time.Duration(maxAge))
	ttl := max(1, (s.expires-now+int64(time.Millisecond)-1)/int64(time.Millisecond))
	s.mu.Lock()
	defer s.mu.Unlock()
	r := "0"
	if s.retired {
		r = "1"
	}
	l := s.lim()
	hash := []any{
		"u", strconv.Itoa(s.usage),
		"e", strconv.FormatFloat(s.errScore, 'g', -1, 64),
		"r", r,
		"mu", strconv.Itoa(l.maxUsage),
		"me", strconv.FormatFloat(l.maxErr, 'g', -1, 64),
		"ed", strconv.FormatFloat(l.errDecr, 'g', -1, 64),
		"c", strconv.FormatInt(micros(s.created), 10),
		"x", strconv.FormatInt(micros(s.expires), 10),
		"p", s.proxyURL,
		"d", string(s.userData),
		"v", "0",
	}
	args := make([]any, 0, 5+len(hash))
	args = append(args, s.id, ttl, strconv.FormatInt(micros(s.expires), 10), r, len(hash))
	args = append(args, hash...)
	s.jar.takeDelta() // the whole jar goes with the candidate
	for _, c := range s.jar.export(time.Unix(0, now)) {
		args = append(args, cookieField(c.Name, c.Domain, c.Path), cookieValue(&c, 0))
	}
	return args
}

// alloc runs the allocation script for op ("get", "get:ID" or "add") with
// the candidate s (nil: none; the script then replies 'need' when it would
// create).
func (b *redisBackend) alloc(ctx context.Context, p *Pool, op string, s *Session) ([]any, error) {
	now := p.nowNanos()
	args := []any{b.pfx, micros(now), p.maxSize, strategyCode(p.strategy), op}
	if s != nil {
		args = append(args, b.candidateArgs(s, now)...)
	} else {
		args = append(args, "")
	}
	res, err := allocScript.Run(ctx, b.sc, b.keys, args...).Slice()
	if err != nil {
		return nil, b.storeErr(err)
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
func (b *redisBackend) getSession(ctx context.Context, p *Pool) (*Session, error) {
	cand, cerr := b.candidate(ctx, p)
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
		res, err := b.alloc(ctx, p, op, cand)
		if err != nil {
			b.keep(cand)
			return nil, err
		}
		var s *Session
		switch kind, _ := res[0].(string); kind {
		case "hit":
			b.keep(cand)
			if s, err = b.decodeReply(p, res[1:]); err != nil {
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
			return nil, b.badSession(p, res[1:])
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

// addSession is AddSession on the server: s (built, not held) is added
// under its ID; without one it gets a fresh ID.
func (b *redisBackend) addSession(ctx context.Context, p *Pool, s *Session, named bool) (*Session, error) {
	if err := b.claim(s); err != nil {
		return nil, err
	}
	if s.id == "" {
		s.id = newID()
	}
	for range 8 {
		res, err := b.alloc(ctx, p, "add", s)
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
			return nil, b.badSession(p, res[1:])
		default:
			return nil, fmt.Errorf("%w: %s: unexpected reply %q", ErrStoreUnavailable, b.name, kind)
		}
	}
	return nil, fmt.Errorf("%w: %s: no free session ID after 8 draws", ErrStoreUnavailable, b.name)
}

// getByID reads one session; nil when it is not held.
func (b *redisBackend) getByID(ctx context.Context, p *Pool, id string) (*Session, error) {
	res, err := readScript.Run(ctx, b.sc, []string{b.pfx + "s:" + id, b.pfx + "c:" + id}).Slice()
	if err != nil {
		return nil, b.storeErr(err)
	}
	if h, _ := res[0].([]any); len(h) == 0 {
		return nil, nil
	}
	return b.decodeReply(p, append([]any{id}, res...))
}

// counts returns the held, retired and expired-not-retired sessions.
func (b *redisBackend) counts(ctx context.Context, p *Pool) (held, retired, expired int, err error) {
	res, err := countScript.Run(ctx, b.c, b.keys, micros(p.nowNanos())).Int64Slice()
	if err != nil {
		return 0, 0, 0, b.storeErr(err)
	}
	return int(res[0]), int(res[1]), int(res[2]), nil
}

// sessions reads every held session, in no particular order. A session
// that does not parse is left out, its error joined to the one returned.
func (b *redisBackend) sessions(ctx context.Context, p *Pool) ([]*Session, error) {
	ids, err := b.c.SMembers(ctx, b.keys[0]).Result()
	if err != nil {
		return nil, b.storeErr(err)
	}
	out := make([]*Session, 0, len(ids))
	var bad []error
	for chunk := range slices.Chunk(ids, 256) {
		pipe := b.c.Pipeline()
		cmds := make([][2]*redis.MapStringStringCmd, len(chunk))
		for i, id := range chunk {
			cmds[i] = [2]*redis.MapStringStringCmd{pipe.HGetAll(ctx, b.pfx+"s:"+id), pipe.HGetAll(ctx, b.pfx+"c:"+id)}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, b.storeErr(err)
		}
		for i, id := range chunk {
			h, c := cmds[i][0].Val(), cmds[i][1].Val()
			if len(h) == 0 {
				continue // gone since SMEMBERS
			}
			s, err := b.sessionFrom(p, id, h, slices.Collect(mapValues(c)))
			if err != nil {
				bad = append(bad, err)
				continue
			}
			out = append(out, s)
		}
	}
	return out, errors.Join(bad...)
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// decodeReply builds a session from {id, session hash, cookie hash} as
// flat arrays.
func (b *redisBackend) decodeReply(p *Pool, res []any) (*Session, error) {
	id, _ := res[0].(string)
	flat, _ := res[1].([]any)
	h := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		h[k] = v
	}
	var cookies []string
	if cf, _ := res[2].([]any); len(cf) > 0 {
		cookies = make([]string, 0, len(cf)/2)
		for i := 1; i < len(cf); i += 2 {
			v, _ := cf[i].(string)
			cookies = append(cookies, v)
		}
	}
	return b.sessionFrom(p, id, h, cookies)
}

// badSession is the error of a session the scripts found unparsable, from
// the reply {id, session hash, cookie hash}: sessionFrom's, which names the
// fields.
func (b *redisBackend) badSession(p *Pool, res []any) error {
	if _, err := b.decodeReply(p, res); err != nil {
		return err
	}
	id, _ := res[0].(string)
	return fmt.Errorf("%w: %s: session %q: a field does not parse", ErrInvalidState, b.name, id)
}

// sessionFrom builds this process's copy of a session from its hash and its
// cookie values. A hash that does not parse is an error naming the session:
// something else wrote the pool's keys.
func (b *redisBackend) sessionFrom(p *Pool, id string, h map[string]string, cookies []string) (*Session, error) {
	bad := func(field string) error {
		return fmt.Errorf("%w: %s: session %q: field %q is %q", ErrInvalidState, b.name, id, field, clip(h[field]))
	}
	intField := func(k string) (int64, error) {
		v, err := strconv.ParseInt(h[k], 10, 64)
		if err != nil {
			return 0, bad(k)
		}
		return v, nil
	}
	floatField := func(k string) (float64, error) {
		v, err := strconv.ParseFloat(h[k], 64)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, bad(k)
		}
		return v, nil
	}
	var errs []error
	u, err := intField("u")
	errs = append(errs, err)
	mu, err := intField("mu")
	errs = append(errs, err)
	c, err := intField("c")
	errs = append(errs, err)
	x, err := intField("x")
	errs = append(errs, err)
	v, err := intField("v")
	errs = append(errs, err)
	e, err := floatField("e")
	errs = append(errs, err)
	me, err := floatField("me")
	errs = append(errs, err)
	ed, err := floatField("ed")
	errs = append(errs, err)
	if r := h["r"]; r != "0" && r != "1" {
		errs = append(errs, bad("r"))
	}
	var data []byte
	if d := h["d"]; d != "" {
		if !json.Valid([]byte(d)) || d[0] != '{' {
			errs = append(errs, bad("d"))
		}
		data = []byte(d)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Session{
		pool:     p,
		usage:    int(u),
		errScore: e,
		retired:  h["r"] == "1",
		expires:  x * 1000,
		limits:   p.limitsFor(limits{maxUsage: int(mu), maxErr: me, errDecr: ed}),
		sessionCold: &sessionCold{
			id:       id,
			proxyURL: h["p"],
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

// cookieValue is a cookie as stored: its sequence number (the order among
// cookies created at the same instant), a space, its JSON.
func cookieValue(c *Cookie, seq uint64) string {
	b := strconv.AppendUint(make([]byte, 0, 160), seq, 10)
	b = append(b, ' ')
	return string(appendCookie(b, c))
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
		num, js, ok := strings.Cut(v, " ")
		seq, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil {
			continue
		}
		var c Cookie
		if json.Unmarshal([]byte(js), &c) != nil {
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

// commit sends s's cookie changes and the mark m (one of "n", "g", "b",
// "r") in one script run and updates s with the server's answer.
func (b *redisBackend) commit(ctx context.Context, s *Session, m string) error {
	delta := s.jar.takeDelta()
	if m == "n" && len(delta) == 0 {
		return nil
	}
	p := s.pool
	args := make([]any, 0, 5+2*len(delta))
	args = append(args, m, micros(p.nowNanos()), b.channel, b.origin, s.id)
	args = deltaArgs(args, delta)
	keys := []string{b.pfx + "s:" + s.id, b.pfx + "c:" + s.id, b.keys[2], b.keys[1]}
	res, err := commitScript.Run(ctx, b.sc, keys, args...).Slice()
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
			return b.badSession(p, []any{s.id, res[1], []any{}})
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

// setUserData stores s's user data on the server.
func (b *redisBackend) setUserData(ctx context.Context, s *Session, data []byte) error {
	if err := userDataScript.Run(ctx, b.c, []string{b.pfx + "s:" + s.id}, string(data)).Err(); err != nil {
		return fmt.Errorf("session %q: %w", s.id, b.storeErr(err))
	}
	return nil
}

// event is a retirement as published by the commit script.
type event struct {
	Origin  string          `json:"o"`
	ID      string          `json:"id"`
	Hash    []string        `json:"h"`
	Cookies json.RawMessage `json:"c"` // an array, or {} when empty (Lua cannot tell)
}

// decodeEvent parses a published retirement into the session's state and
// the origin tag of the pool that published it.
func decodeEvent(p *Pool, payload string) (SessionState, string, error) {
	var ev event
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		return SessionState{}, "", err
	}
	h := make(map[string]string, len(ev.Hash)/2)
	for i := 0; i+1 < len(ev.Hash); i += 2 {
		h[ev.Hash[i]] = ev.Hash[i+1]
	}
	var cookies []string
	if c := bytes.TrimSpace(ev.Cookies); len(c) > 0 && c[0] == '[' {
		if err := json.Unmarshal(c, &cookies); err != nil {
			return SessionState{}, "", err
		}
	}
	s, err := p.rb.sessionFrom(p, ev.ID, h, cookies)
	if err != nil {
		return SessionState{}, "", err
	}
	return s.State(), ev.Origin, nil
}
