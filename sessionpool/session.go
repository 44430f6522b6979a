package sessionpool

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Session is one identity of a Pool: an ID, a sticky upstream proxy, a cookie
// jar, free user data and the counters that decide when it is spent.
//
// A Session is built by Pool.NewSession (or restored by Open); the zero
// Session is not usable (its methods report nothing and store nothing, and
// do not panic). All methods are safe for concurrent use.
//
// The predicates are computed when asked, with the pool's clock:
// blocked (ErrorScore >= MaxErrorScore), expired (now >= ExpiresAt), worn out
// (UsageCount >= MaxUsageCount) and retired (Retire was called, or a mark
// made the session unusable). Usable means none of the four. A retired
// session never becomes usable again.
//
// Layout: the session is kept compact (well under 600 bytes with its map
// entry and slice slots): times are unix nanoseconds, user data is kept as
// its JSON encoding (nil until set), and the jar is embedded by value in the
// session's cold part.
type Session struct {
	// The fields GetSession and the marks touch fill the first (and only)
	// 64 bytes, a single cache line: in a large pool each pick costs one
	// memory access for its session, not two. The rest is in limits (shared
	// by the sessions with the pool's default limits, so it stays in cache)
	// and in sessionCold.
	mu       sync.Mutex
	usage    int     // guarded by mu
	errScore float64 // guarded by mu
	retired  bool    // guarded by mu
	// inRetired is guarded by pool.mu: the table has moved the session to its
	// retired list.
	inRetired bool
	// spent is retired || usage >= maxUsage || errScore >= maxErr: written
	// under mu by every change of those fields (publishLocked), read without
	// it, so that usableAt takes no lock on the GetSession path.
	spent        atomic.Bool
	expires      int64 // unix ns; immutable
	pool         *Pool // immutable; nil only for the zero Session
	*limits            // immutable
	*sessionCold       // the pointer is immutable
}

// limits are a session's immutable limits.
type limits struct {
	maxUsage int
	maxErr   float64
	errDecr  float64
}

// sessionCold holds the fields of a session that GetSession and the marks do
// not touch.
type sessionCold struct {
	id       string // immutable
	proxyURL string // immutable
	fprint   string // immutable: the fingerprint label
	paused   int64  // guarded by Session.mu; unix ns: the end of its pause, 0 for none
	created  int64  // unix ns; immutable
	userData []byte // guarded by Session.mu; a JSON object, or nil; replaced, never modified in place
	ver      int64  // guarded by Session.mu; Redis pools: the version of the server's copy last read
	cand     []any  // Redis pools: a candidate's arguments for the allocation script (see candidateArgs)

	// Guarded by pool.mu: the session's place in the pool's table.
	idx  int // index in table.all; -1 when not held
	hidx int // index in table.live (heap) or, when inRetired, in table.retired

	// Redis pools: rfree, rclaimed (taken by the pool as a candidate) or
	// rheld (on the server; copies read from it are born rheld). Until a
	// session is held its mutators change only this copy, which the pool
	// sends whole when it adds it.
	rstate atomic.Int32

	jar jar // its own RFC 6265 jar, with its own mutex
}

// cold returns the session's cold part; for the zero Session, a fresh
// empty one (so that its methods do nothing rather than panic).
func (s *Session) cold() *sessionCold {
	if s.sessionCold == nil {
		return new(sessionCold)
	}
	return s.sessionCold
}

// lim returns the session's limits; for the zero Session, zero limits.
func (s *Session) lim() *limits {
	if s.limits == nil {
		return new(limits)
	}
	return s.limits
}

// clock returns the pool's current time.
func (s *Session) clock() time.Time {
	if s.pool == nil {
		return time.Now()
	}
	return s.pool.now()
}

// nowNanos returns the pool's current time in unix nanoseconds.
func (s *Session) nowNanos() int64 {
	if s.pool == nil {
		return time.Now().UnixNano()
	}
	return s.pool.nowNanos()
}

// ID returns the session's ID.
func (s *Session) ID() string { return s.cold().id }

// ProxyURL returns the session's sticky upstream proxy URL, "" for none. It
// may hold credentials: log it with url.URL.Redacted.
func (s *Session) ProxyURL() string { return s.cold().proxyURL }

