// Package config reads the proxy's configuration: a YAML file decoded
// strictly into a Config, with every problem reported at once, each with its
// file, line and key path, in an *Error. One table lists every key with how
// its value is decoded and whether a change takes effect on reload or only
// at start (see RestartKeys). The rules list is compiled with package rules.
package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// Config is the proxy's configuration. Load and Parse fill defaults for
// absent keys; Default returns a Config holding only defaults. A Config is
// not modified by the proxy after it has been loaded, so it may be read from
// any number of goroutines.
type Config struct {
	Path          string        // file it was loaded from ("" for defaults)
	Listen        string        // proxy address; default 127.0.0.1:8080
	LogFormat     LogFormat     // text (default) | json
	LogLevel      slog.Level    // debug | info (default) | warn | error
	AdminListen   string        // admin API address; default 127.0.0.1:8081; "" disables it
	AdminToken    string        // bearer token wanted by the admin API; "" = none
	AdminHosts    []string      // Host names (host or host:port, lower case, without the root dot) the admin API answers besides its own address; nil = none
	DataDir       string        // CA and persisted pool state; default ./data
	SessionHeader string        // default X-Session-Id
	Affinity      Affinity      // tunnel (default) | client | request
	ClientIdle    time.Duration // idle time after which a client's session is forgotten; default 5m
	Cookies       CookieMode    // merge (default) | session | client
	Fingerprint   Fingerprint   // mirror (default) | chrome | firefox | safari | edge | random | go
	// Limits on clients and origins, inside intercepted tunnels as outside.
	MaxHeaderBytes      int           // largest request head (431) and origin response head (502); default 1 MiB
	IdleTimeout         time.Duration // a client connection or tunnel waiting for its next request is closed after it; default 90s
	ReadHeaderTimeout   time.Duration // longest wait for the rest of a request head once it began; default 10s
	TLSHandshakeTimeout time.Duration // longest TLS handshake of an intercepted tunnel, from its 200; default 10s
	Auth                Auth          // client authentication
	MITM                MITM          // HTTPS interception
	Pool                Pool          // the session pool
	Upstreams           []*url.URL    // upstream proxies (http, https, socks5, socks5h); nil = direct
	BodyLimit           int64         // bytes of a body inspected by body rules; default 65536
	Retry               Retry         // retries of blocked requests
	DefaultAction       rules.Action  // action for a response no rule matches; "" = good below 400, else none
	Rules               *rules.Set    // compiled rules; rules.Defaults() when the rules key is absent
	Sites               []Site        // pacing per site, first matching host glob wins; nil = none
	Pacing              Pacing        // limits of waiting for a site
	RequestLog          RequestLog    // the admin API's log of the last requests
	GC                  GC            // the Go garbage collector

	// AllowPrivateTargets lets a proxy listening on a non-loopback address
	// forward to loopback, link-local and private addresses; default false.
	AllowPrivateTargets bool
}

// RequestLog configures the log of the last finished requests (GET
// /requests, /requests.har, the dashboard's Requests view).
type RequestLog struct {
	Size   int  // requests kept; default 1000; 0 keeps none
	Bodies bool // keep the start of each request's and response's body (record.MaxLoggedBody bytes); default false
}

// GC configures the Go garbage collector (package gcfloor). GOGC in the
// environment overrides it: the runtime is then left as GOGC says.
type GC struct {
	HeapFloor int64 // bytes the heap may grow above the live heap between collections, however small that is; default 32 MiB; 0 = Go's own GOGC=100
}

// LogFormat is the format of the proxy's logs (log/slog handlers).
type LogFormat string

// The log formats.
const (
	LogText LogFormat = "text" // slog.TextHandler, the default
	LogJSON LogFormat = "json" // slog.JSONHandler
)

// Affinity says which session a request that names none goes out as, when
// the client keeps making requests.
type Affinity string

// The affinities.
const (
	AffinityTunnel  Affinity = "tunnel"  // the session chosen when a CONNECT tunnel opened, for every request inside it (the default)
	AffinityClient  Affinity = "client"  // one session per client (address and User-Agent) until it has been idle for ClientIdle
	AffinityRequest Affinity = "request" // a session picked anew for every request
)

// Fingerprint says what a session looks like to origins on the wire: its
// TLS ClientHello, HTTP/2 preface and header order.
type Fingerprint string

// The fingerprint modes.
const (
	FingerprintMirror  Fingerprint = "mirror"  // each request as its client sent it (the default)
	FingerprintChrome  Fingerprint = "chrome"  // Chrome's, whatever the client
	FingerprintFirefox Fingerprint = "firefox" // Firefox's
	FingerprintSafari  Fingerprint = "safari"  // Safari's
	FingerprintEdge    Fingerprint = "edge"    // Edge's
	FingerprintRandom  Fingerprint = "random"  // each new session draws one of chrome, firefox, safari, edge and keeps it
	FingerprintGo      Fingerprint = "go"      // Go's own crypto/tls and net/http
)

