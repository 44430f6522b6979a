package config

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

var update = flag.Bool("update", false, "rewrite golden files")

const configTestdata = "../../testdata/config"

// TestConfigExampleMatchesDefault: config.example.yaml documents every key
// with exactly the default value.
func TestConfigExampleMatchesDefault(t *testing.T) {
	c, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "../../config.example.yaml" {
		t.Errorf("Path = %q", c.Path)
	}
	d := Default()
	d.Path = c.Path
	if !reflect.DeepEqual(c, d) {
		t.Errorf("example differs from Default():\n got %+v\nwant %+v", c, d)
	}
	if !reflect.DeepEqual(ruleSpecs(c.Rules), ruleSpecs(rules.Defaults())) {
		t.Errorf("example rules %+v, want the defaults %+v", ruleSpecs(c.Rules), ruleSpecs(rules.Defaults()))
	}
}

func ruleSpecs(rs *rules.Set) []rules.Spec {
	var out []rules.Spec
	for _, r := range rs.Rules() {
		out = append(out, r.Spec())
	}
	return out
}

func TestConfigEmptyIsDefault(t *testing.T) {
	for _, src := range []string{"", "\n", "# only a comment\n", "~\n", "---\n", "--- ~\n", "null"} {
		c, err := Parse("empty.yaml", []byte(src))
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		d := Default()
		d.Path = "empty.yaml"
		if !reflect.DeepEqual(c, d) {
			t.Errorf("%q: got %+v, want defaults", src, c)
		}
	}
}

