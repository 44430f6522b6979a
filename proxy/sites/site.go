// Package sites says which site a request host belongs to, reads
// Retry-After, and paces the requests to each site (Pacer): a delay between
// two requests of one session, a cap on the requests in flight, and pauses
// of a session on a site.
//
// A site is the registrable domain of a host by the public suffix list
// (golang.org/x/net/publicsuffix): www.example.co.uk and shop.example.co.uk
// are one site, example.co.uk. An IP literal is its own site, and so is a
// host without a dot or one that is itself a public suffix.
package sites

import (
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Of returns the site of host: its registrable domain, lower-cased. A port
// and the brackets of an IPv6 literal are ignored, and so are trailing
// dots. An IP literal is its own site (in its canonical form: "[::1]:443"
// gives "::1"); so is a host without a dot, or one that is itself a public
// suffix ("co.uk"). Of(Of(h)) == Of(h). Of is safe for concurrent use.
func Of(host string) string {
	h := Host(host)
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Is4() {
			return h // ParseAddr takes IPv4 in its one canonical form only
		}
		return a.String()
	}
	if !strings.Contains(h, ".") || strings.Contains(h, ":") {
		return h // no dot, or not a host name
	}
	s, err := publicsuffix.EffectiveTLDPlusOne(h)
	if err != nil {
		return h // a public suffix itself, or not a domain name
	}
	return s
}

// Host returns host without its port, the brackets of an IP literal and
// trailing dots, lower-cased: the form host globs are matched against.
func Host(host string) string {
	h := host
	if strings.HasPrefix(h, "[") {
		if j := strings.IndexByte(h, ']'); j > 0 {
			if _, err := netip.ParseAddr(h[1:j]); err == nil {
				h = h[1:j]
			}
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i] // one colon: name:port
	}
	return strings.ToLower(strings.TrimRight(h, "."))
}

// HostGlob returns the host glob glob in the form Host gives hosts, so
// that a glob written the way the host appears in a URL matches it: glob
// lower-cased, without the brackets around an IP literal ("[::1]" gives
// "::1") and without trailing dots ("*.example.com." gives
// "*.example.com"). The Pacer's rules, and the rules' host conditions,
// compile their globs with it. HostGlob is safe for concurrent use.
func HostGlob(glob string) string {
	g := glob
	if len(g) > 2 && g[0] == '[' && g[len(g)-1] == ']' {
		if _, err := netip.ParseAddr(g[1 : len(g)-1]); err == nil {
			g = g[1 : len(g)-1]
		}
	}
	return strings.ToLower(strings.TrimRight(g, "."))
}