// fingerprints are the fingerprint modes, the default first.
func fingerprints() []Fingerprint {
	return []Fingerprint{FingerprintMirror, FingerprintChrome, FingerprintFirefox, FingerprintSafari, FingerprintEdge, FingerprintRandom, FingerprintGo}
}

// ValidFingerprint reports whether name is a fingerprint mode.
func ValidFingerprint(name string) bool {
	return slices.Contains(fingerprints(), Fingerprint(name))
}

// FingerprintNames lists the fingerprint modes, for messages.
func FingerprintNames() string {
	var names []string
	for _, f := range fingerprints() {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ")
}

// CookieMode says how the session's cookies and the client's own combine
// on a request.
type CookieMode string

// The cookie modes.
const (
	CookiesMerge   CookieMode = "merge"   // the session's cookies are added; a client's cookie of the same name wins (the default)
	CookiesSession CookieMode = "session" // the session's cookies replace the client's
	CookiesClient  CookieMode = "client"  // the client's cookies are left alone and nothing is injected
)

// Store is where the pool's state is persisted: StoreFile, or else the
// redis:// or rediss:// URL (credentials included) of a Redis that
// instances share. Load and Parse accept only those.
type Store string

// StoreFile keeps the pool's state in a file in the data directory, the
// default.
const StoreFile Store = "file"

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
	SkipHosts          []string // host globs tunnelled without interception (lower case, without trailing dots)
	UpstreamCA         []string // extra CA files trusted for upstream TLS
	InsecureSkipVerify bool     // do not verify upstream TLS (default false)
}

// Pool configures the session pool.
type Pool struct {
	MaxPoolSize     int                  // default 1000
	Strategy        sessionpool.Strategy // random (default) | round-robin | use-until-failure
	Store           Store                // "file" (default, in data_dir) or a redis:// or rediss:// URL
	PersistStateKey string               // default SDK_SESSION_POOL_STATE
	PersistInterval time.Duration        // default 60s
	Session         Session              // limits of each new session
	// Scope is site (the default: a pool per registrable domain) or global
	// (one pool for every site).
	Scope Scope
	// Exclusive: a session serves one request at a time (default false).
	Exclusive bool
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
		Listen:              "127.0.0.1:8080",
		LogFormat:           LogText,
		LogLevel:            slog.LevelInfo,
		AdminListen:         "127.0.0.1:8081",
		DataDir:             "./data",
		SessionHeader:       "X-Session-Id",
		Affinity:            AffinityTunnel,
		Fingerprint:         FingerprintMirror,
		ClientIdle:          5 * time.Minute,
		Cookies:             CookiesMerge,
		MaxHeaderBytes:      1 << 20,
		IdleTimeout:         90 * time.Second,
		ReadHeaderTimeout:   10 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		MITM:                MITM{Enabled: true},
		Pool: Pool{
			MaxPoolSize:     1000,
			Strategy:        sessionpool.Random,
			Store:           StoreFile,
			PersistStateKey: "SDK_SESSION_POOL_STATE",
			PersistInterval: 60 * time.Second,
			Session: Session{
				MaxAge:              50 * time.Minute,
				MaxUsageCount:       50,
				MaxErrorScore:       3,
				ErrorScoreDecrement: 0.5,
			},
			Scope: ScopeSite,
		},
		BodyLimit:  rules.DefaultBodyLimit,
		Retry:      Retry{MaxAttempts: 2},
		Rules:      rules.Defaults(),
		Pacing:     Pacing{MaxWait: 60 * time.Second},
		RequestLog: RequestLog{Size: 1000},
		GC:         GC{HeapFloor: 32 << 20},
	}
}

// Load reads the configuration file at path and parses it (see Parse).
// A file that cannot be read gives the read error, wrapped; a file with
// problems gives a *Error. Load is safe for concurrent use.
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
// credentials in URLs) never appear in it. Parse is safe for concurrent use.
func Parse(name string, data []byte) (*Config, error) {
	d := &decoder{at: map[string]*yaml.Node{}}
	c := d.parse(data)
	if err := d.ps.err(name); err != nil {
		return nil, err
	}
	c.Path = name
	return c, nil
}

// SkipHost reports whether host (a port and trailing dots are ignored:
// "www.bank.example.:443" is www.bank.example; case-insensitive) matches
// one of the skip_hosts globs.
func (m *MITM) SkipHost(host string) bool {
	host = strings.TrimRight(rules.NormHost(host), ".")
	for _, g := range m.SkipHosts {
		if ok, _ := path.Match(g, host); ok {
			return true
		}
	}
	return false
}
