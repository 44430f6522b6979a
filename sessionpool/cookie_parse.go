package sessionpool

import (
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// parsedCookie is one Set-Cookie line after parsing, before the jar's rules
// (domain, path default, expiry) are applied.
type parsedCookie struct {
	name, value string
	domain      string // raw Domain attribute value, when hasDomain
	hasDomain   bool
	path        string // "": the default path
	expires     time.Time
	hasExpires  bool
	maxAge      int64
	hasMaxAge   bool
	secure      bool
	httpOnly    bool
	sameSite    sameSite
}

// parseSetCookie parses one raw Set-Cookie header value following RFC 6265
// §5.2, with the browser behaviour of RFC 6265bis where it is stricter:
//
//   - A line with a control character other than HTAB is dropped.
//   - The name-value pair is what precedes the first ';'. Without '=' the
//     line is dropped (RFC 6265; RFC 6265bis would make a nameless cookie).
//     Name and value are trimmed of spaces and tabs; an empty name, a tab
//     inside name or value, or more than 4096 bytes of name plus value drop
//     the line. Values are kept verbatim, quotes included.
//   - Attributes are matched ignoring case, the last one wins; unknown ones
//     are ignored, and so is any attribute value over 1024 bytes.
//     Expires follows the date algorithm of §5.1.1 and Max-Age must be
//     digits with an optional leading '-': a malformed one is ignored (an
//     earlier valid one stays). An empty Domain is ignored. A Path that is
//     empty or does not start with '/' means the default path. SameSite is
//     Lax, Strict or None ignoring case; anything else means unset.
func parseSetCookie(line string) (pc parsedCookie, ok bool) {
	for i := 0; i < len(line); i++ {
		if c := line[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return pc, false
		}
	}
	nvPair, attrs, _ := strings.Cut(line, ";")
	name, value, found := strings.Cut(nvPair, "=")
	if !found {
		return pc, false
	}
	name, value = trimWSP(name), trimWSP(value)
	if !validName(name) || !validValue(value) || len(name)+len(value) > maxNameValueBytes {
		return pc, false
	}
	pc.name, pc.value = name, value
	for attrs != "" {
		var av string
		av, attrs, _ = strings.Cut(attrs, ";")
		k, v, _ := strings.Cut(av, "=")
		k, v = trimWSP(k), trimWSP(v)
		if len(v) > maxAttrValueBytes {
			continue
		}
		switch {
		case strings.EqualFold(k, "expires"):
			if t, ok := parseCookieDate(v); ok {
				pc.expires, pc.hasExpires = t, true
			}
		case strings.EqualFold(k, "max-age"):
			if n, ok := parseMaxAge(v); ok {
				pc.maxAge, pc.hasMaxAge = n, true
			}
		case strings.EqualFold(k, "domain"):
			if v != "" {
				pc.domain, pc.hasDomain = v, true
			}
		case strings.EqualFold(k, "path"):
			if v != "" && v[0] == '/' {
				pc.path = v
			} else {
				pc.path = ""
			}
		case strings.EqualFold(k, "secure"):
			pc.secure = true
		case strings.EqualFold(k, "httponly"):
			pc.httpOnly = true
		case strings.EqualFold(k, "samesite"):
			pc.sameSite, _ = parseSameSite(v)
		}
	}
	return pc, true
}

func trimWSP(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// validName reports whether s may be a cookie name: non-empty, valid
// UTF-8 (the state document is JSON: other bytes would not come back as
// they were), without control characters, ';' or '='. Like browsers,
// anything else is allowed.
func validName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == ';' || c == '=' {
			return false
		}
	}
	return true
}

// validValue reports whether s may be a cookie value: valid UTF-8 (as for
// names), no control characters and no ';'. Like browsers, anything else
// is allowed.
func validValue(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == ';' {
			return false
		}
	}
	return true
}

// validAttrValue reports whether s may be a Path: no control characters,
// no ';' and at most maxAttrValueBytes.
func validAttrValue(s string) bool {
	return len(s) <= maxAttrValueBytes && validValue(s)
}

// parseMaxAge parses a Max-Age value (RFC 6265 §5.2.2): digits with an
// optional leading '-'. Any negative value is returned as -1; huge values
// saturate at maxAgeCap.
func parseMaxAge(v string) (int64, bool) {
	neg := strings.HasPrefix(v, "-")
	if neg {
		v = v[1:]
	}
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= maxAgeCap {
			n = n*10 + int64(c-'0')
		}
	}
	if neg {
		if n == 0 {
			return 0, true
		}
		return -1, true
	}
	return min(n, maxAgeCap), true
}