// TestConfigValues: each key decodes into its field.
func TestConfigValues(t *testing.T) {
	tests := []struct {
		yaml  string
		check func(c *Config) bool
	}{
		{"listen: 0.0.0.0:3128", func(c *Config) bool { return c.Listen == "0.0.0.0:3128" }},
		{"listen: '[::1]:0'", func(c *Config) bool { return c.Listen == "[::1]:0" }},
		{"log_format: json", func(c *Config) bool { return c.LogFormat == "json" }},
		{"log_level: debug", func(c *Config) bool { return c.LogLevel == slog.LevelDebug }},
		{"log_level: warn", func(c *Config) bool { return c.LogLevel == slog.LevelWarn }},
		{"log_level: error", func(c *Config) bool { return c.LogLevel == slog.LevelError }},
		{`admin_listen: ""`, func(c *Config) bool { return c.AdminListen == "" }},
		{"admin_listen: 127.0.0.1:9000", func(c *Config) bool { return c.AdminListen == "127.0.0.1:9000" }},
		{"admin_listen:", func(c *Config) bool { return c.AdminListen == "127.0.0.1:8081" }}, // null = default
		{"admin_token: s3cret", func(c *Config) bool { return c.AdminToken == "s3cret" }},
		{"admin_token: 123456", func(c *Config) bool { return c.AdminToken == "123456" }},
		{"data_dir: /var/lib/sp", func(c *Config) bool { return c.DataDir == "/var/lib/sp" }},
		{"session_header: x-my-session", func(c *Config) bool { return c.SessionHeader == "X-My-Session" }},
		{"affinity: client", func(c *Config) bool { return c.Affinity == "client" }},
		{"affinity: request", func(c *Config) bool { return c.Affinity == "request" }},
		{"fingerprint:", func(c *Config) bool { return c.Fingerprint == FingerprintMirror }}, // null = default
		{"fingerprint: mirror", func(c *Config) bool { return c.Fingerprint == "mirror" }},
		{"fingerprint: chrome", func(c *Config) bool { return c.Fingerprint == "chrome" }},
		{"fingerprint: firefox", func(c *Config) bool { return c.Fingerprint == "firefox" }},
		{"fingerprint: safari", func(c *Config) bool { return c.Fingerprint == "safari" }},
		{"fingerprint: edge", func(c *Config) bool { return c.Fingerprint == "edge" }},
		{"fingerprint: random", func(c *Config) bool { return c.Fingerprint == "random" }},
		{"fingerprint: go", func(c *Config) bool { return c.Fingerprint == "go" }},
		{"client_idle: 90s", func(c *Config) bool { return c.ClientIdle == 90*time.Second }},
		{"cookies: session", func(c *Config) bool { return c.Cookies == "session" }},
		{"cookies: client", func(c *Config) bool { return c.Cookies == "client" }},
		{"max_header_bytes: 65536", func(c *Config) bool { return c.MaxHeaderBytes == 65536 }},
		{"idle_timeout: 5s", func(c *Config) bool { return c.IdleTimeout == 5*time.Second }},
		{"read_header_timeout: 2s", func(c *Config) bool { return c.ReadHeaderTimeout == 2*time.Second }},
		{"tls_handshake_timeout: 3s", func(c *Config) bool { return c.TLSHandshakeTimeout == 3*time.Second }},
		{"auth: {users: {alice: pw1, bob: 42}, challenge: true}", func(c *Config) bool {
			return reflect.DeepEqual(c.Auth.Users, map[string]string{"alice": "pw1", "bob": "42"}) && c.Auth.Challenge
		}},
		{"auth: {users: {}}", func(c *Config) bool { return c.Auth.Users == nil }},
		{"mitm: {enabled: false, insecure_skip_verify: true}", func(c *Config) bool {
			return !c.MITM.Enabled && c.MITM.InsecureSkipVerify
		}},
		{"mitm: {ca_cert: c.pem, ca_key: k.pem}", func(c *Config) bool {
			return c.MITM.CACert == "c.pem" && c.MITM.CAKey == "k.pem"
		}},
		{"mitm: {skip_hosts: ['*.Bank.example', 'x.org'], upstream_ca: [a.pem, b.pem]}", func(c *Config) bool {
			return reflect.DeepEqual(c.MITM.SkipHosts, []string{"*.bank.example", "x.org"}) &&
				reflect.DeepEqual(c.MITM.UpstreamCA, []string{"a.pem", "b.pem"})
		}},
		{"pool: {max_pool_size: 5, strategy: round-robin, persist_state_key: K, persist_interval: 1m30s}", func(c *Config) bool {
			return c.Pool.MaxPoolSize == 5 && c.Pool.Strategy == sessionpool.RoundRobin && c.Pool.PersistStateKey == "K" &&
				c.Pool.PersistInterval == 90*time.Second
		}},
		{"pool: {strategy: use-until-failure}", func(c *Config) bool { return c.Pool.Strategy == sessionpool.UseUntilFailure }},
		{"pool: {store: 'redis://u:p@127.0.0.1:6379/2'}", func(c *Config) bool { return c.Pool.Store == "redis://u:p@127.0.0.1:6379/2" }},
		{"pool: {store: 'rediss://127.0.0.1:6380'}", func(c *Config) bool { return c.Pool.Store == "rediss://127.0.0.1:6380" }},
		{"pool: {session: {max_age: 1h, max_usage_count: 7, max_error_score: 2.5, error_score_decrement: 0.25}}", func(c *Config) bool {
			s := c.Pool.Session
			return s.MaxAge == time.Hour && s.MaxUsageCount == 7 && s.MaxErrorScore == 2.5 && s.ErrorScoreDecrement == 0.25
		}},
		{"upstreams: ['http://u:p@127.0.0.1:3128', 'HTTPS://h.example:443/', 'socks5://127.0.0.1:1080', 'socks5h://h:1']", func(c *Config) bool {
			if len(c.Upstreams) != 4 {
				return false
			}
			u := c.Upstreams[0]
			pw, _ := u.User.Password()
			return u.Scheme == "http" && u.Host == "127.0.0.1:3128" && u.User.Username() == "u" && pw == "p" &&
				c.Upstreams[1].Scheme == "https" && c.Upstreams[1].Path == "" &&
				c.Upstreams[2].Scheme == "socks5" && c.Upstreams[3].Scheme == "socks5h"
		}},
		{"upstreams: ['http://cust-session-{session}:p@127.0.0.1:3128']", func(c *Config) bool {
			return len(c.Upstreams) == 1 && c.Upstreams[0].User.Username() == "cust-session-{session}"
		}},
		{"upstreams: []", func(c *Config) bool { return c.Upstreams == nil }},
		{"admin_hosts: [Admin.Example, 'admin.example:8081', '[::1]:8081']", func(c *Config) bool {
			return reflect.DeepEqual(c.AdminHosts, []string{"admin.example", "admin.example:8081", "[::1]:8081"})
		}},
		// A name's root dot goes: the admin API takes the request's Host
		// without it.
		{"admin_hosts: ['Admin.Example.', 'ops.example.:8081', '::1']", func(c *Config) bool {
			return reflect.DeepEqual(c.AdminHosts, []string{"admin.example", "ops.example:8081", "::1"})
		}},
		{"allow_private_targets: true", func(c *Config) bool { return c.AllowPrivateTargets }},
		{"body_limit: 1024", func(c *Config) bool { return c.BodyLimit == 1024 }},
		{"retry: {max_attempts: 0}", func(c *Config) bool { return c.Retry.MaxAttempts == 0 }},
		{"pool: {scope: global, exclusive: false}", func(c *Config) bool {
			return c.Pool.Scope == ScopeGlobal && !c.Pool.Exclusive
		}},
		{"pool: {scope: site}", func(c *Config) bool { return c.Pool.Scope == ScopeSite && !c.Pool.Exclusive }},
		{"pool: {exclusive: true}", func(c *Config) bool { return c.Pool.Exclusive }},
		{"sites: [{host: '*.Example.com', delay: 1s, concurrency: 4}, {host: 'x.org', delay: 0s}, {host: '*'}]", func(c *Config) bool {
			return reflect.DeepEqual(c.Sites, []Site{{Host: "*.example.com", Delay: time.Second, Concurrency: 4},
				{Host: "x.org"}, {Host: "*"}})
		}},
		{"sites: []", func(c *Config) bool { return c.Sites == nil }},
		{"pacing: {max_wait: 5s}", func(c *Config) bool { return c.Pacing.MaxWait == 5*time.Second }},
		{"default_action: retire", func(c *Config) bool {
			return c.DefaultAction == rules.ActionRetire && c.Rules.DefaultAction() == rules.ActionRetire && len(c.Rules.Rules()) == len(rules.DefaultSpecs())
		}},
		{"rules: []", func(c *Config) bool { return len(c.Rules.Rules()) == 0 && !c.Rules.HasRetryRules() }},
		{"rules:", func(c *Config) bool { return len(c.Rules.Rules()) == len(rules.DefaultSpecs()) }}, // null = absent = defaults
		{"x: &a 127.0.0.1:1\nlisten: *a", nil}, // unknown key x: error expected below
	}
	for _, tt := range tests {
		c, err := Parse("t.yaml", []byte(tt.yaml))
		if tt.check == nil {
			if err == nil {
				t.Errorf("%q: no error", tt.yaml)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.yaml, err)
			continue
		}
		if !tt.check(c) {
			t.Errorf("%q: wrong result %+v", tt.yaml, c)
		}
	}
}

