// Package cookiefile reads and writes a session's cookies as documents:
// the formats of the admin API's GET and PUT /sessions/{id}/cookies.
//
//   - JSON: a JSON list of sessionpool.Cookie, as the persisted state holds
//     them (domain without a leading dot, hostOnly telling which kind);
//   - Netscape: a cookies.txt file (curl, wget, yt-dlp, browser extensions):
//     seven tab-separated fields per line, "#HttpOnly_" before the domain of
//     an HttpOnly cookie, expiry 0 for a session cookie;
//   - Playwright: a Playwright storageState document, {"cookies": [...],
//     "origins": []}, with ".example.com" for a domain cookie and
//     "example.com" for a host-only one, expires -1 for a session cookie.
//
// Parsers report every problem they find with the line it is on and never
// panic; what they accept is a valid cookie in the sense of the session's
// jar (name, value, path, prefixes), except for what only the jar can tell
// (a public suffix as a cookie domain), which CheckWithJar checks against a
// real jar before Apply stores the cookies in a session.
//
// The functions of the package are safe for concurrent use; a JSONReader
// is not.
package cookiefile

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// ErrBadCookies is matched (errors.Is) by every error about a cookie
// document that cannot be imported; such an error is an *Error naming the
// line of each problem.
var ErrBadCookies = errors.New("cookiefile: bad cookies")

// ErrUnknownFormat is matched by the errors about a format name or value
// that is none of JSON, Netscape and Playwright.
var ErrUnknownFormat = errors.New("cookiefile: unknown format")

// Format is a cookie document format. The zero value is JSON.
type Format uint8

// The formats.
const (
	// JSON is a JSON list of sessionpool.Cookie.
	JSON Format = iota
	// Netscape is a cookies.txt file.
	Netscape
	// Playwright is a Playwright storageState document.
	Playwright
)

// ParseFormat returns the format of that name: "json", "netscape" or
// "playwright" (as the admin API's ?format= names them). Any other name,
// the empty one included, is an error wrapping ErrUnknownFormat.
func ParseFormat(name string) (Format, error) {
	switch name {
	case "json":
		return JSON, nil
	case "netscape":
		return Netscape, nil
	case "playwright":
		return Playwright, nil
	}
	return 0, fmt.Errorf("%w: %q (want json, netscape or playwright)", ErrUnknownFormat, name)
}

// String returns the format's name, as ParseFormat takes it.
func (f Format) String() string {
	switch f {
	case JSON:
		return "json"
	case Netscape:
		return "netscape"
	case Playwright:
		return "playwright"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// MarshalText returns the format's name, so that a Format is written by
// name in JSON and in logs.
func (f Format) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// ContentType is the media type of a document in format f.
func (f Format) ContentType() string {
	if f == Netscape {
		return "text/plain; charset=utf-8"
	}
	return "application/json"
}

// Cookie is a cookie read from a document: Domain carries no leading dot,
// HostOnly tells host-only from domain cookies, a zero Expires is a session
// cookie, Creation is unset. Line is where it starts (1-based).
type Cookie struct {
	sessionpool.Cookie
	Line int
}

// Parse reads a document in format f. Every problem found is reported,
// each with its line, in an *Error wrapping ErrBadCookies; an unknown f is
// an error wrapping ErrUnknownFormat. Parse never panics.
func Parse(f Format, data []byte) ([]Cookie, error) {
	switch f {
	case JSON:
		return parseCookieJSON(data)
	case Netscape:
		return parseNetscape(data)
	case Playwright:
		return parsePlaywright(data)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnknownFormat, f)
}

// Encode writes cookies as a document in format f: what GET
// /sessions/{id}/cookies serves. It panics on a Format that is none of the
// constants (a programming error).
func Encode(f Format, cookies []sessionpool.Cookie) []byte {
	switch f {
	case JSON:
		return encodeCookieJSON(cookies)
	case Netscape:
		return encodeNetscape(cookies)
	case Playwright:
		return encodePlaywright(cookies)
	}
	panic("cookiefile: Encode of unknown " + f.String())
}
