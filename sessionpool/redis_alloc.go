package sessionpool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The allocation side of the Redis backend: the candidates a GetSession
// carries to the allocation script, the script runs of GetSession,
// AddSession and GetSessionByID, and the reads of the counts and of every
// session.

// maxSpare bounds the candidates kept between GetSession calls: enough for
// the concurrency of a busy proxy, so that a candidate built for a call that
// found a held session is rarely thrown away (its CreateSessionFunc call,
// which may count or assign an upstream, would be wasted).
const maxSpare = 64

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
// create) and returns the kind of its reply and the reply. When the script
// added s, s is stamped with the script's time. A reply of another shape
// than the script's (see allocKind) is an error wrapping
// ErrStoreUnavailable.
func (b *redisBackend) alloc(ctx context.Context, op string, s *Session) (string, []any, error) {
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
		return "", nil, b.storeErr(err)
	}
	kind, ok := allocKind(res, s != nil)
	if !ok {
		return "", nil, b.unexpectedReply(res)
	}
	if kind == "new" {
		stamp(s, now)
	}
	return kind, res, nil
}

// allocKind returns the kind of an allocation script's reply and whether
// the reply has that kind's shape (see allocScript). 'new' and 'taken'
// answer only a run that carried a candidate (cand).
func allocKind(res []any, cand bool) (kind string, ok bool) {
	if len(res) == 0 {
		return "", false
	}
	kind, _ = res[0].(string)
	switch kind {
	case "hit", "bad":
		return kind, len(res) == 4 && isSessionReply(res[1:])
	case "new", "taken":
		return kind, len(res) == 1 && cand
	case "exists", "need":
		return kind, len(res) == 1
	}
	return kind, false
}

// isSessionReply reports whether res is {id, session record, cookie hash},
// the shape decodeReply takes.
func isSessionReply(res []any) bool {
	if len(res) != 3 {
		return false
	}
	_, id := res[0].(string)
	_, rec := res[1].(string)
	_, cookies := res[2].([]any)
	return id && rec && cookies
}

// unexpectedReply is the error of a script reply that does not have the
// script's shape: the server (or something between) is not what the pool
// expects.
func (b *redisBackend) unexpectedReply(res any) error {
	return fmt.Errorf("%w: %s: unexpected reply %s", ErrStoreUnavailable, b.name, clip(fmt.Sprint(res)))
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
		kind, res, err := b.alloc(ctx, op, cand)
		if err != nil {
			b.keep(cand)
			return nil, err
		}
		var s *Session
		switch kind {
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
		kind, res, err := b.alloc(ctx, "add", s)
		if err != nil {
			return nil, err
		}
		switch kind {
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
	if len(res) != 2 {
		return nil, b.unexpectedReply(res)
	}
	if res[0] == nil {
		return nil, nil
	}
	reply := []any{id, res[0], res[1]}
	if !isSessionReply(reply) {
		return nil, b.unexpectedReply(res)
	}
	return b.decodeReply(reply)
}

// counts reads the counts on the server; errors go to RedisOptions.OnError
// and make both 0.
// idleLocked is always true: the sessions are on the server, and a
// closed pool's copies lose none of them (the site's next pool reads them
// there). Telling otherwise would take I/O under the pool's lock.
func (b *redisBackend) idleLocked(int64) bool { return true }

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
	if len(res) != 3 {
		return 0, 0, 0, b.unexpectedReply(res)
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

// isWrongType reports whether err is the server's answer to a command on a
// key of another type: bad data, not an outage.
func isWrongType(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE ")
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
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
			return nil, b.storeErr(err)
		}
		for i, id := range chunk {
			rec, err := cmds[i].rec.Result()
			if errors.Is(err, redis.Nil) {
				continue // gone since SMEMBERS
			}
			if isWrongType(err) {
				bad = append(bad, fmt.Errorf("%w: %s: session %q: %w", ErrInvalidState, b.name, id, err))
				continue
			}
			if err != nil {
				return nil, b.storeErr(err)
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
