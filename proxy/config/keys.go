package config

import (
	"cmp"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

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
			if f, ok := oneOf(d, v, p, LogText, LogJSON); ok {
				c.LogFormat = f
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
			if a, ok := oneOf(d, v, p, AffinityTunnel, AffinityClient, AffinityRequest); ok {
				c.Affinity = a
			}
		}},
		{"client_idle", func(v *yaml.Node, p string) {
			if x, ok := d.duration(v, p); ok {
				c.ClientIdle = x
			}
		}},
		{"cookies", func(v *yaml.Node, p string) {
			if m, ok := oneOf(d, v, p, CookiesMerge, CookiesSession, CookiesClient); ok {
				c.Cookies = m
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

func (d *decoder) pool(n *yaml.Node, path string, pc *Pool) {
	d.mapping(n, path, []field{
		{"max_pool_size", func(v *yaml.Node, p string) {
			if x, ok := d.integer(v, p, 1, 1<<31-1); ok {
				pc.MaxPoolSize = int(x)
			}
		}},
		{"strategy", func(v *yaml.Node, p string) {
			if s, ok := oneOfNamed(d, v, p, sessionpool.Random, sessionpool.RoundRobin, sessionpool.UseUntilFailure); ok {
				pc.Strategy = s
			}
		}},
		{"store", func(v *yaml.Node, p string) {
			s, ok := d.str(v, p, true)
			if !ok {
				return
			}
			if Store(s) == StoreFile {
				pc.Store = StoreFile
				return
			}
			u, msg := parseStore(s)
			if msg != "" {
				d.ps.add(v.Line, p, msg, quote(redactRaw(s, u)))
				return
			}
			pc.Store = Store(s)
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
