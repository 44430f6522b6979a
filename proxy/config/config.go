// Package config reads the proxy's configuration: a YAML file decoded
// strictly into a Config, with every problem reported at once, each with its
// file, line and key path, in an *Error.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

// ErrInvalid is matched (with errors.Is) by every *Error.
var ErrInvalid = errors.New("config: invalid configuration")

// Config is the proxy's configuration. Load and Parse fill defaults for
// absent keys; Default returns a Config holding only defaults. A Config is
// not modified by the proxy after it has been loaded, so it may be read from
// any number of goroutines.
type Config struct {
	Path          string        // file it was loaded from ("" for defaults)
	Listen        string        // proxy address; default 127.0.0.1:8080
	LogFormat     string        // text (default) | json
	LogLevel      slog.Level    // debug | info (default) | warn | error
	AdminListen   string        // admin API address; default 127.0.0.1:8081; "" disables it
	AdminToken    string        // bearer token wanted by the admin API; "" = none
	DataDir       string        // CA and persisted pool state; default ./data
	SessionHeader string        // default X-Session-Id
	Affinity      string        // tunnel (default) | client | request
	ClientIdle    time.Duration // idle time after which a client's session is forgotten; default 5m
	Cookies       string        // merge (default) | session | client
	Auth          Auth          // client authentication
	MITM          MITM          // HTTPS interception
	Pool          Pool          // the session pool
	Upstreams     []*url.URL    // upstream proxies (http, https, socks5, socks5h); nil = direct
	BodyLimit     int64         // bytes of a body inspected by body rules; default 65536
	Retry         Retry         // retries of blocked requests
	DefaultAction rules.Action  // action when no rule matches; "" = good below 400, else none
	Rules         *rules.Set    // compiled rules; rules.Defaults() when the rules key is absent
}

// Auth is the client authentication of the proxy.
type Auth struct {
	Users     map[string]string // user name -> password; nil = no client auth
	Challenge bool              // answer 407 to requests without credentials
}

// MITM configures HTTPS interception.
type MITM struct {
	Enabled            bool     // default true
	CACert             string   // CA certificate file; "" = <data_dir>/ca.pem, generated if missing
	CAKey              string   // CA key file; set together with CACert
	SkipHosts          []string // host globs tunnelled without interception (lower case)
	UpstreamCA         []string // extra CA files trusted for upstream TLS
	InsecureSkipVerify bool     // do not verify upstream TLS (default false)
}

// Pool configures the session pool.
type Pool struct {
	MaxPoolSize     int           // default 1000
	Strategy        string        // random (default) | round-robin | use-until-failure
	Store           string        // "file" (default, in data_dir) or a redis:// or rediss:// URL
	PersistStateKey string        // default SDK_SESSION_POOL_STATE
	PersistInterval time.Duration // default 60s
	Session         Session       // limits of each new session
}

// Session holds the limits of each new session.
type Session struct {
	MaxAge              time.Duration // default 50m
	MaxUsageCount       int           // default 50
	MaxErrorScore       float64       // default 3
	ErrorScoreDecrement float64       // default 0.5
}

// Retry configures retries of blocked requests.
type Retry struct {
	MaxAttempts int // extra attempts at most; default 2; 0 = never retry
}

// Default returns a new Config holding the defaults of every key.
func Default() *Config {
	return &Config{
		Listen:        "127.0.0.1:8080",
		LogFormat:     "text",
		LogLevel:      slog.LevelInfo,
		AdminListen:   "127.0.0.1:8081",
		DataDir:       "./data",
		SessionHeader: "X-Session-Id",
		Affinity:      "tunnel",
		ClientIdle:    5 * time.Minute,
		Cookies:       "merge",
		MITM:          MITM{Enabled: true},
		Pool: Pool{
			MaxPoolSize:     1000,
			Strategy:        "random",
			Store:           "file",
			PersistStateKey: "SDK_SESSION_POOL_STATE",
			PersistInterval: 60 * time.Second,
			Session: Session{
				MaxAge:              50 * time.Minute,
				MaxUsageCount:       50,
				MaxErrorScore:       3,
				ErrorScoreDecrement: 0.5,
			},
		},
		BodyLimit: 65536,
		Retry:     Retry{MaxAttempts: 2},
		Rules:     rules.Defaults(),
	}
}

