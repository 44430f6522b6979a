package config

import (
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/proxy/sites"
)

// Scope says whether the pool is one for every site or one per site.
type Scope string

// The scopes.
const (
	ScopeSite   Scope = "site"   // a pool per site (registrable domain), the default
	ScopeGlobal Scope = "global" // one pool for every site
)

// Site is one entry of the sites list: the pacing of the hosts its glob
// matches. The zero Delay and Concurrency mean no delay and no cap.
type Site struct {
	Host        string        // path.Match glob on the request host (no port, lower case, as sites.HostGlob gives it); required
	Delay       time.Duration // least time between two requests of one session to the site; 0 = none
	Concurrency int           // most requests in flight to the site, all sessions together; 0 = no cap
}

// Pacing bounds how long a request waits for its turn at a site.
type Pacing struct {
	MaxWait time.Duration // longest wait for a pause or a slot; default 60s
}

// sites decodes the sites list: each entry a mapping of host (required),
// delay and concurrency; nil when empty.
func (d *decoder) sites(v *yaml.Node, p string) ([]Site, bool) {
	var out []Site
	d.list(v, p, func(_ int, it *yaml.Node, ip string) {
		var s Site
		hostOK := false
		d.mapping(it, ip, []field{
			{"host", func(v *yaml.Node, p string) {
				if g, ok := d.hostGlob(v, p); ok {
					s.Host, hostOK = g, true
				}
			}},
			{"delay", func(v *yaml.Node, p string) {
				if x, ok := d.delay(v, p); ok {
					s.Delay = x
				}
			}},
			{"concurrency", func(v *yaml.Node, p string) {
				if x, ok := d.integer(v, p, 1, 1<<31-1); ok {
					s.Concurrency = int(x)
				}
			}},
		})
		if resolve(it).Kind != yaml.MappingNode {
			return
		}
		if !hostOK {
			if !hasKey(resolve(it), "host") {
				d.ps.add(it.Line, ip, "host is required", "")
			}
			return
		}
		out = append(out, s)
	})
	return out, true
}

// hostGlob decodes a host glob as the rules' host conditions take it, in
// the form they compile it in (sites.HostGlob: lower-cased, "[::1]" as
// "::1", "example.com." as "example.com"): the hosts skip_hosts and sites
// match are taken without their trailing dots too.
func (d *decoder) hostGlob(v *yaml.Node, p string) (string, bool) {
	s, ok := d.nonEmpty(v, p)
	if !ok {
		return "", false
	}
	g := strings.TrimRight(s, ".")
	if g == "" {
		d.ps.add(v.Line, p, "must be a host or a glob of hosts, not dots alone", got(v))
		return "", false
	}
	if msg := rules.HostGlobProblem(g); msg != "" {
		d.ps.add(v.Line, p, msg, got(v))
		return "", false
	}
	return sites.HostGlob(s), true
}

// delay decodes a Go duration that may be 0.
func (d *decoder) delay(n *yaml.Node, p string) (time.Duration, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		if v, err := time.ParseDuration(n.Value); err == nil && v == 0 {
			return 0, true
		}
	}
	return d.duration(n, p)
}

// hasKey reports whether the mapping n holds key with a non-null value.
func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if resolve(n.Content[i]).Value == key {
			return !isNull(resolve(n.Content[i+1]))
		}
	}
	return false
}