// Pause holds the session back until until: PausedUntil reports it, and it
// is persisted with the session (in the state document as "pausedUntil";
// with a Redis pool, on the server, so that every process sharing the pool
// sees it on its next copy of the session). The pool still hands a paused
// session out: what a pause means is the caller's (the proxy does not send
// it to the paused site until then). A pause is only ever extended: an
// until before the current end changes nothing. With a Redis pool only the
// pause is stored (the session's user data on the server stay as they are,
// whatever this copy holds), the server's error is returned (wrapping
// ErrStoreUnavailable), and the local copy keeps the pause.
func (s *Session) Pause(until time.Time) error {
	if s.pool == nil || until.Before(minSessionTime) {
		return nil // a time that long past pauses nothing
	}
	if until.After(maxSessionTime) {
		until = maxSessionTime.Truncate(time.Microsecond) // the furthest a session holds, in every store
	}
	ns := until.UnixNano()
	s.mu.Lock()
	c := s.cold()
	if ns <= c.paused {
		s.mu.Unlock()
		return nil
	}
	c.paused = ns
	s.mu.Unlock()
	if err := s.pool.be.pause(s); err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	return nil
}

// PausedUntil returns the end of the session's pause (Pause), the zero time
// when it has none. It may be in the past.
func (s *Session) PausedUntil() time.Time {
	s.mu.Lock()
	ns := s.cold().paused
	s.mu.Unlock()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Site returns the site of the pool that built the session (see Sites),
// "" for a pool opened by Open.
func (s *Session) Site() string {
	if s.pool == nil {
		return ""
	}
	return s.pool.site
}

// Fingerprint returns the session's fingerprint label, "" for none. It
// never changes.
func (s *Session) Fingerprint() string { return s.cold().fprint }

// CreatedAt returns when the session was created.
func (s *Session) CreatedAt() time.Time { return time.Unix(0, s.cold().created).UTC() }

// ExpiresAt returns CreatedAt + MaxAge.
func (s *Session) ExpiresAt() time.Time { return time.Unix(0, s.expires).UTC() }

// MaxUsageCount returns the number of uses after which the session is worn out.
func (s *Session) MaxUsageCount() int { return s.lim().maxUsage }

// MaxErrorScore returns the error score at which the session is blocked.
func (s *Session) MaxErrorScore() float64 { return s.lim().maxErr }

// ErrorScore returns the current error score (never below 0).
func (s *Session) ErrorScore() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errScore
}

// UsageCount returns the number of uses counted so far.
func (s *Session) UsageCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage
}

// Retired reports whether the retired flag is set.
func (s *Session) Retired() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retired
}

// IsBlocked reports ErrorScore >= MaxErrorScore.
func (s *Session) IsBlocked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errScore >= s.lim().maxErr
}

// IsExpired reports now >= ExpiresAt, with the pool's clock.
func (s *Session) IsExpired() bool { return s.nowNanos() >= s.expires }

// IsMaxUsageCountReached reports UsageCount >= MaxUsageCount.
func (s *Session) IsMaxUsageCountReached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage >= s.lim().maxUsage
}

// IsUsable reports that the session is neither blocked, expired, worn out
// nor retired.
func (s *Session) IsUsable() bool { return s.usableAt(s.nowNanos()) }

// usableAt reports whether the session is usable at now. It takes no lock:
// the counters' verdict is read from spent, which every mutator publishes
// before releasing mu, so the answer is the one usableLocked gives for the
// state left by the last completed mutation.
func (s *Session) usableAt(now int64) bool {
	return !s.spent.Load() && now < s.expires
}

func (s *Session) usableLocked(now int64) bool {
	l := s.lim()
	return !s.retired && s.errScore < l.maxErr && s.usage < l.maxUsage && now < s.expires
}

// retireIfSpentLocked sets the retired flag when the session is unusable and
// not yet retired, and reports whether it did (the caller then fires the
// event, outside the lock). It counts no use: the mark that called it did.
func (s *Session) retireIfSpentLocked(now int64) bool {
	if s.retired || s.usableLocked(now) {
		return false
	}
	s.retired = true
	return true
}

// publishLocked stores the verdict of the counters and the retired flag in
// spent; every change of usage, errScore or retired calls it before mu is
// released (and every constructor before the session is shared). It stores
// only a change (spent is written only under mu): an atomic store is a
// locked instruction on amd64, a load is not.
func (s *Session) publishLocked() {
	l := s.lim()
	if v := s.retired || s.usage >= l.maxUsage || s.errScore >= l.maxErr; v != s.spent.Load() {
		s.spent.Store(v)
	}
}