// Problem is one thing wrong in a configuration.
type Problem struct {
	File string // as given to Parse
	Line int    // 1-based; 0 when unknown
	Path string // key path like pool.strategy or rules[2].status; "" for the whole file
	Msg  string // what is wrong
	Got  string // the offending value as written (quoted when a string); "" when not shown
}

// String formats the problem as FILE:LINE: path: msg (got X).
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Got != "" {
		fmt.Fprintf(&b, " (got %s)", p.Got)
	}
	return b.String()
}

// Error holds every problem found in a configuration, in file order.
// errors.Is(err, ErrInvalid) holds for it.
type Error struct {
	Problems []Problem
}

// Error lists the problems, one a line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// problems collects Problems.
type problems []Problem

func (ps *problems) add(line int, path, msg, got string) {
	*ps = append(*ps, Problem{Line: line, Path: path, Msg: msg, Got: got})
}

// err returns a *Error for the problems (sorted by line, file set),
// or nil when there are none.
func (ps problems) err(file string) error {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone([]Problem(ps))
	for i := range out {
		out[i].File = file
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return &Error{Problems: out}
}

// Load reads the configuration file at path and parses it (see Parse).
// A file that cannot be read gives the read error, wrapped; a file with
// problems gives a *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a YAML configuration strictly; name is the file name used in
// problems and recorded as Config.Path. Absent keys, and keys whose value is
// null, get their defaults; an empty document is all defaults. Every problem
// (unknown keys, wrong types, bad values, duplicate keys, bad regexes...) is
// reported at once in a *Error; secrets (admin_token, passwords,
// credentials in URLs) never appear in it.
func Parse(name string, data []byte) (*Config, error) {
	d := &decoder{}
	c := d.parse(data)
	if err := d.ps.err(name); err != nil {
		return nil, err
	}
	c.Path = name
	return c, nil
}

// decoder walks a yaml.Node tree into a Config, collecting problems.
type decoder struct {
	ps problems
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) syntax(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.ps.add(line, "", "invalid YAML: "+msg, "")
}

// decodeYAML decodes one document, turning a panic of the YAML library into
// a problem (bad input must never crash the program).
func decodeYAML(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(n)
}

func (d *decoder) parse(data []byte) *Config {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := decodeYAML(dec, &doc)
	if err == io.EOF {
		return c
	}
	if err != nil {
		d.syntax(err)
		return c
	}
	var extra yaml.Node
	if err := decodeYAML(dec, &extra); err != io.EOF {
		if err != nil {
			d.syntax(err)
		} else {
			d.ps.add(extra.Line, "", "only one YAML document is allowed", "")
		}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return c
		}
		root = root.Content[0]
	}
	root = resolve(root)
	if isNull(root) {
		return c
	}
	d.top(root, c)
	return c
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// got describes a node's value for a problem, quoting strings.
func got(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil || n.Kind == 0:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	case n.Tag == "!!str" || n.Tag == "!!binary" || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		return quote(n.Value)
	}
	return rules.ClipText(n.Value, 80)
}

// quote quotes s for a problem, shortening long values.
func quote(s string) string { return strconv.Quote(rules.ClipText(s, 80)) }

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// field is one known key of a mapping and what to do with its value.
type field struct {
	key string
	fn  func(v *yaml.Node, path string)
}

// mapping walks a mapping node: unknown and duplicate keys are problems;
// null values are skipped (the key keeps its default).
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		if path == "" {
			d.ps.add(n.Line, path, "the configuration must be a mapping of keys to values", got(n))
		} else {
			d.ps.add(n.Line, path, "must be a mapping", got(n))
		}
		return
	}
	d.pairs(n, path, "keys must be plain names", func(k, v *yaml.Node, kp string) {
		var f *field
		for j := range fields {
			if fields[j].key == k.Value {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			keys := make([]string, len(fields))
			for j := range fields {
				keys[j] = fields[j].key
			}
			d.ps.add(k.Line, kp, unknownKey(k.Value, keys), "")
			return
		}
		if isNull(v) {
			return
		}
		f.fn(v, kp)
	})
}