func TestConfigAliases(t *testing.T) {
	src := "pool:\n  session: &s {max_age: 2m}\nlisten: &l 127.0.0.1:1\nadmin_listen: 127.0.0.1:2\nrules:\n  - &r {status: 403, action: bad}\n"
	c, err := Parse("a.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pool.Session.MaxAge != 2*time.Minute || c.Listen != "127.0.0.1:1" || len(c.Rules.Rules()) != 1 {
		t.Errorf("got %+v", c)
	}
	// Aliases within the bound on the expanded document (maxValues): 200
	// rules that each take one list of 100 statuses.
	var b strings.Builder
	b.WriteString("mitm:\n  skip_hosts: &codes [" + strings.TrimSuffix(strings.Repeat("400,", 100), ",") + "]\nrules:\n")
	for range 200 {
		b.WriteString("  - {action: bad, status: *codes}\n")
	}
	b.WriteString("x: 1\n") // one problem, so that the rules are walked but not kept
	_, err = Parse("a.yaml", []byte(b.String()))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || !strings.Contains(err.Error(), "x: unknown key") {
		t.Errorf("a document within the bound on aliases: %v", err)
	}
	// The bound is on what aliases add: a document of more values than
	// that as written (25,000 rules, no alias) is taken.
	b.Reset()
	b.WriteString("rules:\n")
	for i := range 25_000 {
		fmt.Fprintf(&b, "  - {name: r%d, status: 403, action: bad}\n", i)
	}
	if c, err := Parse("a.yaml", []byte(b.String())); err != nil || len(c.Rules.Rules()) != 25_000 {
		t.Errorf("25,000 rules written out: %v", err)
	}
}

