package config

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// effect says when a changed key takes effect.
type effect int

const (
	onReload  effect = iota // for the next request after a reload
	onRestart               // only at start: a reload keeps the running value
)

// key is one configuration key: where it is, how its value is decoded and
// checked, and when a change takes effect. A section (a mapping of the keys
// whose paths continue its own) has no decode; the decoder walks it using
// the keys under it, in table order.
type key struct {
	path   string // dotted: "listen", "pool.session.max_age"
	effect effect // for a section, of the whole section at once
	// decode sets the key's field in c from v and reports whether v was
	// taken; when not, it has added the problems.
	decode func(d *decoder, v *yaml.Node, path string, c *Config) bool
	check  func(d *decoder, c *Config) // a section's checks across its keys, once they are decoded; may be nil
	same   func(a, b *Config) bool     // whether the key has the same value in a and b; nil for rules
	keep   func(dst, src *Config)      // copies the key's value from src to dst; nil for rules
}

// table returns every key, each section before the keys under it, in the
// order in which "unknown key" problems list them.
func table() []key {
	return []key{
		keyOf("listen", onRestart, func(c *Config) *string { return &c.Listen }, (*decoder).listenAddr),
		keyOf("log_format", onRestart, func(c *Config) *LogFormat { return &c.LogFormat }, choice(LogText, LogJSON)),
		keyOf("log_level", onRestart, func(c *Config) *slog.Level { return &c.LogLevel }, (*decoder).logLevel),
		keyOf("admin_listen", onRestart, func(c *Config) *string { return &c.AdminListen }, (*decoder).adminAddr),
		keyOf("admin_token", onReload, func(c *Config) *string { return &c.AdminToken }, (*decoder).token),
		keyOf("admin_hosts", onReload, func(c *Config) *[]string { return &c.AdminHosts }, (*decoder).adminHosts),
		keyOf("data_dir", onRestart, func(c *Config) *string { return &c.DataDir }, (*decoder).nonEmpty),
		keyOf("session_header", onReload, func(c *Config) *string { return &c.SessionHeader }, (*decoder).sessionHeader),
		keyOf("affinity", onReload, func(c *Config) *Affinity { return &c.Affinity },
			choice(AffinityTunnel, AffinityClient, AffinityRequest)),
		keyOf("fingerprint", onReload, func(c *Config) *Fingerprint { return &c.Fingerprint },
			choice(fingerprints()...)),
		keyOf("client_idle", onReload, func(c *Config) *time.Duration { return &c.ClientIdle }, (*decoder).duration),
		keyOf("cookies", onReload, func(c *Config) *CookieMode { return &c.Cookies },
			choice(CookiesMerge, CookiesSession, CookiesClient)),
		keyOf("max_header_bytes", onRestart, func(c *Config) *int { return &c.MaxHeaderBytes }, whole[int](1024, maxHeaderBytes)),
		keyOf("idle_timeout", onRestart, func(c *Config) *time.Duration { return &c.IdleTimeout }, (*decoder).duration),
		keyOf("read_header_timeout", onRestart, func(c *Config) *time.Duration { return &c.ReadHeaderTimeout }, (*decoder).duration),
		keyOf("tls_handshake_timeout", onRestart, func(c *Config) *time.Duration { return &c.TLSHandshakeTimeout }, (*decoder).duration),

		sectionOf("auth", onReload, func(c *Config) *Auth { return &c.Auth }, nil),
		keyOf("auth.users", onReload, func(c *Config) *map[string]string { return &c.Auth.Users }, (*decoder).users),
		keyOf("auth.challenge", onReload, func(c *Config) *bool { return &c.Auth.Challenge }, (*decoder).boolean),

		sectionOf("mitm", onReload, func(c *Config) *MITM { return &c.MITM }, (*decoder).checkCA),
		keyOf("mitm.enabled", onReload, func(c *Config) *bool { return &c.MITM.Enabled }, (*decoder).boolean),
		keyOf("mitm.ca_cert", onRestart, func(c *Config) *string { return &c.MITM.CACert }, (*decoder).text),
		keyOf("mitm.ca_key", onRestart, func(c *Config) *string { return &c.MITM.CAKey }, (*decoder).text),
		keyOf("mitm.skip_hosts", onReload, func(c *Config) *[]string { return &c.MITM.SkipHosts }, (*decoder).hostGlobs),
		keyOf("mitm.upstream_ca", onRestart, func(c *Config) *[]string { return &c.MITM.UpstreamCA }, (*decoder).files),
		keyOf("mitm.insecure_skip_verify", onRestart, func(c *Config) *bool { return &c.MITM.InsecureSkipVerify }, (*decoder).boolean),

		// The pool is opened at start with all of its settings: the
		// section is bound as a whole.
		sectionOf("pool", onRestart, func(c *Config) *Pool { return &c.Pool }, (*decoder).checkPersistKey),
		keyOf("pool.max_pool_size", onRestart, func(c *Config) *int { return &c.Pool.MaxPoolSize }, whole[int](1, 1<<31-1)),
		keyOf("pool.strategy", onRestart, func(c *Config) *sessionpool.Strategy { return &c.Pool.Strategy },
			named(sessionpool.Random, sessionpool.RoundRobin, sessionpool.UseUntilFailure)),
		keyOf("pool.store", onRestart, func(c *Config) *Store { return &c.Pool.Store }, (*decoder).store),
		keyOf("pool.persist_state_key", onRestart, func(c *Config) *string { return &c.Pool.PersistStateKey }, (*decoder).nonEmpty),
		keyOf("pool.persist_interval", onRestart, func(c *Config) *time.Duration { return &c.Pool.PersistInterval }, atLeast(minPersistInterval)),
		sectionOf("pool.session", onRestart, func(c *Config) *Session { return &c.Pool.Session }, nil),
		keyOf("pool.session.max_age", onRestart, func(c *Config) *time.Duration { return &c.Pool.Session.MaxAge }, (*decoder).duration),
		keyOf("pool.session.max_usage_count", onRestart, func(c *Config) *int { return &c.Pool.Session.MaxUsageCount },
			whole[int](1, 1<<31-1)),
		keyOf("pool.session.max_error_score", onRestart, func(c *Config) *float64 { return &c.Pool.Session.MaxErrorScore },
			number(true)),
		keyOf("pool.session.error_score_decrement", onRestart, func(c *Config) *float64 { return &c.Pool.Session.ErrorScoreDecrement },
			number(true)), // the pool reads 0 as its default, 0.5
		// Per-site pools and pacing (issue 13): bound at start.
		keyOf("pool.scope", onRestart, func(c *Config) *Scope { return &c.Pool.Scope }, choice(ScopeSite, ScopeGlobal)),
		keyOf("pool.exclusive", onRestart, func(c *Config) *bool { return &c.Pool.Exclusive }, (*decoder).boolean),
		keyOf("sites", onRestart, func(c *Config) *[]Site { return &c.Sites }, (*decoder).sites),
		sectionOf("pacing", onRestart, func(c *Config) *Pacing { return &c.Pacing }, nil),
		keyOf("pacing.max_wait", onRestart, func(c *Config) *time.Duration { return &c.Pacing.MaxWait }, (*decoder).duration),

		keyOf("upstreams", onReload, func(c *Config) *[]*url.URL { return &c.Upstreams }, (*decoder).upstreams),
		keyOf("allow_private_targets", onReload, func(c *Config) *bool { return &c.AllowPrivateTargets }, (*decoder).boolean),
		keyOf("body_limit", onReload, func(c *Config) *int64 { return &c.BodyLimit }, whole[int64](1, maxBodyLimit)),
		sectionOf("retry", onReload, func(c *Config) *Retry { return &c.Retry }, nil),
		keyOf("retry.max_attempts", onReload, func(c *Config) *int { return &c.Retry.MaxAttempts }, whole[int](0, maxRetryAttempts)),
		sectionOf("request_log", onRestart, func(c *Config) *RequestLog { return &c.RequestLog }, nil),
		keyOf("request_log.size", onRestart, func(c *Config) *int { return &c.RequestLog.Size }, whole[int](0, maxRequestLog)),
		keyOf("request_log.bodies", onRestart, func(c *Config) *bool { return &c.RequestLog.Bodies }, (*decoder).boolean),
		sectionOf("gc", onRestart, func(c *Config) *GC { return &c.GC }, nil),
		keyOf("gc.heap_floor", onRestart, func(c *Config) *int64 { return &c.GC.HeapFloor }, whole[int64](0, maxHeapFloor)),
		keyOf("default_action", onReload, func(c *Config) *rules.Action { return &c.DefaultAction }, (*decoder).defaultAction),
		// Rules are compiled once every key is decoded (see top): they
		// need default_action, wherever it is in the file.
		{path: "rules", effect: onReload, decode: (*decoder).rulesKey},
	}
}