// pairs calls fn, in order, for each key of the mapping node n with its
// (resolved) value and its path, after reporting the keys that are not
// scalars (badKey says what they must be), merge keys, and keys repeating
// an earlier one.
func (d *decoder) pairs(n *yaml.Node, path, badKey string, fn func(k, v *yaml.Node, keyPath string)) {
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.ps.add(k.Line, path, badKey, got(k))
			continue
		}
		if k.Tag == "!!merge" {
			d.ps.add(k.Line, path, "merge keys (<<) are not supported", "")
			continue
		}
		kp := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.ps.add(k.Line, kp, fmt.Sprintf("duplicate key (first at line %d)", first), "")
			continue
		}
		seen[k.Value] = k.Line
		fn(k, v, kp)
	}
}

// unknownKey words the problem of an unknown key, suggesting the closest
// known one.
func unknownKey(key string, known []string) string {
	if s := closest(key, known); s != "" {
		return "unknown key (did you mean " + s + "?)"
	}
	return "unknown key (known: " + strings.Join(known, ", ") + ")"
}

func closest(key string, known []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
	}
	nk := norm(key)
	best, bestD := "", 1<<30
	for _, k := range known {
		if norm(k) == nk {
			return k
		}
		if len(nk) >= 3 && strings.HasPrefix(norm(k), nk) {
			return k
		}
		if dist := levenshtein(nk, norm(k)); dist < bestD {
			best, bestD = k, dist
		}
	}
	limit := 2
	if len(nk) >= 9 {
		limit = 3
	}
	if bestD <= limit && bestD < len(nk) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalar reports whether n is a scalar, adding a problem naming want if not.
func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.ps.add(n.Line, path, "must be "+want, got(n))
		return false
	}
	return true
}

// str decodes a string; numbers are taken as written, booleans are refused.
// A secret's value is never shown.
func (d *decoder) str(n *yaml.Node, path string, secret bool) (string, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		g := got(n)
		if secret {
			g = ""
		}
		d.ps.add(n.Line, path, "must be a string (quote it)", g)
		return "", false
	}
	if !d.scalar(n, path, "a string") {
		return "", false
	}
	return n.Value, true
}

func (d *decoder) enum(n *yaml.Node, path string, choices ...string) (string, bool) {
	s, ok := d.str(n, path, false)
	if !ok {
		return "", false
	}
	if !slices.Contains(choices, s) {
		d.ps.add(n.Line, path, "must be one of "+strings.Join(choices, ", "), got(n))
		return "", false
	}
	return s, true
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.ps.add(n.Line, path, "must be true or false", got(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.ps.add(n.Line, path, "must be true or false", got(n))
		return false, false
	}
	return b, true
}

// integer decodes a whole number in [lo, hi].
func (d *decoder) integer(n *yaml.Node, path string, lo, hi int64) (int64, bool) {
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		d.ps.add(n.Line, path, "must be a whole number", got(n))
		return 0, false
	}
	return v, d.bounds(n, path, float64(v), float64(lo), float64(hi), true)
}

func (d *decoder) bounds(n *yaml.Node, path string, v, lo, hi float64, whole bool) bool {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	switch {
	case v < 0 && lo >= 0:
		d.ps.add(n.Line, path, "must not be negative", got(n))
	case v < lo && lo == 1 && whole:
		d.ps.add(n.Line, path, "must be at least 1", got(n))
	case v < lo:
		d.ps.add(n.Line, path, "must be at least "+f(lo), got(n))
	case v > hi:
		d.ps.add(n.Line, path, "must be at most "+f(hi), got(n))
	default:
		return true
	}
	return false
}

// number decodes a finite number; positive requires > 0, else >= 0.
func (d *decoder) number(n *yaml.Node, path string, positive bool) (float64, bool) {
	var v float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&v) != nil ||
		v != v || v > 1e300 || v < -1e300 {
		d.ps.add(n.Line, path, "must be a number", got(n))
		return 0, false
	}
	switch {
	case v < 0:
		d.ps.add(n.Line, path, "must not be negative", got(n))
	case v == 0 && positive:
		d.ps.add(n.Line, path, "must be greater than 0", got(n))
	default:
		return v, true
	}
	return 0, false
}

