package upstream

import (
	"net/url"
	"strconv"
	"strings"
)

// ParseError is Parse's error: what is wrong with an upstream proxy URL,
// and the URL without its password. It wraps ErrInvalidURL.
type ParseError struct {
	// URL is the text that was parsed, redacted with Redact.
	URL string
	// Problem says what is wrong, as a phrase that can follow the name of
	// the setting that held the URL ("needs a port (host:port)").
	Problem string
}

// Error returns `upstream: invalid proxy URL "URL": PROBLEM` on one line.
func (e *ParseError) Error() string {
	return ErrInvalidURL.Error() + " " + strconv.Quote(e.URL) + ": " + e.Problem
}

// Unwrap returns ErrInvalidURL.
func (e *ParseError) Unwrap() error { return ErrInvalidURL }

// Parse parses an upstream proxy URL: an http, https, socks5 or socks5h
// scheme, optional user info, a host with an explicit port from 1 to 65535,
// and nothing after it but an optional "/", which is dropped. The one rule
// for upstream URLs, wherever they come from (configuration, the admin
// API, persisted sessions). An unusable URL, "" included, gives a
// *ParseError. Callers that take "" for "direct" check for it first.
//
// The user name and password may hold Placeholder, which ForSession
// replaces with a session's id.
func Parse(s string) (*url.URL, error) {
	bad := func(problem string) error { return &ParseError{URL: Redact(s), Problem: problem} }
	u, err := url.Parse(strings.ReplaceAll(s, Placeholder, escapedPlaceholder))
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return nil, bad("must be a URL like http://host:port")
	}
	if n := strings.Count(s, Placeholder); n > 0 && n != placeholders(u) {
		return nil, bad(Placeholder + " can stand only in the user name or password")
	}
	switch u.Scheme { // url.Parse lowercases it
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, bad("scheme must be one of http, https, socks5, socks5h")
	}
	if u.Hostname() == "" {
		return nil, bad("needs a host")
	}
	port := u.Port()
	if port == "" {
		return nil, bad("needs a port (host:port)")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, bad("port must be a number from 1 to 65535")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, bad("must not have a path, query or fragment")
	}
	u.Path, u.RawPath = "", ""
	return u, nil
}

// Placeholder, in the user name or password of an upstream URL, stands for
// the id of the session that uses the upstream: each session then sends its
// own user name, which is how residential proxy providers give each session
// a sticky exit IP ("user-session-{session}"). ForSession renders it.
const Placeholder = "{session}"

// escapedPlaceholder is Placeholder as it stands in a URL's text.
const escapedPlaceholder = "%7Bsession%7D"

// placeholders counts Placeholder in u's user name and password.
func placeholders(u *url.URL) int {
	if u.User == nil {
		return 0
	}
	pw, _ := u.User.Password()
	return strings.Count(u.User.Username(), Placeholder) + strings.Count(pw, Placeholder)
}

// ForSession returns u with every Placeholder in its user name and password
// replaced by the letters and digits of id (other characters are dropped:
// providers' user names allow few), or u itself when it holds none. u is not
// modified.
func ForSession(u *url.URL, id string) *url.URL {
	if placeholders(u) == 0 {
		return u
	}
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, id)
	name := strings.ReplaceAll(u.User.Username(), Placeholder, safe)
	out := *u
	if pw, ok := u.User.Password(); ok {
		out.User = url.UserPassword(name, strings.ReplaceAll(pw, Placeholder, safe))
	} else {
		out.User = url.User(name)
	}
	return &out
}

// HasPlaceholder reports whether u's user name or password holds
// Placeholder.
func HasPlaceholder(u *url.URL) bool { return placeholders(u) > 0 }

