package sessionpool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Defaults used for zero values in Options and SessionOptions.
const (
	DefaultMaxPoolSize         = 1000
	DefaultPersistStateKey     = "SDK_SESSION_POOL_STATE"
	DefaultPersistInterval     = 60 * time.Second
	DefaultMaxAge              = 3000 * time.Second
	DefaultMaxUsageCount       = 50
	DefaultMaxErrorScore       = 3.0
	DefaultErrorScoreDecrement = 0.5
)

// DefaultBlockedStatusCodes returns the status codes that
// Session.RetireOnBlockedStatusCodes treats as blocked when
// Options.BlockedStatusCodes is empty: 401, 403 and 429.
func DefaultBlockedStatusCodes() []int { return []int{401, 403, 429} }

// Strategy chooses which held session GetSession returns once the pool is
// full.
type Strategy int

const (
	// Random is the seed's flow: a uniformly random pick among all held
	// sessions; an unusable pick evicts every unusable session and a new
	// session is created. The default.
	Random Strategy = iota
	// RoundRobin cycles through the held sessions in order; reaching an
	// unusable one evicts every unusable session and creates a new one, as
	// Random does.
	RoundRobin
	// UseUntilFailure keeps returning the session returned last while it is
	// usable; then it falls back to the Random flow.
	UseUntilFailure
)