// minPersistInterval bounds pool.persist_interval: each persist writes
// every site's pool, and a shorter interval (1ns is a duration) would
// write them in a tight loop.
const minPersistInterval = time.Second

const (
	maxBodyLimit     = 64 << 20 // 64 MiB: a retry rule holds this much per request
	maxRetryAttempts = 100
	maxRequestLog    = 1_000_000 // the log keeps each request's headers: a few KiB each
	maxHeaderBytes   = 64 << 20  // 64 MiB: a client may make the proxy hold this much per request head
	maxHeapFloor     = 1 << 40   // 1 TiB: the garbage a heap floor lets the proxy hold
)

// keyOf is a key whose value dec decodes into the field get returns.
func keyOf[T any](path string, e effect, get func(*Config) *T, dec func(*decoder, *yaml.Node, string) (T, bool)) key {
	k := fieldKey(path, e, get)
	k.decode = func(d *decoder, v *yaml.Node, p string, c *Config) bool {
		x, ok := dec(d, v, p)
		if ok {
			*get(c) = x
		}
		return ok
	}
	return k
}

// sectionOf is a section whose keys fill the field get returns; check, if
// not nil, runs once they are decoded.
func sectionOf[T any](path string, e effect, get func(*Config) *T, check func(*decoder, *Config)) key {
	k := fieldKey(path, e, get)
	k.check = check
	return k
}