// MarkGood counts a good use: UsageCount += 1 and ErrorScore =
// max(0, ErrorScore - ErrorScoreDecrement). If the session is now unusable
// it retires itself (firing the pool's event once, counting no second use).
func (s *Session) MarkGood() { s.commitDetached(Good) }

// MarkBad counts a failed use: ErrorScore += 1 and UsageCount += 1. If the
// session is now unusable it retires itself (firing the pool's event once,
// counting no second use).
func (s *Session) MarkBad() { s.commitDetached(Bad) }

// Retire counts one use, sets the retired flag and fires the pool's retired
// event. Idempotent: on a retired session it changes nothing and fires
// nothing.
func (s *Session) Retire() { s.commitDetached(Retire) }

// commitDetached applies m, and sends the jar's changes, where the session
// is kept (see backend.commitDetached): the work of the methods that take no
// context and return no error.
func (s *Session) commitDetached(m Mark) {
	if s.pool == nil {
		return // the zero Session stores nothing
	}
	s.pool.be.commitDetached(s, m)
}

// applyLocal applies m to this copy of the session, firing the pool's
// event when it retires the session.
func (s *Session) applyLocal(m Mark) {
	switch m {
	case Good:
		s.markGood()
	case Bad:
		s.markBad()
	case Retire:
		s.retire()
	}
}

func (s *Session) markGood() {
	now := s.nowNanos()
	s.mu.Lock()
	s.usage++
	s.errScore = max(0, s.errScore-s.lim().errDecr)
	fire := s.retireIfSpentLocked(now)
	s.publishLocked()
	s.mu.Unlock()
	if fire {
		s.retiredEvent()
	}
}

func (s *Session) markBad() {
	now := s.nowNanos()
	s.mu.Lock()
	s.usage++
	s.errScore++
	fire := s.retireIfSpentLocked(now)
	s.publishLocked()
	s.mu.Unlock()
	if fire {
		s.retiredEvent()
	}
}

func (s *Session) retire() {
	s.mu.Lock()
	if s.retired {
		s.mu.Unlock()
		return
	}
	s.usage++
	s.retired = true
	s.publishLocked()
	s.mu.Unlock()
	s.retiredEvent()
}

// RetireOnBlockedStatusCodes retires the session when status is one of the
// pool's blocked status codes (Options.BlockedStatusCodes, default 401, 403,
// 429) or one of extra, and reports whether status was such a code (the
// session is then retired; Retire's idempotence applies).
func (s *Session) RetireOnBlockedStatusCodes(status int, extra ...int) bool {
	var codes []int
	if s.pool != nil {
		codes = s.pool.blocked
	} else {
		codes = DefaultBlockedStatusCodes()
	}
	if !slices.Contains(codes, status) && !slices.Contains(extra, status) {
		return false
	}
	s.Retire()
	return true
}

// retiredEvent tells the pool, outside the session's lock.
func (s *Session) retiredEvent() {
	if s.pool != nil {
		s.pool.sessionRetired(s)
	}
}

// UserData returns a fresh copy of the session's user data (never nil).
// JSON numbers come back as float64.
func (s *Session) UserData() map[string]any {
	s.mu.Lock()
	raw := s.cold().userData
	s.mu.Unlock()
	return decodeUserData(raw)
}

// SetUserData replaces the session's user data with a copy of data (as
// JSON). It fails, changing nothing, when data is not JSON-serialisable or
// nests deeper than MaxUserDataDepth (or, with a Redis pool, when the
// server cannot be reached, or when its record of the session does not
// parse: ErrInvalidState).
func (s *Session) SetUserData(data map[string]any) error {
	raw, err := encodeUserData(data)
	if err != nil {
		return fmt.Errorf("set user data: %w", err)
	}
	if s.pool != nil {
		if err := s.pool.be.setUserData(s, raw); err != nil {
			return fmt.Errorf("set user data: %w", err)
		}
	}
	s.mu.Lock()
	s.cold().userData = raw
	s.mu.Unlock()
	return nil
}

// MaxUserDataDepth is how deeply user data may nest (objects and arrays,
// the outer object counting one): the state document wraps it in a few
// levels more, and a document nested past encoding/json's limit (10,000)
// could be written but never loaded again.
const MaxUserDataDepth = 100

