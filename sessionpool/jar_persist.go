package sessionpool

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A jar's cookies in their persisted form (Cookie): exported for State and
// the state document, and loaded back, checked, when a pool restores its
// sessions.

// export returns e in its persisted form.
func (e *entry) export() Cookie {
	return Cookie{
		Name:     e.name(),
		Value:    e.value(),
		Domain:   e.domain,
		Path:     e.path,
		HostOnly: e.hostOnly,
		Secure:   e.secure,
		HTTPOnly: e.httpOnly,
		SameSite: e.sameSite.String(),
		Expires:  e.expires,
		Creation: e.creation,
	}
}

// export returns the cookies unexpired at now, in CookieString order
// (longer paths, earlier creation, order set). Nil when there are none.
func (j *jar) export(now time.Time) []Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.removeExpiredLocked(now)
	var out []Cookie
	for i := range j.entries {
		e := &j.entries[i]
		if out == nil {
			out = make([]Cookie, 0, len(j.entries))
		}
		out = append(out, e.export())
	}
	return out
}

// load replaces the jar's contents with persisted cookies. Cookies expired
// at now are skipped. Leniencies: a leading dot on Domain is dropped, Domain
// is lowercased, an empty Path means "/", SameSite is matched ignoring case,
// and a zero Creation means now. Invalid cookies (empty or bad name, control
// characters or ';' in a value, more than 4096 bytes of name and value (a
// response's cookie the jar drops), an empty or malformed domain, a path not
// starting with '/', an unknown SameSite, a domain cookie on a public suffix
// or an IP address) make load fail with an error per cookie, each naming the
// cookie and matching ErrInvalidCookie, and leave the jar unchanged.
// Of duplicates (same name, domain and path) the last in CookieString order
// (later creation, then later in cs) wins, keeping the first one's creation.
// The jar's bounds hold: of more than MaxCookiesPerDomain cookies for one
// domain, or MaxCookiesPerJar in all (a document no jar wrote: edited by
// hand, or a Redis session two processes added to at once), the ones
// insert would have evicted are left out (without Secure first, then the
// oldest), as if the cookies had been set one by one.
func (j *jar) load(cs []Cookie, now time.Time) error {
	now = now.Round(0)
	entries := make([]entry, 0, len(cs))
	var errs []error
	for i := range cs {
		e, err := entryFromCookie(&cs[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("load cookie %d %q (domain %q): %w", i, cs[i].Name, cs[i].Domain, err))
			continue
		}
		if e.creation.IsZero() {
			e.creation = now
		}
		if e.expired(now) {
			continue
		}
		e.seq = uint64(i)
		entries = append(entries, e)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Stable sort keeps the given order among equals; then drop duplicates,
	// the later one (higher seq) winning but keeping the earlier creation.
	slices.SortStableFunc(entries, func(a, b entry) int { return compareEntries(&a, &b) })
	entries = bound(dedupe(entries))
	for i := range entries {
		entries[i].seq = uint64(i)
	}
	if len(entries) == 0 {
		entries = nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = entries
	j.seq = uint64(len(entries))
	return nil
}

// dedupe removes earlier duplicates (same name, domain, path) from sorted
// entries, keeping the last one's contents with the first one's place.
func dedupe(entries []entry) []entry {
	type key struct{ name, domain, path string }
	var seen map[key]int
	out := entries[:0]
	for _, e := range entries {
		k := key{e.name(), e.domain, e.path}
		if i, ok := seen[k]; ok {
			creation, seq := out[i].creation, out[i].seq
			out[i] = e
			out[i].creation, out[i].seq = creation, seq
			continue
		}
		if seen == nil {
			seen = make(map[key]int)
		}
		seen[k] = len(out)
		out = append(out, e)
	}
	return out
}

// bound leaves out of entries (sorted, without duplicates) the cookies over
// MaxCookiesPerDomain for their domain, then those over MaxCookiesPerJar in
// all: each time the one evictLocked would take first (evictsBefore).
func bound(entries []entry) []entry {
	if len(entries) <= min(MaxCookiesPerDomain, MaxCookiesPerJar) {
		return entries
	}
	order := make([]int, len(entries))
	perDomain := make(map[string]int)
	for i := range entries {
		order[i] = i
		perDomain[entries[i].domain]++
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case evictsBefore(&entries[a], &entries[b]):
			return -1
		case evictsBefore(&entries[b], &entries[a]):
			return 1
		}
		return 0
	})
	drop := make([]bool, len(entries))
	n := len(entries)
	for _, i := range order {
		if d := entries[i].domain; perDomain[d] > MaxCookiesPerDomain {
			perDomain[d]--
			drop[i] = true
			n--
		}
	}
	for _, i := range order {
		if n <= MaxCookiesPerJar {
			break
		}
		if !drop[i] {
			drop[i] = true
			n--
		}
	}
	out := entries[:0]
	for i := range entries {
		if !drop[i] {
			out = append(out, entries[i])
		}
	}
	return out
}

// cookieError is a problem of a persisted cookie that load refuses. It
// matches ErrInvalidCookie (errors.Is) without repeating its text: load's
// errors are reported inside errors that already say what is invalid
// (ErrInvalidState, naming the state and the session).
type cookieError string

func (e cookieError) Error() string { return string(e) }

// Is reports whether target is ErrInvalidCookie.
func (e cookieError) Is(target error) bool { return target == ErrInvalidCookie }

// entryFromCookie validates a persisted cookie.
func entryFromCookie(c *Cookie) (entry, error) {
	if !validName(c.Name) {
		return entry{}, cookieError("bad name")
	}
	if !validValue(c.Value) {
		return entry{}, cookieError("bad value")
	}
	if len(c.Name)+len(c.Value) > maxNameValueBytes {
		return entry{}, cookieError(fmt.Sprintf("name and value over %d bytes", maxNameValueBytes))
	}
	domain := strings.TrimPrefix(c.Domain, ".")
	domain, isIP, ok := canonicalDomain(domain)
	if !ok {
		return entry{}, cookieError("bad domain")
	}
	if !c.HostOnly && (isIP || isPublicSuffix(domain)) {
		return entry{}, cookieError("domain cookie on a public suffix or IP address")
	}
	path := c.Path
	if path == "" {
		path = "/"
	}
	if path[0] != '/' || !validAttrValue(path) {
		return entry{}, cookieError("bad path")
	}
	ss, ok := parseSameSite(c.SameSite)
	if !ok && c.SameSite != "" {
		return entry{}, cookieError(fmt.Sprintf("bad sameSite %q", c.SameSite))
	}
	nv := c.Name + "=" + c.Value
	return entry{
		nv:       nv,
		nameLen:  len(c.Name),
		domain:   domain,
		path:     path,
		expires:  c.Expires.Round(0),
		creation: c.Creation.Round(0),
		hostOnly: c.HostOnly,
		secure:   c.Secure,
		httpOnly: c.HTTPOnly,
		sameSite: ss,
	}, nil
}