// duration decodes a positive Go duration ("90s", "5m", "1h30m").
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.ps.add(n.Line, path, `must be a duration with a unit, like "90s" or "5m"`, got(n))
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil:
		d.ps.add(n.Line, path, `must be a duration with a unit, like "90s" or "5m"`, got(n))
	case v < 0:
		d.ps.add(n.Line, path, "must not be negative", got(n))
	case v == 0:
		d.ps.add(n.Line, path, "must be greater than 0", got(n))
	default:
		return v, true
	}
	return 0, false
}

// list decodes a list, calling fn for each item with its path.
func (d *decoder) list(n *yaml.Node, path string, fn func(i int, item *yaml.Node, path string)) {
	if n.Kind != yaml.SequenceNode {
		d.ps.add(n.Line, path, "must be a list", got(n))
		return
	}
	for i, it := range n.Content {
		fn(i, resolve(it), fmt.Sprintf("%s[%d]", path, i))
	}
}

// strList decodes a list of non-empty strings; nil for an empty list.
func (d *decoder) strList(n *yaml.Node, path string) []string {
	var out []string
	d.list(n, path, func(_ int, it *yaml.Node, p string) {
		s, ok := d.str(it, p, false)
		if !ok {
			return
		}
		if s == "" {
			d.ps.add(it.Line, p, "must not be empty", "")
			return
		}
		out = append(out, s)
	})
	return out
}

// top decodes the root mapping into c.
func (d *decoder) top(root *yaml.Node, c *Config) {
	var (
		rulesNode  *yaml.Node
		specs      []rules.Spec
		ruleLines  []map[string]int
		listenNode *yaml.Node
		adminNode  *yaml.Node
	)
	d.mapping(root, "", []field{
		{"listen", func(v *yaml.Node, p string) {
			if s, ok := d.str(v, p, false); ok && d.addr(v, p, s) {
				c.Listen, listenNode = s, v
			}
		}},
		{"log_format", func(v *yaml.Node, p string) {
			if s, ok := d.enum(v, p, "text", "json"); ok {
				c.LogFormat = s
			}
		}},
		{"log_level", func(v *yaml.Node, p string) {
			if s, ok := d.enum(v, p, "debug", "info", "warn", "error"); ok {
				c.LogLevel = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo,
					"warn": slog.LevelWarn, "error": slog.LevelError}[s]
			}
		}},
		{"admin_listen", func(v *yaml.Node, p string) {
			if s, ok := d.str(v, p, false); ok && (s == "" || d.addr(v, p, s)) {
				c.AdminListen, adminNode = s, v
			}
		}},
		{"admin_token", func(v *yaml.Node, p string) {
			s, ok := d.str(v, p, true)
			if !ok {
				return
			}
			for i := 0; i < len(s); i++ {
				if s[i] <= ' ' || s[i] > '~' {
					d.ps.add(v.Line, p, "must be printable ASCII without spaces", "")
					return
				}
			}
			c.AdminToken = s
		}},
		{"data_dir", func(v *yaml.Node, p string) {
			if s, ok := d.nonEmpty(v, p); ok {
				c.DataDir = s
			}
		}},
		{"session_header", func(v *yaml.Node, p string) {
			s, ok := d.nonEmpty(v, p)
			if !ok {
				return
			}
			switch {
			case !rules.ValidHeaderName(s):
				d.ps.add(v.Line, p, "must be a valid header name (letters, digits, -)", got(v))
			case reservedHeaders[http.CanonicalHeaderKey(s)]:
				d.ps.add(v.Line, p, "must not be a header HTTP or the proxy uses itself", got(v))
			default:
				c.SessionHeader = http.CanonicalHeaderKey(s)
			}
		}},
		{"affinity", func(v *yaml.Node, p string) {
			if s, ok := d.enum(v, p, "tunnel", "client", "request"); ok {
				c.Affinity = s
			}
		}},
		{"client_idle", func(v *yaml.Node, p string) {
			if x, ok := d.duration(v, p); ok {
				c.ClientIdle = x
			}
		}},
		{"cookies", func(v *yaml.Node, p string) {
			if s, ok := d.enum(v, p, "merge", "session", "client"); ok {
				c.Cookies = s
			}
		}},
		{"auth", func(v *yaml.Node, p string) { d.auth(v, p, &c.Auth) }},
		{"mitm", func(v *yaml.Node, p string) { d.mitm(v, p, &c.MITM) }},
		{"pool", func(v *yaml.Node, p string) { d.pool(v, p, &c.Pool) }},
		{"upstreams", func(v *yaml.Node, p string) {
			d.list(v, p, func(_ int, it *yaml.Node, ip string) {
				s, ok := d.str(it, ip, true)
				if !ok {
					return
				}
				u, msg := parseUpstream(s)
				if msg != "" {
					d.ps.add(it.Line, ip, msg, quote(redactRaw(s, u)))
					return
				}
				c.Upstreams = append(c.Upstreams, u)
			})
		}},
		{"body_limit", func(v *yaml.Node, p string) {
			if x, ok := d.integer(v, p, 1, maxBodyLimit); ok {
				c.BodyLimit = x
			}
		}},
		{"retry", func(v *yaml.Node, p string) {
			d.mapping(v, p, []field{
				{"max_attempts", func(v *yaml.Node, p string) {
					if x, ok := d.integer(v, p, 0, maxRetryAttempts); ok {
						c.Retry.MaxAttempts = int(x)
					}
				}},
			})
		}},
		{"default_action", func(v *yaml.Node, p string) {
			s, ok := d.str(v, p, false)
			if !ok {
				return
			}
			if s != "" && !rules.Action(s).Valid() {
				d.ps.add(v.Line, p, `must be "" (built-in default) or one of good, bad, retire, none`, got(v))
				return
			}
			c.DefaultAction = rules.Action(s)
		}},
		{"rules", func(v *yaml.Node, p string) {
			rulesNode = v
			specs, ruleLines = d.rules(v, p)
		}},
	})
	if c.AdminListen != "" && c.AdminListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		if at := cmp.Or(adminNode, listenNode); at != nil {
			d.ps.add(at.Line, "admin_listen", "must differ from listen", quote(c.AdminListen))
		}
	}
	if rulesNode == nil {
		specs = rules.DefaultSpecs()
	}
	d.compileRules(c, specs, ruleLines)
}