func TestConfigRulesDecoded(t *testing.T) {
	src := `
default_action: none
rules:
  - name: blocked
    status: [401, "4xx", 503]
    action: retire
    retry: true
  - name: captcha
    body: '(?i)captcha'
    header: {Server: '(?i)cloudflare', cf-mitigated: challenge, X-Any: }
    host: '*.Example.com'
    action: bad
  - status: 418
    action: good
  - error: timeout
    host: slow.example
    action: none
`
	c, err := Parse("r.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := ruleSpecs(c.Rules)
	want := []rules.Spec{
		{Name: "blocked", Status: []string{"401", "4xx", "503"}, Action: rules.ActionRetire, Retry: true},
		{Name: "captcha", Body: "(?i)captcha", Header: map[string]string{"Server": "(?i)cloudflare", "cf-mitigated": "challenge", "X-Any": ""},
			Host: "*.example.com", Action: rules.ActionBad},
		{Name: "rules[2]", Status: []string{"418"}, Action: rules.ActionGood},
		{Name: "rules[3]", Error: "timeout", Host: "slow.example", Action: rules.ActionNone},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if c.Rules.DefaultAction() != rules.ActionNone || !c.Rules.HasBodyRules() || !c.Rules.HasRetryRules() {
		t.Errorf("rule set flags wrong: %+v", c.Rules)
	}
}

func TestConfigErrorType(t *testing.T) {
	_, err := Parse("bad.yaml", []byte("listen: nope\npool: {strategy: randum}\n"))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("errors.Is(%v, ErrInvalid) = false", err)
	}
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("want a *Error with 2 problems, got %#v", err)
	}
	want := Problem{File: "bad.yaml", Line: 2, Path: "pool.strategy",
		Msg: "must be one of random, round-robin, use-until-failure", Got: `"randum"`}
	if ce.Problems[1] != want {
		t.Errorf("problem = %+v, want %+v", ce.Problems[1], want)
	}
	if got := ce.Problems[1].String(); got != `bad.yaml:2: pool.strategy: must be one of random, round-robin, use-until-failure (got "randum")` {
		t.Errorf("String() = %s", got)
	}
}

func TestConfigLoad(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("listen: 127.0.0.1:9999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil || c.Path != p || c.Listen != "127.0.0.1:9999" {
		t.Errorf("Load = %+v, %v", c, err)
	}
	if err := os.WriteFile(p, []byte("listen: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p)
	if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), p+":") {
		t.Errorf("syntax error: %v", err)
	}
}

