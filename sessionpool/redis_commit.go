package sessionpool

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The changes of a session held on the server: a mark and the jar's cookie
// changes go in one run of the commit script, and the copy takes the
// server's answer.

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
// changed locally. Retire on a copy that is retired sends no mark: it
// changes nothing. The script applies the commit only to the session the
// copy came from, not to a later one that took its spent ID.
func (b *redisBackend) commit(ctx context.Context, s *Session, m Mark) error {
	if !onServer(s) {
		s.applyLocal(m)
		return nil
	}
	if m == Retire && s.Retired() {
		m = NoMark
	}
	delta := s.jar.takeDelta()
	if m == NoMark && len(delta) == 0 {
		return nil
	}
	p := s.pool
	args := make([]any, 0, 6+2*len(delta))
	args = append(args, m.code(), micros(p.nowNanos()), b.channel, b.origin, s.id, micros(s.created))
	args = deltaArgs(args, delta)
	keys := []string{b.pfx + "s:" + s.id, b.pfx + "c:" + s.id, b.keys[2], b.keys[1]}
	res, err := b.eval(ctx, commitScript, keys, args...).Slice()
	if errors.Is(err, redis.Nil) {
		// The session is gone from the server (evicted or expired, its ID
		// perhaps taken by a new session since): this copy is spent too.
		// Nothing is fired: its retirement, if any, was.
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
		kind, _ := res[0].(string)
		if rec, ok := res[1].(string); kind == "bad" && ok {
			requeueDelta(&s.jar, delta)
			return b.badSession([]any{s.id, rec, []any{}})
		}
	}
	u, v, r, fired, e, ok := markReply(res)
	if !ok {
		return fmt.Errorf("session %q: %w", s.id, b.unexpectedReply(res))
	}
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

// markReply reads the commit script's reply {uses, error score, retired,
// version, fired}; ok is false when it has another shape.
func markReply(res []any) (u, v, r, fired int64, e float64, ok bool) {
	if len(res) != 5 {
		return 0, 0, 0, 0, 0, false
	}
	u, ok1 := res[0].(int64)
	es, ok2 := res[1].(string)
	r, ok3 := res[2].(int64)
	v, ok4 := res[3].(int64)
	fired, ok5 := res[4].(int64)
	e, err := strconv.ParseFloat(es, 64)
	return u, v, r, fired, e, ok1 && ok2 && ok3 && ok4 && ok5 && err == nil
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

// setUserData stores s's user data on the server, and its copy's pause
// when that ends later than the server's.
func (b *redisBackend) setUserData(s *Session, data []byte) error {
	return b.setTail(s, string(data), true)
}

// pause extends the pause of s on the server to its copy's; the server's
// user data stay as they are (the copy's may be stale).
func (b *redisBackend) pause(s *Session) error {
	return b.setTail(s, "", false)
}

// setTail runs the user data script for s: with its copy's pause and, when
// withData, the user data data. There is nothing to do for a session not
// on the server yet, or no longer on it (a later session under its ID is
// left alone).
func (b *redisBackend) setTail(s *Session, data string, withData bool) error {
	if !onServer(s) {
		return nil
	}
	ctx, cancel := b.detached()
	defer cancel()
	s.mu.Lock()
	args := []any{micros(s.created), micros(s.paused)}
	s.mu.Unlock()
	if withData {
		args = append(args, data)
	}
	res, err := userDataScript.Run(ctx, b.c, []string{b.pfx + "s:" + s.id}, args...).Result()
	if err != nil {
		return fmt.Errorf("session %q: %w", s.id, b.storeErr(err))
	}
	if bad, _ := res.([]any); len(bad) == 2 {
		return b.badSession([]any{s.id, bad[1], []any{}})
	}
	return nil
}

// code is the mark as the commit script takes it.
func (m Mark) code() string {
	switch m {
	case Good:
		return "g"
	case Bad:
		return "b"
	case Retire:
		return "r"
	}
	return "n"
}
