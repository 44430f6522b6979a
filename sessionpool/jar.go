package sessionpool

import (
	"cmp"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// ErrInvalidCookie is matched (errors.Is) by the errors about cookies that
// cannot be loaded into a session's jar (empty name, bad characters, bad
// domain...).
var ErrInvalidCookie = errors.New("sessionpool: invalid cookie")

// Cookie is one cookie as a jar holds it and as the persisted state stores it.
//
// Value is the value exactly as the server sent it: a quoted value keeps its
// quotes here, and is sent back with them, as browsers do.
type Cookie struct {
	Name     string    `json:"name"`
	Value    string    `json:"value"`
	Domain   string    `json:"domain"` // no leading dot
	Path     string    `json:"path"`
	HostOnly bool      `json:"hostOnly"`
	Secure   bool      `json:"secure"`
	HTTPOnly bool      `json:"httpOnly"`
	SameSite string    `json:"sameSite,omitempty"` // "", "Lax", "Strict", "None"
	Expires  time.Time `json:"expires,omitzero"`   // zero: a session cookie (lives as long as the session)
	Creation time.Time `json:"creation"`
}

// Limits that keep one session's jar bounded whatever servers send. When a
// new cookie would exceed one of them, the jar first drops expired cookies,
// then the oldest cookie (earliest creation) of the same domain, or of the
// whole jar. Loading persisted cookies keeps them too (see jar.load).
const (
	// MaxCookiesPerDomain is how many cookies a session's jar holds for
	// one cookie domain (host-only and domain cookies together), as
	// browsers; one more evicts one. An import checks against it.
	MaxCookiesPerDomain = 180
	// MaxCookiesPerJar is how many cookies a session's jar holds in all,
	// as browsers; one more evicts one. An import checks against it.
	MaxCookiesPerJar = 3000

	maxNameValueBytes = 4096 // name plus value (RFC 6265bis)
	maxAttrValueBytes = 1024 // a longer Domain or Path value is ignored (RFC 6265bis)
)

// jar is one session's cookie jar with the semantics of RFC 6265 (and, where
// it says so, of RFC 6265bis as browsers implement it):
//
//   - Domain and host-only matching, case-insensitive, ports ignored; hosts
//     are lowercased, a trailing dot is dropped and internationalised names
//     are converted to punycode. A Domain attribute with a leading dot is
//     accepted (the dot is dropped). A Domain that does not domain-match the
//     request host is dropped. A public suffix (golang.org/x/net/publicsuffix)
//     is refused as a cookie domain, except when it equals the host itself:
//     the cookie then becomes host-only, as in net/http/cookiejar. On an IP
//     address host only host-only cookies exist (a Domain equal to the
//     address is accepted and made host-only).
//   - Path matching; the default path comes from the request URL when Path is
//     absent or does not start with '/'.
//   - Secure cookies are only sent over https (and wss). Like browsers (RFC
//     6265bis) and unlike net/http/cookiejar, a Set-Cookie line with Secure
//     is only accepted from https/wss or from a loopback host (localhost,
//     127.0.0.0/8, ::1), and a non-secure origin cannot overwrite a Secure
//     cookie of the same name ("leave secure cookies alone"). setCookies
//     (imports) accepts Secure cookies from any scheme.
//   - The __Secure- and __Host- name prefixes are enforced (RFC 6265bis):
//     a cookie that breaks its prefix's rules is ignored entirely, so it
//     deletes nothing either (a subdomain cannot delete a __Host- cookie).
//   - Max-Age wins over Expires; a Max-Age of zero or less, or an Expires
//     not after now, deletes the cookie. A malformed Expires or Max-Age is
//     ignored, not the cookie.
//   - A later cookie with the same name, domain and path replaces the earlier
//     one and keeps its creation time and its place in the order.
//   - Cookies are returned with longer paths first, then earlier creation,
//     then in the order they were set (a per-jar sequence number), so that
//     cookies set by one response keep their order.
//   - HttpOnly and SameSite are stored and exported but do not restrict
//     sending: the jar serves an HTTP client, which has no scripts and no
//     notion of the site that initiated a request.
//   - Only the http, https, ws and wss schemes get or set cookies.
//
// The jar is bounded: see MaxCookiesPerDomain and MaxCookiesPerJar.
//
// The zero value is an empty jar ready to use and holds no memory beyond the
// struct. A jar is safe for concurrent use by multiple goroutines.
type jar struct {
	mu      sync.Mutex
	entries []entry // in CookieString order: longer paths, earlier creation, lower seq
	seq     uint64  // next sequence number
	// track makes every change of the stored cookies append to delta; set
	// for the sessions of a Redis pool, which send the changes to the server
	// cookie by cookie (so that concurrent responses never lose each other's
	// cookies). Set before the jar is shared.
	track bool
	delta []cookieDelta
}

// cookieDelta is one change of a tracked jar: e was stored (or replaced the
// cookie with its name, domain and path), or, with del, that cookie was
// removed. insecure: the change came from a response over plain http, so
// it must not replace or remove a Secure cookie the server holds (which
// this jar, a copy, may not know).
type cookieDelta struct {
	e        entry
	del      bool
	insecure bool
}

// noteLocked records a change of a tracked jar.
func (j *jar) noteLocked(e *entry, del, insecure bool) {
	if j.track {
		j.delta = append(j.delta, cookieDelta{e: *e, del: del, insecure: insecure})
	}
}

// takeDelta returns the changes recorded since the last call and forgets
// them.
func (j *jar) takeDelta() []cookieDelta {
	j.mu.Lock()
	defer j.mu.Unlock()
	d := j.delta
	j.delta = nil
	return d
}

// entry is one stored cookie. nv is "name=value" so a lookup appends it in
// one go; name and value are slices of it.
type entry struct {
	nv       string
	nameLen  int
	domain   string
	path     string
	expires  time.Time // zero: session cookie
	creation time.Time
	seq      uint64
	hostOnly bool
	secure   bool
	httpOnly bool
	sameSite sameSite
}

func (e *entry) name() string  { return e.nv[:e.nameLen] }
func (e *entry) value() string { return e.nv[e.nameLen+1:] }

// expired reports whether e is expired at now.
func (e *entry) expired(now time.Time) bool {
	return !e.expires.IsZero() && !now.Before(e.expires)
}

// matches reports whether e is to be sent to host (canonical), path
// (request path, never empty) over a secure connection or not.
func (e *entry) matches(host string, hostIsIP, secure bool, path string) bool {
	if e.secure && !secure {
		return false
	}
	if host != e.domain {
		if e.hostOnly || hostIsIP || !hasDotSuffix(host, e.domain) {
			return false
		}
	}
	return pathMatch(path, e.path)
}

// compareEntries orders entries as CookieString does: longer paths first,
// then earlier creation, then lower sequence number.
func compareEntries(a, b *entry) int {
	if c := cmp.Compare(len(b.path), len(a.path)); c != 0 {
		return c
	}
	if c := a.creation.Compare(b.creation); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// setFromResponse stores the cookies of the raw Set-Cookie header values
// received for u. Malformed lines and cookies the rules refuse are dropped;
// it never fails. A line whose name-value pair has no '=' is dropped
// (RFC 6265 §5.2; RFC 6265bis would make it a nameless cookie), as is one
// with an empty name or with control characters in its name or value.
func (j *jar) setFromResponse(u *url.URL, setCookieLines []string, now time.Time) {
	if len(setCookieLines) == 0 {
		return
	}
	host, isIP, ok := canonicalHost(u)
	if !ok {
		return
	}
	secureOrigin := isSecureScheme(u.Scheme) || isLoopback(host, isIP)
	now = now.Round(0)
	var defPath string
	for _, line := range setCookieLines {
		pc, ok := parseSetCookie(line)
		if !ok {
			continue
		}
		if pc.secure && !secureOrigin {
			continue
		}
		domain, hostOnly, ok := cookieDomain(host, isIP, pc.domain, pc.hasDomain)
		if !ok {
			continue
		}
		path := pc.path
		if path == "" {
			if defPath == "" {
				defPath = defaultPath(u)
			}
			path = defPath
		}
		if !validAttrValue(path) {
			continue // a default path from a URL too long (or odd) to be a Path attribute
		}
		e := entry{
			domain:   domain,
			path:     path,
			hostOnly: hostOnly,
			secure:   pc.secure,
			httpOnly: pc.httpOnly,
			sameSite: pc.sameSite,
		}
		if !prefixOK(pc.name, &e) {
			continue // ignored entirely, a deletion too (RFC 6265bis 5.7)
		}
		switch {
		case pc.hasMaxAge:
			if pc.maxAge <= 0 {
				j.remove(pc.name, domain, path, secureOrigin, now)
				continue
			}
			e.expires = now.Add(time.Duration(min(pc.maxAge, maxAgeCap)) * time.Second)
		case pc.hasExpires:
			if !now.Before(pc.expires) {
				j.remove(pc.name, domain, path, secureOrigin, now)
				continue
			}
			e.expires = pc.expires
		}
		j.insert(pc.name, pc.value, e, now, secureOrigin)
	}
}

// maxAgeCap keeps now+Max-Age inside time.Duration.
const maxAgeCap = int64((1<<63 - 1) / time.Second)

// setCookies stores browser-style cookies (as exported by Playwright,
// Puppeteer or a Netscape cookies.txt) for u:
//
//   - Domain with a leading dot: a domain cookie; Domain without one: a
//     host-only cookie for that domain; no Domain: host-only for u's host.
//     u's host must domain-match the cookie's domain; public suffixes and
//     IP addresses follow the same rules as for Set-Cookie. u may be nil:
//     then every cookie needs a Domain and is checked on its own.
//   - MaxAge < 0 deletes the cookie, MaxAge > 0 sets its expiry from now.
//     Otherwise an Expires that is zero or not after now (browsers export
//     session cookies with -1) makes a session cookie; a later one is the
//     expiry.
//   - An empty Path or one not starting with '/' means "/".
//   - Quoted values (Quoted set) are stored with their quotes.
//   - Secure is accepted whatever u's scheme.
//
// Invalid cookies (empty name, control characters or ';' in name or value)
// are dropped; it never fails.
func (j *jar) setCookies(u *url.URL, cs []*http.Cookie, now time.Time) {
	var (
		host string
		isIP bool
	)
	if u != nil {
		var ok bool
		host, isIP, ok = canonicalHost(u)
		if !ok {
			return
		}
	}
	now = now.Round(0)
	for _, c := range cs {
		if c == nil || !validName(c.Name) {
			continue
		}
		value := c.Value
		if c.Quoted {
			value = `"` + value + `"`
		}
		if !validValue(value) || len(c.Name)+len(value) > maxNameValueBytes {
			continue
		}
		domain, hostOnly, ok := importDomain(host, isIP, c.Domain)
		if !ok {
			continue
		}
		path := c.Path
		if path == "" || path[0] != '/' || !validAttrValue(path) {
			path = "/"
		}
		e := entry{
			domain:   domain,
			path:     path,
			hostOnly: hostOnly,
			secure:   c.Secure,
			httpOnly: c.HttpOnly,
			sameSite: sameSiteFromHTTP(c.SameSite),
		}
		if !prefixOK(c.Name, &e) {
			continue // ignored entirely, a deletion too
		}
		switch {
		case c.MaxAge < 0:
			j.remove(c.Name, domain, path, true, now)
			continue
		case c.MaxAge > 0:
			e.expires = now.Add(time.Duration(min(int64(c.MaxAge), maxAgeCap)) * time.Second)
		case now.Before(c.Expires):
			e.expires = c.Expires.Round(0)
		}
		j.insert(c.Name, value, e, now, true)
	}
}

// insert stores a new cookie, replacing one with the same name, domain and
// path (keeping its creation and sequence number). e has all fields but nv,
// nameLen, creation and seq. The strings are copied so that the jar does not
// keep whole response headers alive; a server setting again a cookie the jar
// holds unchanged (the common case: on every response) costs no allocation.
func (j *jar) insert(name, value string, e entry, now time.Time, secureOrigin bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !secureOrigin && j.secureShieldsLocked(name, e.domain, e.path, now) {
		return
	}
	sameDomain, expired, twin := 0, false, -1
	for i := range j.entries {
		old := &j.entries[i]
		if old.expired(now) {
			expired = true
			continue
		}
		if old.name() != name {
			if old.domain == e.domain {
				sameDomain++
			}
			continue
		}
		if old.domain == e.domain && old.path == e.path {
			twin = i
			continue
		}
		if old.domain == e.domain {
			sameDomain++
		}
	}
	if twin >= 0 {
		old := &j.entries[twin]
		if old.value() == value && old.hostOnly == e.hostOnly && old.secure == e.secure &&
			old.httpOnly == e.httpOnly && old.sameSite == e.sameSite {
			if !old.expires.Equal(e.expires) {
				old.expires = e.expires // all a same-valued cookie can change
				j.noteLocked(old, false, !secureOrigin)
			}
			return
		}
		e.creation = old.creation
		e.seq = old.seq
		own(&e, name, value)
		*old = e
		j.noteLocked(old, false, !secureOrigin)
		return
	}
	own(&e, name, value)
	e.creation = now
	e.seq = j.seq
	j.seq++
	if expired {
		j.removeExpiredLocked(now)
	}
	if sameDomain >= MaxCookiesPerDomain || len(j.entries) >= MaxCookiesPerJar {
		j.evictLocked(e.domain)
	}
	// The first entry that sorts after e (a binary search written out so
	// that e stays on the stack).
	lo, hi := 0, len(j.entries)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if compareEntries(&j.entries[mid], &e) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	j.entries = slices.Insert(j.entries, lo, e)
	j.noteLocked(&e, false, !secureOrigin)
}

// own gives e its own copy of the name, value, path and domain, in one
// allocation.
func own(e *entry, name, value string) {
	buf := name + "=" + value + e.path + e.domain
	e.nv = buf[:len(name)+1+len(value)]
	e.nameLen = len(name)
	e.path = buf[len(e.nv) : len(e.nv)+len(e.path)]
	e.domain = buf[len(e.nv)+len(e.path):]
}

// evictLocked makes room for one more cookie of domain.
func (j *jar) evictLocked(domain string) {
	victim, n := -1, 0
	for i := range j.entries {
		e := &j.entries[i]
		if e.domain != domain {
			continue
		}
		n++
		if victim < 0 || evictsBefore(e, &j.entries[victim]) {
			victim = i
		}
	}
	if n < MaxCookiesPerDomain {
		victim = -1
		if len(j.entries) < MaxCookiesPerJar {
			return
		}
		for i := range j.entries {
			if victim < 0 || evictsBefore(&j.entries[i], &j.entries[victim]) {
				victim = i
			}
		}
	}
	if victim >= 0 {
		j.noteLocked(&j.entries[victim], true, false)
		j.entries = slices.Delete(j.entries, victim, victim+1)
	}
}

// evictsBefore reports whether a goes before b when the jar makes room: a
// cookie without Secure before one with it (RFC 6265bis, so that plain-HTTP
// responses cannot push a Secure cookie out), then the older first.
func evictsBefore(a, b *entry) bool {
	if a.secure != b.secure {
		return !a.secure
	}
	if c := a.creation.Compare(b.creation); c != 0 {
		return c < 0
	}
	return a.seq < b.seq
}

// remove deletes the cookie with the given name, domain and path, unless the
// request is not secure and the cookie is (leave secure cookies alone). A
// tracked jar records the deletion even when it does not hold the cookie:
// it is a copy, and the server may hold it (set by another copy).
func (j *jar) remove(name, domain, path string, secureOrigin bool, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !secureOrigin && j.secureShieldsLocked(name, domain, path, now) {
		return
	}
	for i := range j.entries {
		e := &j.entries[i]
		if e.name() == name && e.domain == domain && e.path == path {
			j.noteLocked(e, true, !secureOrigin)
			j.entries = slices.Delete(j.entries, i, i+1)
			return
		}
	}
	if j.track {
		e := entry{nv: name + "=", nameLen: len(name), domain: domain, path: path}
		j.noteLocked(&e, true, !secureOrigin)
	}
}

// secureShieldsLocked reports whether a Secure cookie of the jar keeps a
// cookie (name, domain, path) set or deleted by a response that did not
// come over a secure channel out: RFC 6265bis' "leave secure cookies
// alone" (5.7), for a Secure cookie of the same name, whose domain and the
// new one's match either way, and whose path the new one's path-matches.
// Cookies expired at now do not count.
func (j *jar) secureShieldsLocked(name, domain, path string, now time.Time) bool {
	for i := range j.entries {
		old := &j.entries[i]
		if old.secure && old.name() == name && !old.expired(now) &&
			(domainMatch(old.domain, domain) || domainMatch(domain, old.domain)) && pathMatch(path, old.path) {
			return true
		}
	}
	return false
}

// removeExpiredLocked drops every cookie expired at now. A tracked jar does
// not record these: the server's copy of the cookie may have been renewed
// by another copy of the session, and an expired one is skipped when read.
func (j *jar) removeExpiredLocked(now time.Time) {
	j.entries = slices.DeleteFunc(j.entries, func(e entry) bool {
		return e.expired(now)
	})
	if len(j.entries) == 0 {
		j.entries = nil
	}
}