// compileRules compiles the decoded rules into c.Rules, reporting each
// problem at the line of the key it is about, or else of its rule.
func (d *decoder) compileRules(c *Config, specs []rules.Spec, lines []map[string]int) {
	rs, err := rules.Compile(specs, c.DefaultAction)
	if err == nil {
		c.Rules = rs
		return
	}
	var re *rules.Error
	if !errors.As(err, &re) {
		d.ps.add(0, "rules", err.Error(), "") // not one of Compile's
		return
	}
	for _, p := range re.Problems {
		line := 0
		if p.Rule >= 0 && p.Rule < len(lines) {
			line = lines[p.Rule][p.Field]
			if line == 0 {
				line = lines[p.Rule][""]
			}
		}
		d.ps.add(line, p.Path(), p.Msg, p.Got)
	}
}

const (
	maxBodyLimit     = 64 << 20 // 64 MiB: a retry rule holds this much per request
	maxRetryAttempts = 100
)

// reservedHeaders cannot be the session header.
var reservedHeaders = map[string]bool{
	"Host": true, "Cookie": true, "Set-Cookie": true, "Proxy-Authorization": true,
	"Proxy-Authenticate": true, "Authorization": true, "Connection": true,
	"Content-Length": true, "Transfer-Encoding": true, "Upgrade": true,
	"X-Session-Rule": true, "X-Session-Retries": true,
}

func (d *decoder) nonEmpty(n *yaml.Node, path string) (string, bool) {
	s, ok := d.str(n, path, false)
	if ok && s == "" {
		d.ps.add(n.Line, path, "must not be empty", "")
		return "", false
	}
	return s, ok
}