// TestConfigSecretsNeverEchoed: passwords, tokens and URL credentials stay
// out of error messages, whatever is wrong around them.
func TestConfigSecretsNeverEchoed(t *testing.T) {
	srcs := []string{
		"upstreams: ['ftp://bob:hunter2@127.0.0.1:1']",
		"upstreams: ['http://bob:hunter2@127.0.0.1']",
		"upstreams: ['http://bob:hunter2@127.0.0.1:1/path']",
		"upstreams: ['http://bob:hun/ter2@127.0.0.1:1']",
		"upstreams: ['http://bob:hunter2@127.0.0.1:99999']",
		"upstreams: ['bob:hunter2@127.0.0.1:1']",
		"upstreams: ['http://bob:hunter2@[::1:1']",
		"pool: {store: 'redis://bob:hunter2@127.0.0.1'}",
		"pool: {store: 'mysql://bob:hunter2@127.0.0.1:1'}",
		"pool: {store: 'redis://bob:hunter2@127.0.0.1:1/x'}",
		"pool: {store: 'redis://bob:hun ter2@127.0.0.1:1'}",
		"admin_token: 'hunter2 x'",
		"admin_token: true",
		"auth: {users: {bob: true}}",
		"auth: {users: {'bob:x': hunter2}}",
		"auth: {users: {bob-session-1: hunter2}}",
		// A value of the wrong shape: the secret given where a list or a
		// mapping belongs.
		"upstreams: http://bob:hunter2@10.0.0.1:3128",
		"upstreams: 'http://bob:hunter2@10.0.0.1:3128'",
		"auth: {users: 'bob:hunter2'}",
		"auth: {users: bob:hunter2}",
		"x: &u 'http://bob:hunter2@10.0.0.1:3128'\nupstreams: *u",
		// Credentials in a URL's query, which a store or an upstream URL
		// must not have, and a user name that is "name:password" as one,
		// alone or repeated.
		"pool: {store: 'redis://10.0.0.5:6379/0?password=hunter2'}",
		"pool: {store: 'redis://10.0.0.5:6379/0?username=bob&password=hunter2'}",
		"upstreams: ['http://10.0.0.1:3128/?password=hunter2']",
		"upstreams: ['socks5://10.0.0.2:1080?user=bob&pass=hunter2']",
		"upstreams: ['http://10.0.0.1:3128/#hunter2']",
		"auth:\n  users:\n    bob:hunter2: x\n",
		"auth:\n  users:\n    bob:hunter2: x\n    bob:hunter2: y\n",
	}
	for _, src := range srcs {
		_, err := Parse("s.yaml", []byte(src))
		if err == nil {
			t.Errorf("%s: no error", src)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun/ter2") ||
			strings.Contains(err.Error(), "ter2") || strings.Contains(err.Error(), "true)") {
			t.Errorf("%s: secret in error: %v", src, err)
		}
	}
}

// TestConfigMITMSkipHost: a host matches skip_hosts whatever its case,
// port or trailing dot ("www.bank.example.:443", as a client sends CONNECT
// for https://www.bank.example./, is www.bank.example), and so does a glob
// written with a trailing dot.
func TestConfigMITMSkipHost(t *testing.T) {
	c, err := Parse("c.yaml", []byte("mitm:\n  skip_hosts: ['*.bank.example', 'exact.org', 'pinned.example.', '*.dot.example..']\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"*.bank.example", "exact.org", "pinned.example", "*.dot.example"}; !reflect.DeepEqual(c.MITM.SkipHosts, want) {
		t.Errorf("skip_hosts = %q, want %q", c.MITM.SkipHosts, want)
	}
	for host, want := range map[string]bool{
		"www.bank.example":      true,
		"WWW.Bank.Example:443":  true,
		"a.b.bank.example":      true,
		"bank.example":          false,
		"exact.org":             true,
		"exact.org:8443":        true,
		"other.org":             false,
		"www.bank.example.:443": true,
		"WWW.Bank.Example.":     true,
		"exact.org.":            true,
		"exact.org..:443":       true,
		"other.org.":            false,
		"pinned.example":        true,
		"pinned.example.:443":   true,
		"www.dot.example":       true,
		"www.dot.example.":      true,
	} {
		if got := c.MITM.SkipHost(host); got != want {
			t.Errorf("SkipHost(%q) = %v, want %v", host, got, want)
		}
	}
	// The sites' globs too: the pacer matches hosts without their dots.
	if c, err := Parse("c.yaml", []byte("sites:\n  - {host: 'Shop.Example.', delay: 1s}\n")); err != nil {
		t.Errorf("sites[0].host 'Shop.Example.': %v", err)
	} else if c.Sites[0].Host != "shop.example" {
		t.Errorf("sites[0].host 'Shop.Example.' = %q, want shop.example", c.Sites[0].Host)
	}
	_, err = Parse("c.yaml", []byte("mitm:\n  skip_hosts: ['.']\nsites:\n  - {host: '..', delay: 1s}\n"))
	for _, want := range []string{`c.yaml:2: mitm.skip_hosts[0]: must be a host or a glob of hosts, not dots alone (got ".")`,
		`c.yaml:4: sites[0].host: must be a host or a glob of hosts, not dots alone (got "..")`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("globs of dots alone: %v, want %s", err, want)
		}
	}
}

// TestConfigGolden parses each bad YAML file under testdata/config and
// compares the error text with its .golden file.
func TestConfigGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(configTestdata, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(filepath.Base(f), data)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("not a config error: %v", err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("error text differs\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../config.example.yaml"); err == nil {
		f.Add(data)
	}
	files, _ := filepath.Glob(filepath.Join(configTestdata, "*.yaml"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a, *a]\nb: *a"))
	f.Add([]byte("rules: [{status: [403, 4xx], body: '(?i)x', action: bad}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 || c != nil {
				t.Fatalf("want a *Error with problems, got %#v, %#v", c, err)
			}
			for _, p := range ce.Problems {
				if p.File != "fuzz.yaml" || p.Msg == "" {
					t.Fatalf("bad problem %+v", p)
				}
			}
			return
		}
		if c == nil || c.Rules == nil || c.Path != "fuzz.yaml" {
			t.Fatalf("valid config without rules or path: %+v", c)
		}
		c.Rules.Decide(&rules.Outcome{Host: "a.example", Status: 403, Header: map[string][]string{"Server": {"x"}}, Body: []byte("x")})
	})
}

// TestConfigMergeKeysEverywhere: merge keys are refused in the maps of user
// names and header names too, not only among known keys.
func TestConfigMergeKeysEverywhere(t *testing.T) {
	for _, doc := range []string{
		"auth:\n  users:\n    <<: {a: b}\n",
		"rules:\n  - name: r\n    action: bad\n    header:\n      <<: {Server: x}\n",
	} {
		_, err := Parse("m.yaml", []byte(doc))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "merge keys (<<) are not supported") {
			t.Errorf("%q: %v, want the merge key refused", doc, err)
		}
	}
}