// fieldKey is a key without decode for the field get returns.
func fieldKey[T any](path string, e effect, get func(*Config) *T) key {
	return key{
		path:   path,
		effect: e,
		same:   func(a, b *Config) bool { return reflect.DeepEqual(*get(a), *get(b)) },
		keep:   func(dst, src *Config) { *get(dst) = *get(src) },
	}
}

// top decodes the root mapping into c, then checks what involves more than
// one key and compiles the rules.
func (d *decoder) top(root *yaml.Node, c *Config) {
	d.section(root, "", c, table())
	if c.AdminListen != "" && c.AdminListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		if at := cmp.Or(d.at["admin_listen"], d.at["listen"]); at != nil {
			d.ps.add(at.Line, "admin_listen", "must differ from listen", quote(c.AdminListen))
		}
	}
	specs := d.specs
	if d.at["rules"] == nil {
		specs = rules.DefaultSpecs()
	}
	d.compileRules(c, specs, d.ruleSrcs)
}

// section walks n, the mapping of the keys under path in keys, into c:
// each key it holds is decoded (and its node remembered for checks when it
// was taken), each section in it walked; then path's own check runs.
func (d *decoder) section(n *yaml.Node, path string, c *Config, keys []key) {
	var fields []field
	var check func(*decoder, *Config)
	for i := range keys {
		k := &keys[i]
		if k.path == path {
			check = k.check
			continue
		}
		parent, name := "", k.path
		if j := strings.LastIndexByte(k.path, '.'); j >= 0 {
			parent, name = k.path[:j], k.path[j+1:]
		}
		if parent != path {
			continue
		}
		fields = append(fields, field{name, func(v *yaml.Node, p string) {
			if k.decode == nil {
				d.section(v, p, c, keys)
			} else if k.decode(d, v, p, c) {
				d.at[k.path] = v
			}
		}})
	}
	d.mapping(n, path, fields)
	if check != nil {
		check(d, c)
	}
}

// RestartKeys names the keys that differ between two configs but take
// effect only at start, sorted. A section bound at start as a whole (pool)
// is named as one key. It only reads the configs.
func RestartKeys(old, next *Config) []string {
	var out []string
	for _, k := range restartKeys() {
		if !k.same(old, next) {
			out = append(out, k.path)
		}
	}
	slices.Sort(out)
	return out
}