// addr checks a host:port listen address.
func (d *decoder) addr(n *yaml.Node, path, s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		d.ps.add(n.Line, path, "must be host:port, like 127.0.0.1:8080", got(n))
		return false
	}
	if x, err := strconv.Atoi(port); err != nil || x < 0 || x > 65535 {
		d.ps.add(n.Line, path, "port must be a number from 0 to 65535", got(n))
		return false
	}
	return true
}

func (d *decoder) auth(n *yaml.Node, path string, a *Auth) {
	d.mapping(n, path, []field{
		{"users", func(v *yaml.Node, p string) {
			if v.Kind != yaml.MappingNode {
				d.ps.add(v.Line, p, "must be a mapping of user name to password", got(v))
				return
			}
			d.pairs(v, p, "user names must be strings", func(k, pw *yaml.Node, up string) {
				switch {
				case k.Value == "":
					d.ps.add(k.Line, p, "user name must not be empty", "")
					return
				case strings.ContainsAny(k.Value, ":") || hasCtl(k.Value):
					d.ps.add(k.Line, up, "user name must not contain a colon or control characters", "")
					return
				case strings.Contains(k.Value, "-session-"):
					d.ps.add(k.Line, up, `user name must not contain "-session-" (it starts the session name)`, "")
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
				if a.Users == nil {
					a.Users = map[string]string{}
				}
				a.Users[k.Value] = s
			})
		}},
		{"challenge", func(v *yaml.Node, p string) {
			if b, ok := d.boolean(v, p); ok {
				a.Challenge = b
			}
		}},
	})
}

func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func (d *decoder) mitm(n *yaml.Node, mp string, m *MITM) {
	var certNode, keyNode *yaml.Node
	d.mapping(n, mp, []field{
		{"enabled", func(v *yaml.Node, p string) {
			if b, ok := d.boolean(v, p); ok {
				m.Enabled = b
			}
		}},
		{"ca_cert", func(v *yaml.Node, p string) {
			if s, ok := d.str(v, p, false); ok {
				m.CACert, certNode = s, v
			}
		}},
		{"ca_key", func(v *yaml.Node, p string) {
			if s, ok := d.str(v, p, false); ok {
				m.CAKey, keyNode = s, v
			}
		}},
		{"skip_hosts", func(v *yaml.Node, p string) {
			d.list(v, p, func(_ int, it *yaml.Node, ip string) {
				s, ok := d.nonEmpty(it, ip)
				if !ok {
					return
				}
				if _, err := path.Match(s, ""); err != nil {
					d.ps.add(it.Line, ip, "invalid glob", got(it))
					return
				}
				m.SkipHosts = append(m.SkipHosts, strings.ToLower(s))
			})
		}},
		{"upstream_ca", func(v *yaml.Node, p string) { m.UpstreamCA = d.strList(v, p) }},
		{"insecure_skip_verify", func(v *yaml.Node, p string) {
			if b, ok := d.boolean(v, p); ok {
				m.InsecureSkipVerify = b
			}
		}},
	})
	if (m.CACert == "") != (m.CAKey == "") {
		at, key := certNode, "ca_cert"
		if at == nil {
			at, key = keyNode, "ca_key"
		}
		d.ps.add(at.Line, join(mp, key), "ca_cert and ca_key must be set together", "")
	}
}

// SkipHost reports whether host (a port is ignored; case-insensitive)
// matches one of the skip_hosts globs.
func (m *MITM) SkipHost(host string) bool {
	host = rules.NormHost(host)
	for _, g := range m.SkipHosts {
		if ok, _ := path.Match(g, host); ok {
			return true
		}
	}
	return false
}

func (d *decoder) pool(n *yaml.Node, path string, pc *Pool) {
	d.mapping(n, path, []field{
		{"max_pool_size", func(v *yaml.Node, p string) {
			if x, ok := d.integer(v, p, 1, 1<<31-1); ok {
				pc.MaxPoolSize = int(x)
			}
		}},
		{"strategy", func(v *yaml.Node, p string) {
			if s, ok := d.enum(v, p, "random", "round-robin", "use-until-failure"); ok {
				pc.Strategy = s
			}
		}},
		{"store", func(v *yaml.Node, p string) {
			s, ok := d.str(v, p, true)
			if !ok {
				return
			}
			if s == "file" {
				pc.Store = s
				return
			}
			u, msg := parseStore(s)
			if msg != "" {
				d.ps.add(v.Line, p, msg, quote(redactRaw(s, u)))
				return
			}
			pc.Store = s
		}},
		{"persist_state_key", func(v *yaml.Node, p string) {
			if s, ok := d.nonEmpty(v, p); ok {
				pc.PersistStateKey = s
			}
		}},
		{"persist_interval", func(v *yaml.Node, p string) {
			if x, ok := d.duration(v, p); ok {
				pc.PersistInterval = x
			}
		}},
		{"session", func(v *yaml.Node, p string) {
			s := &pc.Session
			d.mapping(v, p, []field{
				{"max_age", func(v *yaml.Node, p string) {
					if x, ok := d.duration(v, p); ok {
						s.MaxAge = x
					}
				}},
				{"max_usage_count", func(v *yaml.Node, p string) {
					if x, ok := d.integer(v, p, 1, 1<<31-1); ok {
						s.MaxUsageCount = int(x)
					}
				}},
				{"max_error_score", func(v *yaml.Node, p string) {
					if x, ok := d.number(v, p, true); ok {
						s.MaxErrorScore = x
					}
				}},
				{"error_score_decrement", func(v *yaml.Node, p string) {
					if x, ok := d.number(v, p, false); ok {
						s.ErrorScoreDecrement = x
					}
				}},
			})
		}},
	})
}

// parseUpstream parses an upstream proxy URL; msg is "" when it is valid.
func parseUpstream(s string) (u *url.URL, msg string) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return nil, "must be a URL like http://host:port"
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "socks5", "socks5h":
	default:
		return u, "scheme must be one of http, https, socks5, socks5h"
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if msg := checkHostPort(u); msg != "" {
		return u, msg
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return u, "must not have a path, query or fragment"
	}
	u.Path = ""
	return u, ""
}