// TestRestartKeys: keys bound at start are named when they change (the pool
// as one key) and keep their running values; the others are not named and
// take their new values.
func TestRestartKeys(t *testing.T) {
	old := Default()
	next, err := Parse("n.yaml", []byte("listen: 127.0.0.1:1\nlog_format: json\ncookies: client\nfingerprint: random\n"+
		"mitm: {ca_cert: c.pem, ca_key: k.pem, enabled: false}\n"+
		"pool: {strategy: round-robin, session: {max_age: 1h}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"listen", "log_format", "mitm.ca_cert", "mitm.ca_key", "pool"}
	if got := RestartKeys(old, next); !reflect.DeepEqual(got, want) {
		t.Errorf("RestartKeys = %q, want %q", got, want)
	}
	if got := RestartKeys(old, Default()); got != nil {
		t.Errorf("RestartKeys of equal configs = %q", got)
	}
	var bound []string
	for _, k := range restartKeys() {
		bound = append(bound, k.path)
	}
	if want := []string{"listen", "log_format", "log_level", "admin_listen", "data_dir",
		"max_header_bytes", "idle_timeout", "read_header_timeout", "tls_handshake_timeout", "mitm.ca_cert", "mitm.ca_key",
		"mitm.upstream_ca", "mitm.insecure_skip_verify", "pool", "sites", "pacing", "request_log", "gc"}; !reflect.DeepEqual(bound, want) {
		t.Errorf("keys bound at start: %q, want %q", bound, want)
	}
	KeepRestartKeys(old, next)
	if next.Listen != old.Listen || next.LogFormat != old.LogFormat || next.MITM.CACert != "" || next.MITM.CAKey != "" ||
		!reflect.DeepEqual(next.Pool, old.Pool) {
		t.Errorf("a key bound at start took its new value: %+v", next)
	}
	if next.Cookies != CookiesClient || next.MITM.Enabled || next.Fingerprint != FingerprintRandom {
		t.Errorf("a key that reloads kept its old value: %+v", next)
	}
	if got := RestartKeys(old, next); got != nil {
		t.Errorf("RestartKeys after KeepRestartKeys = %q", got)
	}
}

// TestSyntaxErrorLines: the line of an undefined anchor's alias is the
// alias's, not that of the same text in a comment or a scalar; a lone CR
// breaks a line as LF does; a byte that is not UTF-8 is found, and so is a
// character YAML does not allow; the YAML library's parser errors (whose
// lines it counts from 0) and errors on the first line (whose line it
// leaves out) are at their line.
func TestSyntaxErrorLines(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"alias after a comment", "# max_pool_size: *nope would be nice\nlisten: 127.0.0.1:8080\npool:\n  max_pool_size: *nope\n", "c.yaml:4:"},
		{"alias after a quoted scalar", "session_header: \"X-*nope\"\npool:\n  max_pool_size: *nope\n", "c.yaml:3:"},
		{"alias after a plain scalar", "session_header: X *nope\npool:\n  max_pool_size: *nope\n", "c.yaml:3:"},
		{"alias in a flow list", "upstreams: [a, *nope]\n", "c.yaml:1:"},
		{"lone CR line breaks", "listen: 127.0.0.1:8080\rpool:\r  max_pool_size: *nope\r", "c.yaml:3:"},
		{"not UTF-8", "listen: 127.0.0.1:8080\n\nsession_header: \"X-\xfe\"\n", "c.yaml:3:"},
		{"DEL", "listen: 127.0.0.1:1\n\nsession_header: X\x7fY\n", "c.yaml:3: invalid YAML: control characters are not allowed (got U+007F)"},
		{"control character", "listen: 127.0.0.1:1\n\nsession_header: X\x01Y\n", "c.yaml:3: "},
		{"C1 control character", "listen: 127.0.0.1:1\nsession_header: X\u0090Y\n", "c.yaml:2: "},
		{"noncharacter", "listen: 127.0.0.1:1\nsession_header: X\ufffeY\n", "c.yaml:2: "},
		{"scanner error on the first line", "listen: a: b\n", "c.yaml:1: invalid YAML: mapping values"},
		{"scanner error on a later line", "log_level: info\nlisten: a: b\n", "c.yaml:2: invalid YAML: mapping values"},
		{"unclosed flow list", "listen: 127.0.0.1:1\nlog_level: info\nupstreams: [a, b\nlog_format: text\n", "c.yaml:3: invalid YAML: did not find expected ',' or ']'"},
		{"list item out of place", "rules:\n  - status: 403\n - name: x\n", "c.yaml:3: invalid YAML: did not find expected key"},
		{"key out of place", "listen: 127.0.0.1:1\npool:\n  strategy: random\n bad: x\nlog_level: info\n", "c.yaml:4: invalid YAML: did not find expected key"},
		{"parser error on the next line", "- a\nb: c\n", "c.yaml:2: invalid YAML: did not find expected '-' indicator"},
		{"unclosed list at the end", "upstreams: [a, b\n", "c.yaml:1: invalid YAML: did not find expected ',' or ']'"},
		{"unclosed mapping at the end, no line break", "log_level: info\npool: {strategy: random", "c.yaml:2: invalid YAML: did not find expected ',' or '}'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.data))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v; want it to start %s", err, tc.want)
			}
		})
	}
}

