package cookiefile

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// Live returns the cookies of cs that have not expired at now, in a new
// slice, and how many it dropped. (A session's SetCookies would keep
// expired ones as session cookies: that is its reading of a browser's
// "expires -1".)
func Live(cs []Cookie, now time.Time) ([]Cookie, int) {
	kept := cs[:0:0]
	for _, c := range cs {
		if c.Expires.IsZero() || now.Before(c.Expires) {
			kept = append(kept, c)
		}
	}
	return kept, len(cs) - len(kept)
}

// CheckWithJar makes sure that the session jar keeps each cookie as
// it is: it imports each one alone into a scratch session of p (built,
// never held) and compares. It catches what only the jar knows (a public
// suffix or an IP address as the domain of a domain cookie, a domain it
// cannot canonicalise) and returns the cookies with their domains in the
// jar's canonical form (lowercase, punycode). It also refuses more
// cookies than a session's jar holds, for one domain
// (sessionpool.MaxCookiesPerDomain) or in all
// (sessionpool.MaxCookiesPerJar): Apply would have the jar evict the
// first ones. The cookies refused are listed, with their lines, in an
// *Error wrapping ErrBadCookies; a scratch session p cannot build is
// another error.
func CheckWithJar(p *sessionpool.Pool, cs []Cookie) ([]Cookie, error) {
	var errs problems
	out := make([]Cookie, 0, len(cs))
	for _, c := range cs {
		scratch, err := p.NewSession(sessionpool.SessionOptions{ID: "cookie-check"})
		if err != nil {
			return nil, fmt.Errorf("check cookies: %w", err)
		}
		scratch.SetCookies(cookieURL(c.Domain), []*http.Cookie{httpCookie(&c.Cookie)})
		got := scratch.State().Cookies
		switch {
		case len(got) != 1:
			errs.add(c.Line, "cookie %s: the cookie jar refuses domain %q", quoteName(c.Name), c.Domain)
		case got[0].HostOnly != c.HostOnly:
			errs.add(c.Line, "cookie %s: %q is a public suffix or an IP address and cannot have domain cookies (make it host-only)", quoteName(c.Name), c.Domain)
		default:
			c.Domain = got[0].Domain
			out = append(out, c)
		}
	}
	checkRoom(out, &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// checkRoom records in errs each domain of cs that has more cookies than
// a session's jar holds for one domain, and cs having more than the jar
// holds in all, each at the line of the first cookie over the bound. A
// cookie that replaces an earlier one (same name, domain and path, as the
// jar matches them) takes no room.
func checkRoom(cs []Cookie, errs *problems) {
	type key struct{ name, domain, path string }
	seen := make(map[key]bool, len(cs))
	type count struct{ n, overLine int }
	domains := map[string]*count{}
	var order []string // domains as they come, for a stable report
	total := count{}
	for _, c := range cs {
		k := key{c.Name, c.Domain, c.Path}
		if seen[k] {
			continue
		}
		seen[k] = true
		d := domains[c.Domain]
		if d == nil {
			d = &count{}
			domains[c.Domain] = d
			order = append(order, c.Domain)
		}
		if d.n++; d.n == sessionpool.MaxCookiesPerDomain+1 {
			d.overLine = c.Line
		}
		if total.n++; total.n == sessionpool.MaxCookiesPerJar+1 {
			total.overLine = c.Line
		}
	}
	for _, name := range order {
		if d := domains[name]; d.overLine > 0 {
			errs.add(d.overLine, "domain %q has %d cookies, more than the %d a session keeps for one domain (this one is the first over)",
				name, d.n, sessionpool.MaxCookiesPerDomain)
		}
	}
	if total.overLine > 0 {
		errs.add(total.overLine, "%d cookies in all, more than the %d a session keeps (this one is the first over)",
			total.n, sessionpool.MaxCookiesPerJar)
	}
}

// Apply stores cookies that CheckWithJar returned in sess, in order, one
// SetCookies call per run of cookies of the same domain.
func Apply(sess *sessionpool.Session, cs []Cookie) {
	for i := 0; i < len(cs); {
		j := i
		batch := make([]*http.Cookie, 0, 1)
		for ; j < len(cs) && cs[j].Domain == cs[i].Domain; j++ {
			batch = append(batch, httpCookie(&cs[j].Cookie))
		}
		sess.SetCookies(cookieURL(cs[i].Domain), batch)
		i = j
	}
}

// cookieURL is the URL cookies of domain are imported as received from.
func cookieURL(domain string) *url.URL {
	host := domain
	if strings.Contains(domain, ":") {
		host = "[" + domain + "]"
	}
	return &url.URL{Scheme: "https", Host: host, Path: "/"}
}

// httpCookie is c in the browser style Session.SetCookies takes: a leading
// dot on Domain for a domain cookie, none for a host-only one.
func httpCookie(c *sessionpool.Cookie) *http.Cookie {
	hc := &http.Cookie{
		Name: c.Name, Value: c.Value, Path: c.Path, Domain: c.Domain,
		Expires: c.Expires, Secure: c.Secure, HttpOnly: c.HTTPOnly,
	}
	if !c.HostOnly {
		hc.Domain = "." + c.Domain
	}
	switch c.SameSite {
	case "Lax":
		hc.SameSite = http.SameSiteLaxMode
	case "Strict":
		hc.SameSite = http.SameSiteStrictMode
	case "None":
		hc.SameSite = http.SameSiteNoneMode
	}
	return hc
}