// KeepRestartKeys gives next the values old has for every key that takes
// effect only at start, so that a config read again while old runs says
// what the running server does. It modifies next, which must not be in use
// yet; old is only read.
func KeepRestartKeys(old, next *Config) {
	for _, k := range restartKeys() {
		k.keep(next, old)
	}
}

// restartKeys returns the keys that take effect only at start, leaving out
// those under a section that does (the section stands for them).
func restartKeys() []key {
	var out []key
	for _, k := range table() { // sections come before their keys
		if k.effect != onRestart || slices.ContainsFunc(out, func(s key) bool { return strings.HasPrefix(k.path, s.path+".") }) {
			continue
		}
		out = append(out, k)
	}
	return out
}

// listenAddr decodes the proxy's host:port address.
func (d *decoder) listenAddr(v *yaml.Node, p string) (string, bool) {
	s, ok := d.str(v, p, false)
	return s, ok && d.addr(v, p, s)
}

// adminAddr decodes the admin API's host:port address, "" for none.
func (d *decoder) adminAddr(v *yaml.Node, p string) (string, bool) {
	s, ok := d.str(v, p, false)
	return s, ok && (s == "" || d.addr(v, p, s))
}

func (d *decoder) logLevel(v *yaml.Node, p string) (slog.Level, bool) {
	s, ok := d.enum(v, p, "debug", "info", "warn", "error")
	if !ok {
		return 0, false
	}
	return map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo,
		"warn": slog.LevelWarn, "error": slog.LevelError}[s], true
}

// adminHosts decodes the names the admin API answers besides its own
// address: each a host or host:port, lower-cased, the host without its
// root dot ("admin.example." is admin.example: the admin API takes a
// request's Host without it); nil when empty.
func (d *decoder) adminHosts(v *yaml.Node, p string) ([]string, bool) {
	var out []string
	d.list(v, p, func(_ int, it *yaml.Node, ip string) {
		s, ok := d.nonEmpty(it, ip)
		if !ok {
			return
		}
		if strings.ContainsAny(s, " /?#@") || hasCtl(s) {
			d.ps.add(it.Line, ip, "must be a host or host:port, like admin.example:8081", got(it))
			return
		}
		host, port := s, ""
		if h, pt, err := net.SplitHostPort(s); err == nil {
			if x, err := strconv.Atoi(pt); err != nil || x < 1 || x > 65535 {
				d.ps.add(it.Line, ip, "port must be a number from 1 to 65535", got(it))
				return
			}
			host, port = h, pt
		}
		host = strings.TrimSuffix(host, ".")
		if host == "" || strings.ContainsAny(host, "[]") {
			d.ps.add(it.Line, ip, "must be a host or host:port, like admin.example:8081", got(it))
			return
		}
		if port != "" {
			host = net.JoinHostPort(host, port)
		}
		out = append(out, strings.ToLower(host))
	})
	return out, true
}

// token decodes a bearer token: a secret, never shown in problems.
func (d *decoder) token(v *yaml.Node, p string) (string, bool) {
	s, ok := d.str(v, p, true)
	if !ok {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			d.ps.add(v.Line, p, "must be printable ASCII without spaces", "")
			return "", false
		}
	}
	return s, true
}

// sessionHeader decodes the session header's name, canonicalized.
func (d *decoder) sessionHeader(v *yaml.Node, p string) (string, bool) {
	s, ok := d.nonEmpty(v, p)
	if !ok {
		return "", false
	}
	if !rules.ValidHeaderName(s) {
		d.ps.add(v.Line, p, "must be a valid header name (letters, digits, -)", got(v))
		return "", false
	}
	if msg := reservedHeader(http.CanonicalHeaderKey(s)); msg != "" {
		d.ps.add(v.Line, p, msg, got(v))
		return "", false
	}
	return http.CanonicalHeaderKey(s), true
}