// String returns the strategy's name.
func (s Strategy) String() string {
	switch s {
	case Random:
		return "random"
	case RoundRobin:
		return "round-robin"
	case UseUntilFailure:
		return "use-until-failure"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// Options configure a Pool. The zero value is valid: every zero field means
// its default.
type Options struct {
	// MaxPoolSize is the number of sessions (usable plus unusable) GetSession
	// fills the pool to. 0: 1000. Negative: invalid.
	MaxPoolSize int
	// SessionOptions are the defaults for every new session; ID must be empty.
	SessionOptions SessionOptions
	// Store keeps the persisted state. nil: nothing is persisted or loaded.
	Store Store
	// PersistStateKey is the store key of the pool's document.
	// "": "SDK_SESSION_POOL_STATE".
	PersistStateKey string
	// PersistInterval is the period of automatic persistence (only with a
	// Store), which writes only when a session changed (was picked into
	// being, marked, given cookies or user data, added or evicted) since
	// the last write. 0: 60 s. Negative: invalid.
	PersistInterval time.Duration
	// BlockedStatusCodes are the status codes that retire a session in
	// RetireOnBlockedStatusCodes. Empty: 401, 403, 429.
	BlockedStatusCodes []int
	// Strategy picks sessions once the pool is full. Zero: Random.
	Strategy Strategy
	// CreateSessionFunc builds every new session, those of GetSession and
	// AddSession alike. It must return a session built by p.NewSession and
	// not yet held. It is called without any pool lock held, so it may call
	// the pool. nil: p.NewSession(opts).
	CreateSessionFunc func(ctx context.Context, p *Pool, opts SessionOptions) (*Session, error)
	// Now is the pool's clock, used for every session predicate and passed to
	// the cookie jars. nil: time.Now, read as the wall time at Open plus the
	// monotonic time elapsed since (so wall-clock jumps do not age sessions).
	Now func() time.Time
	// OnPersist, when set, is called after every persist that writes
	// (periodic, PersistState and Teardown alike; a periodic persist finds
	// nothing to write when no session changed since the last write) with
	// how long it took and its error,
	// outside every lock. It is how the errors of periodic persistence,
	// which have no caller to return to, are seen: the package never logs.
	// It must not block for long. nil: nothing is called.
	OnPersist func(took time.Duration, err error)

	// Redis, when set, keeps the pool's sessions on a Redis server instead
	// of in this process, shared by every process that opens the same pool
	// there (see RedisOptions). Store must then be nil (the server is the
	// store) and PersistState does nothing. nil: the sessions live in this
	// process.
	Redis *RedisOptions
}

// DefaultRedisTimeout is RedisOptions.Timeout's default.
const DefaultRedisTimeout = 5 * time.Second

// RedisOptions keep a pool on a Redis server (Options.Redis). The zero value
// is not valid: URL or Client must be set.
//
// Every process that opens a pool on the same server and database with the
// same PersistStateKey shares its sessions: their IDs, counters, limits,
// cookies (merged cookie by cookie), user data and upstreams, and
// MaxPoolSize across all of them.
//
// Every GetSession and GetSessionByID then returns a new *Session, this
// process's copy of the server's session (compare sessions by ID): its
// reads are local, and each change is one script run on the server that
// updates the copy with the server's answer. A mark or cookie change on a
// copy whose session the server no longer holds (evicted, or its keys
// expired) makes the copy unusable and fires nothing. A session's keys
// expire on the server with the session. UseUntilFailure follows the
// session this process returned last. CreateSessionFunc may run ahead of
// need: a GetSession without a spare candidate builds one before asking the
// server and keeps it for a later creation when the server hands out a held
// session.
//
// Open does not fail when the server cannot be reached (it waits up to 5 s
// for the server to confirm the event subscription); calls fail until the
// server is back, and the pool reconnects by itself. Errors of the server
// wrap ErrStoreUnavailable; data on the server the pool cannot parse is an
// error wrapping ErrInvalidState that names the session.
type RedisOptions struct {
	// URL is the server: redis://[user:password@]host:port/db, or
	// rediss:// for TLS (go-redis's URL options, such as pool_size, apply;
	// unless the URL sets max_retries or dial_timeout, a command is not sent
	// again after a network error and a dial gives up after 2 s; a call's
	// reads and writes end at its context's deadline). Errors name it
	// without its password. Ignored when Client is set.
	URL string
	// Client is an existing client to use instead of URL (for Redis
	// Cluster, say), with its own retry settings. The pool does not close
	// it. Errors name its addresses. nil: the pool makes a client of its own
	// from URL and closes it in Teardown.
	Client redis.UniversalClient
	// OnError, when set, is called with the errors that no call can
	// return: those of MarkGood, MarkBad, Retire and
	// RetireOnBlockedStatusCodes, SetCookies and SetCookiesFromResponse (a
	// cookie change that did not reach the server is sent again with the
	// copy's next change; a mark is not), of UsableSessionsCount and
	// RetiredSessionsCount (which then return 0), of Sessions and State
	// (which leave out what they could not read), and of retirement events
	// published by other processes that cannot be decoded (called on the
	// pool's event goroutine). SetUserData and Session.Commit return their
	// errors instead. It must not block for long. nil: such errors are
	// dropped.
	OnError func(error)
	// Timeout bounds each server call of the methods that take no context
	// (MarkGood, MarkBad, Retire, RetireOnBlockedStatusCodes, SetCookies,
	// SetCookiesFromResponse, SetUserData, UsableSessionsCount,
	// RetiredSessionsCount, Sessions and State): it is the deadline of the
	// call's context, so the call ends by then with an error wrapping
	// ErrStoreUnavailable. (With a Client of
	// the caller's, reads and writes honour the deadline only when it has
	// ContextTimeoutEnabled; otherwise its ReadTimeout and WriteTimeout
	// bound them.) The methods that take a context are bounded by it
	// instead. 0: DefaultRedisTimeout (5 s). Negative: invalid.
	Timeout time.Duration

	name   string        // the store in messages, when Client is one Sites made from URL
	events *sharedEvents // Sites' one subscription to every site's events
}

// SessionOptions configure one session. Zero fields take the pool's
// defaults (Options.SessionOptions), then the package defaults.
type SessionOptions struct {
	// ID of the session. "": "session_" + 10 random characters of
	// [A-Za-z0-9], unique in the pool. Any other must be valid UTF-8, as
	// must ProxyURL: the state document holds text.
	ID string
	// MaxAge sets ExpiresAt = CreatedAt + MaxAge. 0: 3000 s.
	MaxAge time.Duration
	// MaxUsageCount is the number of uses after which the session is worn
	// out. 0: 50.
	MaxUsageCount int
	// MaxErrorScore is the error score at which the session is blocked. 0: 3.
	MaxErrorScore float64
	// ErrorScoreDecrement is taken off the error score by MarkGood. 0: 0.5.
	ErrorScoreDecrement float64
	// UserData is free JSON-serialisable data, copied (as JSON) into the
	// session and persisted with it, nesting at most MaxUserDataDepth
	// levels. Numbers come back as float64.
	UserData map[string]any
	// ProxyURL is the session's sticky upstream proxy; "" means none.
	ProxyURL string
	// Fingerprint names the session's identity on the wire (for
	// sessionproxy, a fingerprint mode such as "chrome"); the pool keeps
	// and persists it and gives it no meaning. "" means none. At most
	// MaxFingerprintLen printable ASCII characters.
	Fingerprint string
}

// MaxFingerprintLen is the longest SessionOptions.Fingerprint.
const MaxFingerprintLen = 32

// merge returns o with its zero fields taken from def.
func (o SessionOptions) merge(def SessionOptions) SessionOptions {
	if o.MaxAge == 0 {
		o.MaxAge = def.MaxAge
	}
	if o.MaxUsageCount == 0 {
		o.MaxUsageCount = def.MaxUsageCount
	}
	if o.MaxErrorScore == 0 {
		o.MaxErrorScore = def.MaxErrorScore
	}
	if o.ErrorScoreDecrement == 0 {
		o.ErrorScoreDecrement = def.ErrorScoreDecrement
	}
	if o.UserData == nil {
		o.UserData = def.UserData
	}
	if o.ProxyURL == "" {
		o.ProxyURL = def.ProxyURL
	}
	if o.Fingerprint == "" {
		o.Fingerprint = def.Fingerprint
	}
	return o
}

// packageDefaults are the session defaults of the contract.
func packageDefaults() SessionOptions {
	return SessionOptions{
		MaxAge:              DefaultMaxAge,
		MaxUsageCount:       DefaultMaxUsageCount,
		MaxErrorScore:       DefaultMaxErrorScore,
		ErrorScoreDecrement: DefaultErrorScoreDecrement,
	}
}

// validate reports every problem of o, each wrapping ErrInvalidOptions;
// field names are prefixed with prefix.
func (o SessionOptions) validate(prefix string) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s%s", ErrInvalidOptions, prefix, fmt.Sprintf(format, args...)))
	}
	// The state document is JSON, which holds text: anything else would come
	// back changed, or not at all.
	if !utf8.ValidString(o.ID) {
		bad("ID %q is not valid UTF-8", o.ID)
	}
	if o.MaxAge < 0 {
		bad("MaxAge %v is negative", o.MaxAge)
	}
	if o.MaxUsageCount < 0 {
		bad("MaxUsageCount %d is negative", o.MaxUsageCount)
	}
	if o.MaxErrorScore < 0 || math.IsNaN(o.MaxErrorScore) || math.IsInf(o.MaxErrorScore, 0) {
		bad("MaxErrorScore %v is not a positive finite number", o.MaxErrorScore)
	}
	if o.ErrorScoreDecrement < 0 || math.IsNaN(o.ErrorScoreDecrement) || math.IsInf(o.ErrorScoreDecrement, 0) {
		bad("ErrorScoreDecrement %v is not a positive finite number", o.ErrorScoreDecrement)
	}
	if o.ProxyURL != "" {
		u, err := url.Parse(o.ProxyURL)
		switch {
		case err != nil:
			bad("ProxyURL does not parse") // the URL may hold credentials: not repeated
		case !utf8.ValidString(o.ProxyURL):
			bad("ProxyURL is not valid UTF-8")
		case u.Scheme == "" || u.Host == "":
			bad("ProxyURL %q has no scheme or host", u.Redacted())
		}
	}
	if msg := checkFingerprint(o.Fingerprint); msg != "" {
		bad("Fingerprint %s", msg)
	}
	if len(o.UserData) > 0 {
		if _, err := encodeUserData(o.UserData); err != nil {
			bad("UserData cannot be stored: %v", err)
		}
	}
	return errs
}