// parseCookieDate parses an Expires value with the algorithm of RFC 6265
// §5.1.1, which accepts the many date formats servers send (RFC 1123,
// RFC 850, asctime, with or without dashes, two-digit years...).
func parseCookieDate(s string) (time.Time, bool) {
	var (
		hour, minute, sec, day, year             int
		month                                    time.Month
		foundTime, foundDay, foundMonth, foundYr bool
	)
	for s != "" {
		i := 0
		for i < len(s) && isDateDelim(s[i]) {
			i++
		}
		s = s[i:]
		i = 0
		for i < len(s) && !isDateDelim(s[i]) {
			i++
		}
		tok := s[:i]
		s = s[i:]
		if tok == "" {
			break
		}
		if !foundTime {
			if h, m, sc, ok := parseHMS(tok); ok {
				hour, minute, sec, foundTime = h, m, sc, true
				continue
			}
		}
		if !foundDay {
			if d, ok := parseDateDigits(tok, 1, 2); ok {
				day, foundDay = d, true
				continue
			}
		}
		if !foundMonth {
			if m, ok := parseMonth(tok); ok {
				month, foundMonth = m, true
				continue
			}
		}
		if !foundYr {
			if y, ok := parseDateDigits(tok, 2, 4); ok {
				year, foundYr = y, true
				continue
			}
		}
	}
	if !foundTime || !foundDay || !foundMonth || !foundYr {
		return time.Time{}, false
	}
	switch {
	case year >= 70 && year <= 99:
		year += 1900
	case year >= 0 && year <= 69:
		year += 2000
	}
	if day < 1 || day > 31 || year < 1601 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, month, day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // 31 April, 29 February 2015...
		return time.Time{}, false
	}
	return t, true
}

// isDateDelim reports whether c is a delimiter of RFC 6265 §5.1.1:
// %x09 / %x20-2F / %x3B-40 / %x5B-60 / %x7B-7E.
func isDateDelim(c byte) bool {
	return c == 0x09 || (c >= 0x20 && c <= 0x2f) || (c >= 0x3b && c <= 0x40) ||
		(c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e)
}

// leadingDigits returns the number of leading ASCII digits of s.
func leadingDigits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// parseDateDigits matches minN*maxN DIGIT ( non-digit *OCTET ).
func parseDateDigits(tok string, minN, maxN int) (int, bool) {
	n := leadingDigits(tok)
	if n < minN || n > maxN {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		v = v*10 + int(tok[i]-'0')
	}
	return v, true
}

// parseHMS matches time-field ":" time-field ":" time-field ( non-digit
// *OCTET ) with time-field = 1*2DIGIT.
func parseHMS(tok string) (h, m, s int, ok bool) {
	var f [3]int
	for k := range 3 {
		n := leadingDigits(tok)
		if n < 1 || n > 2 {
			return 0, 0, 0, false
		}
		for i := 0; i < n; i++ {
			f[k] = f[k]*10 + int(tok[i]-'0')
		}
		tok = tok[n:]
		if k < 2 {
			if tok == "" || tok[0] != ':' {
				return 0, 0, 0, false
			}
			tok = tok[1:]
		}
	}
	return f[0], f[1], f[2], true
}

// parseMonth matches month ( *OCTET ): the first three letters of an
// English month name, ignoring case.
func parseMonth(tok string) (time.Month, bool) {
	if len(tok) < 3 {
		return 0, false
	}
	var b [3]byte
	for i := range 3 {
		c := tok[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	const months = "janfebmaraprmayjunjulaugsepoctnovdec"
	for i := 0; i < len(months); i += 3 {
		if months[i:i+3] == string(b[:]) {
			return time.Month(i/3 + 1), true
		}
	}
	return 0, false
}

// sameSite is a cookie's SameSite attribute; the zero value is unset.
type sameSite uint8

const (
	sameSiteUnset sameSite = iota
	sameSiteLax
	sameSiteStrict
	sameSiteNone
)

func (s sameSite) String() string {
	switch s {
	case sameSiteLax:
		return "Lax"
	case sameSiteStrict:
		return "Strict"
	case sameSiteNone:
		return "None"
	}
	return ""
}

// parseSameSite maps "Lax", "Strict" and "None" (ignoring case); anything
// else is unset and not ok.
func parseSameSite(v string) (sameSite, bool) {
	switch {
	case strings.EqualFold(v, "lax"):
		return sameSiteLax, true
	case strings.EqualFold(v, "strict"):
		return sameSiteStrict, true
	case strings.EqualFold(v, "none"):
		return sameSiteNone, true
	}
	return sameSiteUnset, false
}

func sameSiteFromHTTP(s http.SameSite) sameSite {
	switch s {
	case http.SameSiteLaxMode:
		return sameSiteLax
	case http.SameSiteStrictMode:
		return sameSiteStrict
	case http.SameSiteNoneMode:
		return sameSiteNone
	}
	return sameSiteUnset
}

// prefixOK enforces the cookie name prefixes of RFC 6265bis (ignoring case):
// a __Secure- cookie must be Secure; a __Host- cookie must be Secure,
// host-only and have the path "/".
func prefixOK(name string, e *entry) bool {
	if hasPrefixFold(name, "__Secure-") {
		return e.secure
	}
	if hasPrefixFold(name, "__Host-") {
		return e.secure && e.hostOnly && e.path == "/"
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