// TestConfigPersistStateKeyNamesFiles: with the file store,
// pool.persist_state_key names files in data_dir (<key>.json,
// <key>.sites.json, <key>@<site>.json). A key the config takes gives names
// the store takes, a site's included; a key the store refuses is a problem
// at its line, not an error of the pool once the CA was made. A Redis store
// takes any key.
func TestConfigPersistStateKeyNamesFiles(t *testing.T) {
	ctx := t.Context()
	store, err := sessionpool.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	site := strings.Repeat("s", 149) + ".com" // a site of 153 bytes
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"SDK_SESSION_POOL_STATE", true},
		{"pool.v2", true},
		{strings.Repeat("k", maxPersistKeyLen), true},
		{strings.Repeat("k", maxPersistKeyLen+1), false},
		{strings.Repeat("k", 212), false}, // room for ".sites", none for a site
		{strings.Repeat("k", 230), false},
		{"pools/main", false},
		{`pools\main`, false},
		{"a\x00b", false},
		{"..", false},
		{"a..b", false},
	} {
		_, err := Parse("c.yaml", []byte(fmt.Sprintf("pool:\n  persist_state_key: %q\n", tc.key)))
		if tc.ok {
			if err != nil {
				t.Errorf("key %.20q (%d bytes): %v", tc.key, len(tc.key), err)
			}
			for _, k := range []string{tc.key, tc.key + ".sites", tc.key + "@" + site} {
				if err := store.Set(ctx, k, []byte("{}")); err != nil {
					t.Errorf("the config takes key %.20q (%d bytes), the store refuses %.20q: %v", tc.key, len(tc.key), k, err)
				}
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), "c.yaml:2: pool.persist_state_key: must ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("key %.20q (%d bytes): %v, want one problem at c.yaml:2", tc.key, len(tc.key), err)
		}
		if _, err := Parse("c.yaml", []byte(fmt.Sprintf("pool:\n  store: redis://127.0.0.1:6379/0\n  persist_state_key: %q\n", tc.key))); err != nil {
			t.Errorf("key %.20q with a Redis store: %v", tc.key, err)
		}
	}
	for _, k := range []string{"pools/main", "..", strings.Repeat("k", 230)} { // the store's own refusals
		if err := store.Set(ctx, k, []byte("{}")); !errors.Is(err, sessionpool.ErrInvalidKey) {
			t.Errorf("store.Set(%.20q) = %v: the test's refused keys are no longer the store's", k, err)
		}
	}
}