// reservedHeader says why a canonical header name cannot be the session
// header, "" when it can.
func reservedHeader(name string) string {
	switch name {
	case "Host", "Cookie", "Set-Cookie", "Proxy-Authorization", "Proxy-Authenticate", "Authorization",
		"Connection", "Content-Length", "Transfer-Encoding", "Upgrade", "X-Session-Rule", "X-Session-Retries":
		return "must not be a header HTTP or the proxy uses itself"
	case "Proxy-Connection", "Keep-Alive", "Te", "Trailer":
		// Dropped before the session is read: hop-by-hop (RFC 9110 7.6.1),
		// or taken by net/http (Trailer; TE, which HTTP/2 allows only as
		// "trailers").
		return "must not be a hop-by-hop header: it is dropped before the session is read"
	case "Expect":
		// net/http answers 417 to any value but 100-continue.
		return "must not be Expect: any value but 100-continue gets 417"
	}
	return ""
}

// users decodes the mapping of user names to passwords; nil when empty.
func (d *decoder) users(v *yaml.Node, p string) (map[string]string, bool) {
	if v.Kind != yaml.MappingNode {
		d.ps.add(v.Line, p, "must be a mapping of user name to password", gotSecret(v))
		return nil, false
	}
	var users map[string]string
	// A name with a colon may be "name:password" written as one: it is
	// never shown, nor one with control characters, which would break the
	// problem's line.
	shown := func(name string) bool { return !strings.Contains(name, ":") && !hasCtl(name) }
	keyPath := func(name string) string {
		if !shown(name) {
			return p
		}
		return join(p, name)
	}
	d.pairsAt(v, p, "user names must be strings", keyPath, func(k, pw *yaml.Node, up string) {
		switch {
		case k.Value == "":
			d.ps.add(k.Line, p, "user name must not be empty", "")
			return
		case !shown(k.Value):
			d.ps.add(k.Line, p, "user name must not contain a colon or control characters", "")
			return
		case !usableUserName(k.Value):
			d.ps.add(k.Line, up, `user name must not be "session", start with "session-", end with "-session" or contain "-session-" (a proxy username carries the session name that way)`, "")
			return
		}
		if isNull(pw) {
			d.ps.add(k.Line, up, "password must not be empty", "")
			return
		}
		s, ok := d.str(pw, up, true)
		if !ok {
			return
		}
		if s == "" {
			d.ps.add(pw.Line, up, "password must not be empty", "")
			return
		}
		if users == nil {
			users = map[string]string{}
		}
		users[k.Value] = s
	})
	return users, true
}

// hostGlobs decodes a list of host globs, lower-cased; nil when empty.
func (d *decoder) hostGlobs(v *yaml.Node, p string) ([]string, bool) {
	var out []string
	d.list(v, p, func(_ int, it *yaml.Node, ip string) {
		if g, ok := d.hostGlob(it, ip); ok {
			out = append(out, g)
		}
	})
	return out, true
}

// files decodes a list of file names; nil when empty.
func (d *decoder) files(v *yaml.Node, p string) ([]string, bool) {
	return d.strList(v, p), true
}

// checkCA reports a CA certificate without its key, or a key without its
// certificate.
func (d *decoder) checkCA(c *Config) {
	if (c.MITM.CACert == "") != (c.MITM.CAKey == "") {
		at, name := d.at["mitm.ca_cert"], "ca_cert"
		if at == nil {
			at, name = d.at["mitm.ca_key"], "ca_key"
		}
		d.ps.add(at.Line, join("mitm", name), "ca_cert and ca_key must be set together", "")
	}
}

// checkPersistKey reports a pool.persist_state_key the file store cannot
// name its files after (sessionpool's FileStore refuses it when the pool
// opens, after the CA was made): one holding a path separator, NUL or "..",
// or too long to leave room for a site's "@<site>". A Redis store takes any
// key.
func (d *decoder) checkPersistKey(c *Config) {
	at := d.at["pool.persist_state_key"]
	if at == nil || c.Pool.Store != StoreFile {
		return
	}
	if msg := fileKeyProblem(c.Pool.PersistStateKey); msg != "" {
		d.ps.add(at.Line, "pool.persist_state_key", msg, got(at))
	}
}

// maxPersistKeyLen bounds pool.persist_state_key with the file store. The
// pools are kept in data_dir as <key>.json, <key>.sites.json and
// <key>@<site>.json, and the store takes keys of at most 218 bytes (a file
// name's 255, less its suffixes: sessionpool's maxKeyLen); 64 leaves room
// for "@" and a site of 153 bytes.
const maxPersistKeyLen = 64