// Redact returns s with the password of its user info replaced by "xxxxx"
// (as url.URL.Redacted does), and so are the value of each query parameter
// and the fragment, which may carry credentials too ("?password=..."), for
// logs, messages and the admin API. Strings that do not parse as URLs with
// a host, or whose path, query or fragment holds an '@' (a password with
// '/', '?' or '#' in it ends the authority early), are redacted all the
// same: there, everything between the first ':' after the scheme and the
// last '@' is the password, and the query and fragment are what follows
// the first '?' or '#' after it.
func Redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" && !strings.ContainsAny(s, " \t\r\n") &&
		!strings.Contains(u.Path+u.RawQuery+u.Fragment, "@") {
		r := *u
		r.RawQuery = redactQuery(u.RawQuery)
		if u.Fragment != "" {
			r.Fragment, r.RawFragment = "xxxxx", ""
		}
		return r.Redacted()
	}
	rest := 0 // where the query may start: past the user info, or the scheme
	if i, j := fallbackPassword(s); i >= 0 {
		s = s[:i] + "xxxxx" + s[j:]
		rest = i + len("xxxxx")
	} else if i := strings.Index(s, "://"); i >= 0 && isScheme(s[:i]) {
		rest = i + len("://")
	}
	if q := strings.IndexAny(s[rest:], "?#"); q >= 0 {
		q += rest
		query, fragment, hasFragment := strings.Cut(s[q+1:], "#")
		if s[q] == '#' {
			query, fragment, hasFragment = "", s[q+1:], true
		}
		out := s[:q]
		if s[q] == '?' {
			out += "?" + redactQuery(query)
		}
		if hasFragment && fragment != "" {
			out += "#xxxxx"
		} else if hasFragment {
			out += "#"
		}
		s = out
	}
	return s
}

// redactQuery returns the query q with the value of each parameter
// replaced by "xxxxx", names kept ("password=xxxxx"); a parameter without
// '=' could be a bare secret, and is replaced whole.
func redactQuery(q string) string {
	if q == "" {
		return q
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if p == "" {
			continue
		}
		if name, _, ok := strings.Cut(p, "="); ok {
			parts[i] = name + "=xxxxx"
		} else {
			parts[i] = "xxxxx"
		}
	}
	return strings.Join(parts, "&")
}

// fallbackPassword finds the password of a string that does not parse as a
// URL with a host, deliberately broadly: everything between the first ':'
// after the scheme and the last '@'. It returns its bounds, or -1, -1.
func fallbackPassword(s string) (start, end int) {
	off := 0
	if i := strings.Index(s, "://"); i >= 0 && isScheme(s[:i]) {
		off = i + 3
	}
	at := strings.LastIndex(s[off:], "@")
	if at < 0 {
		return -1, -1
	}
	c := strings.Index(s[off:off+at], ":")
	if c < 0 {
		return -1, -1
	}
	return off + c + 1, off + at
}

// isScheme reports whether s is a URL scheme (RFC 3986).
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// passwordOf returns the password in s, found the way Redact finds it.
func passwordOf(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" && !strings.ContainsAny(s, " \t\r\n") {
		if u.User == nil {
			return ""
		}
		p, _ := u.User.Password()
		return p
	}
	if i, j := fallbackPassword(s); i >= 0 {
		return s[i:j]
	}
	return ""
}

// secretsOf returns the strings of upstream that must never be shown: its
// password, raw and escaped.
func secretsOf(upstream string) []string {
	p := passwordOf(upstream)
	if len(p) < 3 { // shorter ones would garble every message
		return nil
	}
	out := []string{p}
	if u, err := url.PathUnescape(p); err == nil && u != p && len(u) >= 3 {
		out = append(out, u)
	}
	if e := url.QueryEscape(p); e != p {
		out = append(out, e)
	}
	if e := url.PathEscape(p); e != p {
		out = append(out, e)
	}
	return out
}

// scrub makes text one line without credentials: passwords in URL user
// info and the given secrets become "xxxxx".
func scrub(text string, secrets []string) string {
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, "xxxxx")
	}
	text = redactEmbeddedURLs(OneLine(text))
	for _, s := range secrets {
		text = strings.ReplaceAll(text, OneLine(s), "xxxxx")
	}
	return text
}

// redactEmbeddedURLs redacts the password of every "scheme://user:pass@"
// in text.
func redactEmbeddedURLs(text string) string {
	var b strings.Builder
	for {
		i := strings.Index(text, "://")
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		b.WriteString(text[:i+3])
		text = text[i+3:]
		end := strings.IndexAny(text, "/?# \"'<>")
		if end < 0 {
			end = len(text)
		}
		auth := text[:end]
		at := strings.LastIndex(auth, "@")
		if at < 0 {
			continue
		}
		user := auth[:at]
		if c := strings.Index(user, ":"); c >= 0 {
			user = user[:c] + ":xxxxx"
		}
		b.WriteString(user)
		text = text[at:]
	}
}

// OneLine returns s with line breaks and other control characters replaced
// by spaces, for messages that must stay on one line (Error's, and the
// proxy's plain-text answers that carry them).
func OneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
