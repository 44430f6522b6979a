package sessionpool

import (
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// canonicalHost returns u's host as the jar compares it: without port,
// brackets or a trailing dot, lowercased, punycode for internationalised
// names, IPv6 in its canonical form. It does not allocate for a lowercase
// ASCII name or an IPv4 address. ok is false for a scheme other than http,
// https, ws or wss, or a missing or malformed host.
func canonicalHost(u *url.URL) (host string, isIP, ok bool) {
	if u == nil || !cookieScheme(u.Scheme) {
		return "", false, false
	}
	h := u.Hostname()
	if strings.HasSuffix(h, ".") && !strings.HasSuffix(h, "..") {
		h = h[:len(h)-1]
	}
	return canonicalDomain(h)
}

func cookieScheme(s string) bool {
	return strings.EqualFold(s, "http") || strings.EqualFold(s, "https") ||
		strings.EqualFold(s, "ws") || strings.EqualFold(s, "wss")
}

func isSecureScheme(s string) bool {
	return strings.EqualFold(s, "https") || strings.EqualFold(s, "wss")
}

// canonicalDomain lowercases a host name or cookie domain (no leading or
// trailing dot, no port), converts a non-ASCII one to punycode and
// validates it: only letters, digits, '-', '_' and '.' between non-empty
// labels, or an IP address. A non-ASCII name is validated after its
// conversion, which maps the ideographic and fullwidth full stops to '.':
// what it returns is always its own canonical form, so a domain the jar
// stores is one the state document's loader accepts.
func canonicalDomain(s string) (domain string, isIP, ok bool) {
	if s == "" {
		return "", false, false
	}
	upper, nonASCII, colon := false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.':
			if i == 0 || i == len(s)-1 || s[i-1] == '.' {
				return "", false, false
			}
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == ':':
			colon = true
		case c >= 0x80:
			nonASCII = true
		default:
			return "", false, false
		}
	}
	if colon {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false, false
		}
		if a.Is4In6() {
			a = a.Unmap()
		}
		if s2 := a.String(); s2 != s {
			s = s2
		}
		return s, true, true
	}
	if nonASCII {
		a, err := idna.Lookup.ToASCII(s)
		if err != nil || a == "" {
			return "", false, false
		}
		for i := 0; i < len(a); i++ {
			if a[i] >= 0x80 {
				return "", false, false
			}
		}
		// "ä．．com" is "xn--4ca..com", "a。" is "a.": check the labels
		// again, on ASCII this time (no further recursion).
		return canonicalDomain(a)
	}
	if upper {
		s = strings.ToLower(s)
	}
	if c := s[len(s)-1]; '0' <= c && c <= '9' {
		if _, err := netip.ParseAddr(s); err == nil {
			return s, true, true
		}
	}
	return s, false, true
}

// isPublicSuffix reports whether domain is a public suffix ("com",
// "co.uk", "github.io"...).
func isPublicSuffix(domain string) bool {
	ps, _ := publicsuffix.PublicSuffix(domain)
	return ps == domain
}

// isLoopback reports whether host is localhost or a loopback address:
// browsers treat those as secure origins.
func isLoopback(host string, isIP bool) bool {
	if isIP {
		a, err := netip.ParseAddr(host)
		return err == nil && a.IsLoopback()
	}
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// hasDotSuffix reports whether s ends in "."+suffix.
func hasDotSuffix(s, suffix string) bool {
	return len(s) > len(suffix) && s[len(s)-len(suffix)-1] == '.' && s[len(s)-len(suffix):] == suffix
}

// domainMatch reports whether host domain-matches domain (RFC 6265 §5.1.3),
// both canonical.
func domainMatch(host, domain string) bool {
	return host == domain || hasDotSuffix(host, domain)
}

// cookieDomain applies a Set-Cookie Domain attribute received from host:
// it returns the cookie's domain and whether it is host-only, or !ok when
// the cookie must be dropped.
func cookieDomain(host string, hostIsIP bool, attr string, has bool) (domain string, hostOnly, ok bool) {
	if !has {
		return host, true, true
	}
	d, dIsIP, ok := canonicalDomain(strings.TrimPrefix(attr, "."))
	if !ok {
		return "", false, false
	}
	if hostIsIP || dIsIP {
		return host, true, d == host
	}
	if isPublicSuffix(d) {
		return host, true, d == host
	}
	if !hasDotSuffix(host, d) && host != d {
		return "", false, false
	}
	return d, false, true
}

// importDomain applies a browser-style Domain (leading dot: domain cookie;
// no dot: host-only for that domain; empty: host-only for host). host is
// "" when there is no request URL.
func importDomain(host string, hostIsIP bool, attr string) (domain string, hostOnly, ok bool) {
	if attr == "" {
		return host, true, host != ""
	}
	dot := attr[0] == '.'
	d, dIsIP, ok := canonicalDomain(strings.TrimPrefix(attr, "."))
	if !ok {
		return "", false, false
	}
	if host != "" && host != d && (hostIsIP || !hasDotSuffix(host, d)) {
		return "", false, false
	}
	if !dot || dIsIP {
		return d, true, true
	}
	if isPublicSuffix(d) {
		return d, true, d == host
	}
	return d, false, true
}

// requestPath returns the escaped path of u, "/" when it is empty or does
// not start with '/'. It does not allocate for usual paths.
func requestPath(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" || p[0] != '/' {
		return "/"
	}
	return p
}

// defaultPath is the default-path of RFC 6265 §5.1.4: the request path up
// to, not including, its last '/'; "/" when that leaves nothing.
func defaultPath(u *url.URL) string {
	p := requestPath(u)
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// pathMatch reports whether reqPath path-matches cookiePath (RFC 6265
// §5.1.4).
func pathMatch(reqPath, cookiePath string) bool {
	if reqPath == cookiePath {
		return true
	}
	if !strings.HasPrefix(reqPath, cookiePath) {
		return false
	}
	return cookiePath[len(cookiePath)-1] == '/' || reqPath[len(cookiePath)] == '/'
}
