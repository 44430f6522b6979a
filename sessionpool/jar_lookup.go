package sessionpool

import (
	"net/http"
	"net/url"
	"time"
)

// The lookups of a jar: the cookies to send to a URL, as http.Cookies or as
// a Cookie header value. They run on every request through the proxy, so
// the header value is built without allocating when the caller's buffer
// has room.

// cookies returns the cookies to send to u at now, in CookieString order,
// with Name and Value set. A quoted value is returned without its quotes
// and with Quoted set, as net/http does, so (*http.Request).AddCookie
// re-emits the quotes. Note that AddCookie drops bytes that RFC 6265 does not
// allow in values (browsers send them): appendCookieString keeps them.
func (j *jar) cookies(u *url.URL, now time.Time) []*http.Cookie {
	var out []*http.Cookie
	j.each(u, now, func(e *entry) {
		c := &http.Cookie{Name: e.name(), Value: e.value()}
		if v := c.Value; len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			c.Value, c.Quoted = v[1:len(v)-1], true
		}
		out = append(out, c)
	})
	return out
}

// appendCookieString appends to dst the Cookie header value for u at now,
// "a=1; b=2", values as the server sent them. It appends nothing when no
// cookie matches. It does not allocate when dst has room; a nil dst gets
// one allocation of the exact size. Its loops repeat each's on purpose: the
// same walk through a callback costs 10-40% more per request
// (BenchmarkCookieString).
func (j *jar) appendCookieString(dst []byte, u *url.URL, now time.Time) []byte {
	host, isIP, ok := canonicalHost(u)
	if !ok {
		return dst
	}
	secure := isSecureScheme(u.Scheme)
	path := requestPath(u)
	j.mu.Lock()
	defer j.mu.Unlock()
	if cap(dst) == 0 {
		n, expired := 0, false
		for i := range j.entries {
			e := &j.entries[i]
			if !e.matches(host, isIP, secure, path) {
				continue
			}
			if e.expired(now) {
				expired = true
				continue
			}
			n += len(e.nv) + 2
		}
		if n == 0 {
			if expired {
				j.removeExpiredLocked(now)
			}
			return dst
		}
		dst = make([]byte, 0, n-2)
	}
	start := len(dst)
	expired := false
	for i := range j.entries {
		e := &j.entries[i]
		if !e.matches(host, isIP, secure, path) {
			continue
		}
		if e.expired(now) {
			expired = true
			continue
		}
		if len(dst) > start {
			dst = append(dst, "; "...)
		}
		dst = append(dst, e.nv...)
	}
	if expired {
		j.removeExpiredLocked(now)
	}
	return dst
}

// cookieString returns the Cookie header value for u at now with a single
// allocation when it is under 1 KiB: the fast path of Session.CookieString.
func (j *jar) cookieString(u *url.URL, now time.Time) string {
	var buf [1024]byte
	return string(j.appendCookieString(buf[:0], u, now))
}

// each calls fn, under the lock, for every cookie to send to u at now.
// Expired cookies met on the way are dropped: a lookup only checks the
// expiry of the cookies that match; insert and export drop the others.
func (j *jar) each(u *url.URL, now time.Time, fn func(*entry)) {
	host, isIP, ok := canonicalHost(u)
	if !ok {
		return
	}
	secure := isSecureScheme(u.Scheme)
	path := requestPath(u)
	j.mu.Lock()
	defer j.mu.Unlock()
	expired := false
	for i := range j.entries {
		e := &j.entries[i]
		if !e.matches(host, isIP, secure, path) {
			continue
		}
		if e.expired(now) {
			expired = true
			continue
		}
		fn(e)
	}
	if expired {
		j.removeExpiredLocked(now)
	}
}
