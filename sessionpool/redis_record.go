package sessionpool

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// How the Redis backend reads and writes a session on the server: its
// record ("v u e r mu me ed c x\np\nd", see redis_scripts.go), its cookie
// values, the scripts' replies and the retirement events they publish.
// What does not parse is an error wrapping ErrInvalidState that names the
// session, never a panic.

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
	return string(dst), "\n" + s.proxyURL + "\n" + recordTail(s.userData, s.fprint, s.paused)
}

// recordTail is a record's lines from the user data on: the user data
// (compact JSON: one line), then the fingerprint on a line of its own when
// the session has one (records without it read as none), then the end of
// its pause in microseconds on a line of its own when it has one (after an
// empty fingerprint line when it has no fingerprint).
func recordTail(userData []byte, fprint string, paused int64) string {
	if paused != 0 {
		return string(userData) + "\n" + fprint + "\n" + strconv.FormatInt(micros(paused), 10)
	}
	if fprint == "" {
		return string(userData)
	}
	return string(userData) + "\n" + fprint
}

// record is a session record split into its fields (see recordFields).
type record struct {
	f      [len(recordFields)]string
	p, d   string
	fprint string
	paused string // µs, "" for none
}

// get returns the field named name ("v", ..., "x", "p", "d").
func (r *record) get(name string) string {
	switch name {
	case "p":
		return r.p
	case "d":
		return r.d
	case "fingerprint":
		return r.fprint
	case "paused":
		return r.paused
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
	r.d, r.fprint, _ = strings.Cut(r.d, "\n")
	r.fprint, r.paused, _ = strings.Cut(r.fprint, "\n")
	for i := range r.f {
		var more bool
		r.f[i], head, more = strings.Cut(head, " ")
		if more != (i < len(r.f)-1) {
			return r, false
		}
	}
	return r, true
}

// pausedNanos reads a record's pause line (µs) as unix nanoseconds: 0 for
// none (""); ok is false when it is not a positive time nanoseconds can
// hold.
func pausedNanos(line string) (ns int64, ok bool) {
	if line == "" {
		return 0, true
	}
	us, err := strconv.ParseInt(line, 10, 64)
	if err != nil || us <= 0 || us > math.MaxInt64/1000 {
		return 0, false
	}
	return us * 1000, true
}

// sessionFrom builds this process's copy of a session from its record and
// its cookie values. A record that does not parse is an error naming the
// session and the field: something else wrote the pool's keys.
func (b *redisBackend) sessionFrom(id string, rec string, cookies []string) (*Session, error) {
	p := b.p
	h, ok := splitRecord(rec)
	if !ok {
		return nil, fmt.Errorf("%w: %s: session %q: its record is not \"v u e r mu me ed c x\\np\\nd[\\nf]\" (got %q)", ErrInvalidState, b.name, id, clip(rec))
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
	for _, f := range [...]struct {
		k      string
		micros int64
	}{{"c", c}, {"x", x}} { // microseconds: nanoseconds must fit
		if f.micros > math.MaxInt64/1000 || f.micros < math.MinInt64/1000 {
			bad(f.k)
		}
	}
	e, me, ed := floatField("e"), floatField("me"), floatField("ed")
	r := h.get("r")
	if r != "0" && r != "1" {
		bad("r")
	}
	if checkFingerprint(h.fprint) != "" {
		bad("fingerprint")
	}
	paused, ok := pausedNanos(h.paused)
	if !ok {
		bad("paused")
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
			fprint:   h.fprint,
			paused:   paused,
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
