package cookiefile

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// NetscapeHeader is the first line of an exported cookies.txt; curl and
// wget recognise the file by it.
const NetscapeHeader = "# Netscape HTTP Cookie File"

// encodeNetscape writes cookies as a cookies.txt file. SameSite and the
// creation time have no place in the format; an expiry is rounded up to
// the second.
func encodeNetscape(cs []sessionpool.Cookie) []byte {
	var b bytes.Buffer
	b.WriteString(NetscapeHeader + "\n# Exported by sessionproxy. Fields: domain, include subdomains, path, secure, expiry, name, value.\n\n")
	for _, c := range cs {
		if c.HTTPOnly {
			b.WriteString("#HttpOnly_")
		}
		if !c.HostOnly {
			b.WriteByte('.')
		}
		b.WriteString(c.Domain)
		b.WriteString(tabBool(!c.HostOnly))
		b.WriteByte('\t')
		b.WriteString(c.Path)
		b.WriteString(tabBool(c.Secure))
		b.WriteByte('\t')
		b.WriteString(strconv.FormatInt(netscapeExpiry(c.Expires), 10))
		b.WriteByte('\t')
		b.WriteString(c.Name)
		b.WriteByte('\t')
		b.WriteString(c.Value)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func tabBool(v bool) string {
	if v {
		return "\tTRUE"
	}
	return "\tFALSE"
}

// netscapeExpiry is t in Unix seconds rounded up, 0 for a session cookie.
func netscapeExpiry(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// parseNetscape reads a cookies.txt file: one cookie per line as seven
// tab-separated fields (domain, include-subdomains TRUE/FALSE, path,
// secure TRUE/FALSE, expiry in Unix seconds with 0 or nothing for a
// session cookie, name, value); six fields mean an empty value, as in
// curl. A negative expiry is a time long past (curl refuses the line,
// Python's MozillaCookieJar drops the cookie as expired): the cookie has
// expired at 1969-12-31T23:59:59Z, and Live drops it. A "#HttpOnly_" prefix, after any spaces and tabs, marks an
// HttpOnly cookie; other lines whose first non-blank character is '#' and
// blank lines are skipped; CRLF line ends are accepted. The
// include-subdomains field decides between a domain cookie and a host-only
// one; a leading dot on the domain is dropped either way.
func parseNetscape(data []byte) ([]Cookie, error) {
	var (
		out  []Cookie
		errs problems
	)
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a byte order mark
	line := 0
	for len(data) > 0 {
		line++
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		text := strings.TrimSuffix(string(raw), "\r")
		if !utf8.ValidString(text) {
			errs.add(line, "not valid UTF-8")
			continue
		}
		// Blanks before a '#' are skipped, as curl's cookie_load skips
		// them before it looks for "#HttpOnly_" or a comment.
		httpOnly := false
		lead := strings.TrimLeft(text, " \t")
		if rest, ok := strings.CutPrefix(lead, "#HttpOnly_"); ok {
			text, httpOnly = rest, true
		} else if strings.HasPrefix(lead, "#") || strings.TrimSpace(text) == "" {
			continue
		}
		c, err := netscapeLine(text)
		if err != nil {
			errs.add(line, "%v", err)
			continue
		}
		c.HTTPOnly = httpOnly
		if err := checkCookie(&c); err != nil {
			errs.add(line, "%v", err)
			continue
		}
		out = append(out, Cookie{Cookie: c, Line: line})
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// netscapeLine splits one cookie line into its fields.
func netscapeLine(text string) (sessionpool.Cookie, error) {
	f := strings.Split(text, "\t")
	switch {
	case len(f) == 6:
		f = append(f, "")
	case len(f) != 7:
		hint := ""
		if len(f) < 6 && strings.Count(text, " ") >= 5 {
			hint = " (fields must be separated by tabs, not spaces)"
		}
		return sessionpool.Cookie{}, fmt.Errorf("want 7 tab-separated fields, got %d%s", len(f), hint)
	}
	sub, ok := parseTrueFalse(f[1])
	if !ok {
		return sessionpool.Cookie{}, fmt.Errorf("include-subdomains must be TRUE or FALSE (got %q)", f[1])
	}
	secure, ok := parseTrueFalse(f[3])
	if !ok {
		return sessionpool.Cookie{}, fmt.Errorf("secure must be TRUE or FALSE (got %q)", f[3])
	}
	var exp int64
	if f[4] != "" { // empty: a session cookie, as Python's MozillaCookieJar and yt-dlp write it
		var err error
		if exp, err = strconv.ParseInt(f[4], 10, 64); err != nil {
			return sessionpool.Cookie{}, fmt.Errorf("expiry must be whole Unix seconds (got %q)", f[4])
		}
	}
	if exp > maxExpiresUnix {
		return sessionpool.Cookie{}, fmt.Errorf("expiry %d is after year 9999", exp)
	}
	c := sessionpool.Cookie{
		Name:     f[5],
		Value:    f[6],
		Domain:   strings.TrimPrefix(f[0], "."),
		Path:     f[2],
		HostOnly: !sub,
		Secure:   secure,
	}
	switch {
	case exp > 0:
		c.Expires = time.Unix(exp, 0).UTC()
	case exp < 0:
		c.Expires = time.Unix(-1, 0).UTC() // one past time for all, even before year 1
	}
	return c, nil
}

func parseTrueFalse(s string) (v, ok bool) {
	switch {
	case strings.EqualFold(s, "TRUE"):
		return true, true
	case strings.EqualFold(s, "FALSE"):
		return false, true
	}
	return false, false
}