// parseStore parses a redis:// or rediss:// store URL.
func parseStore(s string) (u *url.URL, msg string) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || (u.Scheme != "redis" && u.Scheme != "rediss") {
		if err == nil {
			return u, `must be "file" or a redis:// or rediss:// URL`
		}
		return nil, `must be "file" or a redis:// or rediss:// URL`
	}
	if msg := checkHostPort(u); msg != "" {
		return u, msg
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return u, "database must be a number, like redis://host:6379/0"
		}
	}
	// go-redis's own reading of it: its URL options (pool_size=...) and
	// their values. Its messages quote options, never the password.
	if _, err := redis.ParseURL(s); err != nil {
		return u, strings.TrimPrefix(err.Error(), "redis: ")
	}
	return u, ""
}

func checkHostPort(u *url.URL) string {
	if u.Hostname() == "" {
		return "needs a host"
	}
	port := u.Port()
	if port == "" {
		return "needs a port (host:port)"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "port must be a number from 1 to 65535"
	}
	return ""
}

// redactRaw shows a URL without its credentials: u.Redacted() when it
// parsed, else the text with everything before the last @ of its authority
// replaced.
func redactRaw(s string, u *url.URL) string {
	if u != nil {
		return u.Redacted()
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	start := 0
	if j := strings.Index(s, "://"); j >= 0 && j < at {
		start = j + 3
	}
	return s[:start] + "xxxxx" + s[at:]
}

// rules decodes the rules list into specs, with the line of each field
// ("" = the rule itself) for problems found when compiling.
func (d *decoder) rules(n *yaml.Node, path string) ([]rules.Spec, []map[string]int) {
	var specs []rules.Spec
	var lines []map[string]int
	d.list(n, path, func(i int, it *yaml.Node, rp string) {
		var s rules.Spec
		ln := map[string]int{"": it.Line}
		conds := 0
		nonEmptyStr := func(v *yaml.Node, p string) (string, bool) {
			str, ok := d.str(v, p, false)
			if ok && str == "" {
				d.ps.add(v.Line, p, "must not be empty (leave the key out)", "")
				return "", false
			}
			return str, ok
		}
		d.mapping(it, rp, []field{
			{"name", func(v *yaml.Node, p string) {
				if str, ok := d.str(v, p, false); ok {
					s.Name, ln["name"] = str, v.Line
				}
			}},
			{"status", func(v *yaml.Node, p string) {
				conds++
				ln["status"] = v.Line
				items := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					items = v.Content
					if len(items) == 0 {
						d.ps.add(v.Line, p, "must not be empty (leave the key out)", "")
					}
				}
				for _, x := range items {
					x = resolve(x)
					if x.Kind != yaml.ScalarNode || (x.Tag != "!!int" && x.Tag != "!!str") {
						d.ps.add(x.Line, p, `must be a status code or a class like "4xx", or a list of them`, got(x))
						continue
					}
					if _, _, ok := rules.ParseStatus(x.Value); !ok {
						d.ps.add(x.Line, p, `must be a status code 100-599 or a class like "4xx"`, got(x))
						continue
					}
					s.Status = append(s.Status, x.Value)
				}
			}},
			{"body", func(v *yaml.Node, p string) {
				conds++
				if str, ok := nonEmptyStr(v, p); ok {
					s.Body, ln["body"] = str, v.Line
				}
			}},
			{"header", func(v *yaml.Node, p string) {
				conds++
				if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
					d.ps.add(v.Line, p, "must be a mapping of header name to regex", got(v))
					return
				}
				d.headerMap(v, p, &s, ln)
			}},
			{"host", func(v *yaml.Node, p string) {
				conds++
				if str, ok := nonEmptyStr(v, p); ok {
					s.Host, ln["host"] = str, v.Line
				}
			}},
			{"error", func(v *yaml.Node, p string) {
				conds++
				if str, ok := d.enum(v, p, rules.ErrKindConnect, rules.ErrKindTLS, rules.ErrKindTimeout, rules.ErrKindAny); ok {
					s.Error, ln["error"] = str, v.Line
				}
			}},
			{"action", func(v *yaml.Node, p string) {
				if str, ok := d.enum(v, p, "good", "bad", "retire", "none"); ok {
					s.Action, ln["action"] = rules.Action(str), v.Line
				} else {
					s.Action = rules.ActionNone // reported; keep compile from repeating it
				}
			}},
			{"retry", func(v *yaml.Node, p string) {
				if b, ok := d.boolean(v, p); ok {
					s.Retry = b
				}
			}},
		})
		if it.Kind != yaml.MappingNode {
			return
		}
		if conds > 0 && len(s.Status) == 0 && s.Body == "" && len(s.Header) == 0 && s.Host == "" && s.Error == "" {
			// every condition was bad and reported; do not also say none was given
			s.Host = "*"
		}
		specs = append(specs, s)
		lines = append(lines, ln)
	})
	return specs, lines
}