// fileKeyProblem says what makes key unfit to name the file store's files
// ("" when nothing does): the rules of sessionpool's keyProblem, and room
// for "@<site>" after it.
func fileKeyProblem(key string) string {
	switch {
	case strings.ContainsAny(key, `/\`+"\x00"):
		return `must not hold "/", "\" or NUL: it names files in data_dir`
	case strings.Contains(key, ".."):
		return `must not hold "..": it names files in data_dir`
	case len(key) > maxPersistKeyLen:
		return fmt.Sprintf(`must be at most %d bytes: it names files in data_dir, with "@<site>" after it`, maxPersistKeyLen)
	}
	return ""
}

// store decodes pool.store: "file" or a Redis URL, a secret (only shown
// redacted).
func (d *decoder) store(v *yaml.Node, p string) (Store, bool) {
	s, ok := d.str(v, p, true)
	if !ok {
		return "", false
	}
	if Store(s) == StoreFile {
		return StoreFile, true
	}
	msg := parseStore(s)
	if msg != "" {
		d.ps.add(v.Line, p, msg, quote(upstream.Redact(s)))
		return "", false
	}
	return Store(s), true
}

// upstreams decodes the list of upstream proxy URLs, secrets (only shown
// redacted); nil when empty.
func (d *decoder) upstreams(v *yaml.Node, p string) ([]*url.URL, bool) {
	if v.Kind != yaml.SequenceNode {
		d.ps.add(v.Line, p, "must be a list", gotSecret(v)) // a URL given alone holds its password
		return nil, false
	}
	var out []*url.URL
	d.list(v, p, func(_ int, it *yaml.Node, ip string) {
		s, ok := d.str(it, ip, true)
		if !ok {
			return
		}
		u, err := upstream.Parse(s)
		var pe *upstream.ParseError
		if errors.As(err, &pe) {
			d.ps.add(it.Line, ip, pe.Problem, quote(pe.URL))
			return
		}
		out = append(out, u)
	})
	return out, true
}

func (d *decoder) defaultAction(v *yaml.Node, p string) (rules.Action, bool) {
	s, ok := d.str(v, p, false)
	if !ok {
		return "", false
	}
	if s != "" && !rules.Action(s).Valid() {
		d.ps.add(v.Line, p, `must be "" (built-in default) or one of good, bad, retire, none`, got(v))
		return "", false
	}
	return rules.Action(s), true
}

// whole decodes a whole number in [lo, hi].
func whole[T ~int | ~int64](lo, hi int64) func(*decoder, *yaml.Node, string) (T, bool) {
	return func(d *decoder, v *yaml.Node, p string) (T, bool) {
		x, ok := d.integer(v, p, lo, hi)
		return T(x), ok
	}
}

// atLeast decodes a duration of at least lo.
func atLeast(lo time.Duration) func(*decoder, *yaml.Node, string) (time.Duration, bool) {
	return func(d *decoder, v *yaml.Node, p string) (time.Duration, bool) {
		x, ok := d.duration(v, p)
		if ok && x < lo {
			d.ps.add(v.Line, p, "must be at least "+lo.String(), got(v))
			return 0, false
		}
		return x, ok
	}
}

// number decodes a finite number: > 0 when positive, else >= 0.
func number(positive bool) func(*decoder, *yaml.Node, string) (float64, bool) {
	return func(d *decoder, v *yaml.Node, p string) (float64, bool) { return d.number(v, p, positive) }
}

// choice decodes one of choices, each written as itself.
func choice[T ~string](choices ...T) func(*decoder, *yaml.Node, string) (T, bool) {
	return func(d *decoder, v *yaml.Node, p string) (T, bool) { return oneOf(d, v, p, choices...) }
}

// named decodes one of choices, each written as its String().
func named[T fmt.Stringer](choices ...T) func(*decoder, *yaml.Node, string) (T, bool) {
	return func(d *decoder, v *yaml.Node, p string) (T, bool) { return oneOfNamed(d, v, p, choices...) }
}