// validate reports every problem of o at once.
func (o *Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...)))
	}
	if o.MaxPoolSize < 0 {
		bad("MaxPoolSize %d is negative", o.MaxPoolSize)
	}
	if o.PersistInterval < 0 {
		bad("PersistInterval %v is negative", o.PersistInterval)
	}
	if o.Strategy < Random || o.Strategy > UseUntilFailure {
		bad("Strategy %d is unknown", int(o.Strategy))
	}
	for _, c := range o.BlockedStatusCodes {
		if c < 100 || c > 599 {
			bad("BlockedStatusCodes: %d is not an HTTP status code", c)
		}
	}
	if o.SessionOptions.ID != "" {
		bad("SessionOptions.ID %q is set: every session would share it", o.SessionOptions.ID)
	}
	if fs, ok := o.Store.(*FileStore); ok && fs != nil && o.PersistStateKey != "" {
		if problem := keyProblem(o.PersistStateKey); problem != "" {
			bad("PersistStateKey %s", problem)
		}
	}
	if r := o.Redis; r != nil {
		if o.Store != nil {
			bad("Store is set with a Redis pool: the Redis server is the store")
		}
		if r.Client == nil {
			if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				bad("Redis.URL %q is not redis://[user:password@]host:port/db or rediss://...", redactURL(r.URL))
			}
		}
		if r.Timeout < 0 {
			bad("Redis.Timeout %v is negative", r.Timeout)
		}
	}
	errs = append(errs, o.SessionOptions.validate("SessionOptions.")...)
	return errors.Join(errs...)
}

// checkFingerprint says what is wrong with a fingerprint label, "" when
// nothing is.
func checkFingerprint(fp string) string {
	if len(fp) > MaxFingerprintLen {
		return fmt.Sprintf("is longer than %d characters", MaxFingerprintLen)
	}
	for _, c := range []byte(fp) {
		if c <= ' ' || c > '~' {
			return fmt.Sprintf("%q has a character that is not printable ASCII", fp)
		}
	}
	return ""
}