func encodeUserData(data map[string]any) ([]byte, error) {
	if len(data) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	if d := jsonDepth(raw); d > MaxUserDataDepth {
		return nil, fmt.Errorf("user data nests %d levels deep, more than %d", d, MaxUserDataDepth)
	}
	return raw, nil
}

// jsonDepth returns how deeply the JSON text raw nests objects and arrays.
func jsonDepth(raw []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range raw {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

func decodeUserData(raw []byte) map[string]any {
	m := map[string]any{}
	if len(raw) > 0 {
		// raw was produced by json.Marshal of a map or validated as an
		// object when loaded, so it decodes.
		_ = json.Unmarshal(raw, &m)
	}
	return m
}

// SetCookiesFromResponse stores the Set-Cookie headers of resp, received
// from resp.Request.URL. It never fails: malformed cookies and cookies for
// other domains are dropped; a response without a Request changes nothing.
func (s *Session) SetCookiesFromResponse(resp *http.Response) {
	if resp == nil || resp.Request == nil || resp.Request.URL == nil {
		return
	}
	lines := resp.Header.Values("Set-Cookie")
	if len(lines) == 0 {
		return
	}
	s.cold().jar.setFromResponse(resp.Request.URL, lines, s.clock())
	if s.pool != nil {
		s.pool.be.commitDetached(s, NoMark)
	}
}

// SetCookies stores browser-style cookies as received from u: a leading dot
// on Domain makes a domain cookie, no Domain a host-only one, and a zero or
// past Expires without MaxAge a cookie that lives as long as the session.
func (s *Session) SetCookies(u *url.URL, cookies []*http.Cookie) {
	if u == nil || len(cookies) == 0 {
		return
	}
	s.cold().jar.setCookies(u, cookies, s.clock())
	if s.pool != nil {
		s.pool.be.commitDetached(s, NoMark)
	}
}

// Cookies returns the cookies to send to u.
func (s *Session) Cookies(u *url.URL) []*http.Cookie {
	if u == nil {
		return nil
	}
	return s.cold().jar.cookies(u, s.clock())
}

// CookieString returns the Cookie header value for u ("a=1; b=2"), longer
// paths first, then earlier creation, then the order set; "" for none.
func (s *Session) CookieString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return s.cold().jar.cookieString(u, s.clock())
}

// AppendCookieString appends CookieString(u) to dst: the allocation-free
// form for hot paths.
func (s *Session) AppendCookieString(dst []byte, u *url.URL) []byte {
	if u == nil {
		return dst
	}
	return s.cold().jar.appendCookieString(dst, u, s.clock())
}

// State returns a snapshot of the session.
func (s *Session) State() SessionState {
	now := s.clock()
	sn := s.snapshot()
	st := sn.state()
	st.Cookies = s.cold().jar.export(now)
	return st
}

// sessionSnap is the state of a session without its cookies, copied under
// its lock.
type sessionSnap struct {
	s        *Session
	usage    int
	errScore float64
	retired  bool
	userData []byte
	paused   int64
}

func (s *Session) snapshot() sessionSnap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sessionSnap{s: s, usage: s.usage, errScore: s.errScore, retired: s.retired, userData: s.cold().userData, paused: s.cold().paused}
}

func (sn *sessionSnap) usableAt(now int64) bool {
	s := sn.s
	l := s.lim()
	return !sn.retired && sn.errScore < l.maxErr && sn.usage < l.maxUsage && now < s.expires
}

func (sn *sessionSnap) state() SessionState {
	s := sn.s
	return SessionState{
		ID:                  s.cold().id,
		Site:                s.Site(),
		UserData:            decodeUserData(sn.userData),
		ProxyURL:            s.cold().proxyURL,
		Fingerprint:         s.cold().fprint,
		MaxErrorScore:       s.lim().maxErr,
		ErrorScoreDecrement: s.lim().errDecr,
		CreatedAt:           s.CreatedAt(),
		ExpiresAt:           s.ExpiresAt(),
		UsageCount:          sn.usage,
		MaxUsageCount:       s.lim().maxUsage,
		ErrorScore:          sn.errScore,
		Retired:             sn.retired,
		PausedUntil:         pausedTime(sn.paused),
	}
}

// pausedTime is a pause's end as a time, the zero time for none.
func pausedTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// addNanos returns t + d, saturating instead of overflowing.
func addNanos(t int64, d time.Duration) int64 {
	if d > 0 && t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}