// TestConfigSessionHeaderUsable: session_header takes a header that reaches
// the proxy with a request; it refuses, at its line, those HTTP or the
// proxy uses itself, the hop-by-hop ones dropped before the session is read
// (goproxy drops Proxy-Connection from every plain request; an HTTP/2
// request in a tunnel has no Keep-Alive) and Expect, which net/http answers
// with 417.
func TestConfigSessionHeaderUsable(t *testing.T) {
	for name, want := range map[string]string{
		"X-Session-Id":        "",
		"x-my-session":        "",
		"Cookie":              "must not be a header HTTP or the proxy uses itself",
		"proxy-authorization": "must not be a header HTTP or the proxy uses itself",
		"Connection":          "must not be a header HTTP or the proxy uses itself",
		"Proxy-Connection":    "must not be a hop-by-hop header",
		"keep-alive":          "must not be a hop-by-hop header",
		"TE":                  "must not be a hop-by-hop header",
		"Trailer":             "must not be a hop-by-hop header",
		"Expect":              "must not be Expect",
	} {
		c, err := Parse("c.yaml", []byte("listen: 127.0.0.1:1\nsession_header: "+name+"\n"))
		switch {
		case want == "" && err != nil:
			t.Errorf("session_header %s: %v", name, err)
		case want == "" && c.SessionHeader != http.CanonicalHeaderKey(name):
			t.Errorf("session_header %s = %q", name, c.SessionHeader)
		case want != "" && (err == nil || !strings.HasPrefix(err.Error(), "c.yaml:2: session_header: "+want)):
			t.Errorf("session_header %s: %v, want c.yaml:2: session_header: %s...", name, err, want)
		}
	}
}

// TestConfigPersistIntervalAtLeastOneSecond: pool.persist_interval is at
// least 1s; a shorter one (1ns is a duration) would have the pool written
// in a tight loop.
func TestConfigPersistIntervalAtLeastOneSecond(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    time.Duration
		problem string
	}{
		{"1s", time.Second, ""},
		{"90s", 90 * time.Second, ""},
		{"1ns", 0, `c.yaml:2: pool.persist_interval: must be at least 1s (got "1ns")`},
		{"999ms", 0, `c.yaml:2: pool.persist_interval: must be at least 1s (got "999ms")`},
		{"0s", 0, `c.yaml:2: pool.persist_interval: must be greater than 0 (got "0s")`},
	} {
		c, err := Parse("c.yaml", []byte("pool:\n  persist_interval: "+tc.value+"\n"))
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("persist_interval %s: %v", tc.value, err)
		case tc.problem == "" && c.Pool.PersistInterval != tc.want:
			t.Errorf("persist_interval %s = %v, want %v", tc.value, c.Pool.PersistInterval, tc.want)
		case tc.problem != "" && (err == nil || err.Error() != tc.problem):
			t.Errorf("persist_interval %s: %v, want %s", tc.value, err, tc.problem)
		}
	}
}