func (d *decoder) headerMap(v *yaml.Node, p string, s *rules.Spec, ln map[string]int) {
	d.pairs(v, p, "header names must be strings", func(k, re *yaml.Node, hp string) {
		str := ""
		if !isNull(re) {
			var ok bool
			if str, ok = d.str(re, hp, false); !ok {
				return
			}
		}
		if s.Header == nil {
			s.Header = map[string]string{}
		}
		s.Header[k.Value] = str
		ln["header."+k.Value] = k.Line
	})
}

// RestartKeys names the keys that differ between two configs but only take
// effect at start, sorted.
func RestartKeys(old, next *Config) []string {
	var keys []string
	diff := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, name)
		}
	}
	diff("listen", old.Listen, next.Listen)
	diff("admin_listen", old.AdminListen, next.AdminListen)
	diff("data_dir", old.DataDir, next.DataDir)
	diff("log_format", old.LogFormat, next.LogFormat)
	diff("log_level", old.LogLevel, next.LogLevel)
	diff("pool", old.Pool, next.Pool)
	diff("mitm.ca_cert", old.MITM.CACert, next.MITM.CACert)
	diff("mitm.ca_key", old.MITM.CAKey, next.MITM.CAKey)
	diff("mitm.upstream_ca", old.MITM.UpstreamCA, next.MITM.UpstreamCA)
	diff("mitm.insecure_skip_verify", old.MITM.InsecureSkipVerify, next.MITM.InsecureSkipVerify)
	slices.Sort(keys)
	return keys
}
