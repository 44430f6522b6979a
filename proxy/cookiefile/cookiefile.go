package cookiefile

// The cookie formats of the admin API: a session's cookies exported and
// imported as
//
//   - json: a JSON list of sessionpool.Cookie, as the persisted state holds
//     them (domain without a leading dot, hostOnly telling which kind);
//   - netscape: a cookies.txt file (curl, wget, yt-dlp, browser extensions):
//     seven tab-separated fields per line, "#HttpOnly_" before the domain of
//     an HttpOnly cookie, expiry 0 for a session cookie;
//   - playwright: a Playwright storageState document, {"cookies": [...],
//     "origins": []}, with ".example.com" for a domain cookie and
//     "example.com" for a host-only one, expires -1 for a session cookie.
//
// Parsers report every problem they find with the line it is on and never
// panic; what they accept is a valid cookie in the sense of the session's
// jar (name, value, path, prefixes), except for what only the jar can tell
// (a public suffix as a cookie domain), which the import checks against a
// real jar.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// NetscapeHeader is the first line of an exported cookies.txt; curl and
// wget recognise the file by it.
const NetscapeHeader = "# Netscape HTTP Cookie File"

// MaxProblems bounds how many problems an *Error lists.
const MaxProblems = 10

// maxExpiresUnix is the last second of year 9999: a later expiry is refused
// (no format can carry it back faithfully).
const maxExpiresUnix = 253402300799

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

// Problem is one problem of a document: the line it is on (1-based) and
// what is wrong.
type Problem struct {
	Line int
	Text string
}

// String is "line N: text".
func (p Problem) String() string { return "line " + strconv.Itoa(p.Line) + ": " + p.Text }

// Error is the error about a document that cannot be read: the kind of
// error and the problems found, each with its line. Its message is the
// kind's, a colon and Detail.
type Error struct {
	// Err is the kind of error, which Unwrap returns: ErrBadCookies, or
	// the error a JSONReader was made with.
	Err error
	// Problems are the first MaxProblems problems, in the order found.
	Problems []Problem
	// More counts the problems found beyond Problems.
	More int
}

func (e *Error) Error() string { return e.Err.Error() + ": " + e.Detail() }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Detail lists the problems, "line 2: ...; line 5: ...", ending with "; and
// N more" when there were more than MaxProblems.
func (e *Error) Detail() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "; and %d more", e.More)
	}
	return b.String()
}

// lineError is the *Error of kind err with the one problem at line.
func lineError(err error, line int, format string, args ...any) *Error {
	return &Error{Err: err, Problems: []Problem{{Line: line, Text: fmt.Sprintf(format, args...)}}}
}

// problems collects the problems of one document, each with its line. The
// zero value is empty.
type problems struct {
	list  []Problem
	count int
}

func (p *problems) add(line int, format string, args ...any) {
	p.count++
	if len(p.list) < MaxProblems {
		p.list = append(p.list, Problem{Line: line, Text: fmt.Sprintf(format, args...)})
	}
}

// err is the *Error listing the problems, nil when there are none.
func (p *problems) err() error {
	if p.count == 0 {
		return nil
	}
	return &Error{Err: ErrBadCookies, Problems: p.list, More: p.count - len(p.list)}
}

// checkCookie validates a parsed cookie and normalises its path ("" means
// "/") and SameSite (case). The rules are the jar's: a name of at least one
// byte without control characters, ';' or '='; a value without control
// characters or ';'; both valid UTF-8 and at most 4096 bytes together; a
// path starting with '/'; a domain of letters, digits and "-_.:" (or
// non-ASCII letters) between non-empty labels; the __Secure- and __Host-
// prefixes kept; an expiry before year 10000.
func checkCookie(c *sessionpool.Cookie) error {
	switch {
	case c.Name == "":
		return errors.New("the name is empty or missing")
	case !utf8.ValidString(c.Name) || !cookieText(c.Name, true):
		return fmt.Errorf("name %q has a control character, ';', '=' or invalid UTF-8", c.Name)
	case !utf8.ValidString(c.Value) || !cookieText(c.Value, false):
		return fmt.Errorf("value of %q has a control character, ';' or invalid UTF-8", c.Name)
	case len(c.Name)+len(c.Value) > 4096:
		return fmt.Errorf("name and value of %q are longer than 4096 bytes", c.Name)
	}
	if err := checkDomain(c.Domain); err != nil {
		return fmt.Errorf("cookie %q: %w", c.Name, err)
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.Path[0] != '/' || len(c.Path) > 1024 || !utf8.ValidString(c.Path) || !cookieText(c.Path, false) {
		return fmt.Errorf("cookie %q: path %q must start with '/' and have no control character or ';'", c.Name, c.Path)
	}
	switch {
	case c.SameSite == "":
	case strings.EqualFold(c.SameSite, "lax"):
		c.SameSite = "Lax"
	case strings.EqualFold(c.SameSite, "strict"):
		c.SameSite = "Strict"
	case strings.EqualFold(c.SameSite, "none"):
		c.SameSite = "None"
	default:
		return fmt.Errorf("cookie %q: sameSite must be Lax, Strict or None (got %q)", c.Name, c.SameSite)
	}
	if !c.Expires.IsZero() && c.Expires.Unix() > maxExpiresUnix {
		return fmt.Errorf("cookie %q: expiry after year 9999", c.Name)
	}
	switch {
	case hasPrefixFold(c.Name, "__Secure-") && !c.Secure:
		return fmt.Errorf("cookie %q: a __Secure- cookie must be secure", c.Name)
	case hasPrefixFold(c.Name, "__Host-") && (!c.Secure || !c.HostOnly || c.Path != "/"):
		return fmt.Errorf("cookie %q: a __Host- cookie must be secure, host-only and have path \"/\"", c.Name)
	}
	return nil
}

// cookieText reports whether s has no control character and no ';' (nor
// '=' when name).
func cookieText(s string, name bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == ';' || (name && c == '=') {
			return false
		}
	}
	return true
}

// checkDomain validates a cookie domain without its leading dot.
func checkDomain(d string) error {
	if d == "" {
		return errors.New("the domain is empty or missing")
	}
	if len(d) > 255 || !utf8.ValidString(d) {
		return fmt.Errorf("domain %q is too long or not UTF-8", d)
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == ':', c >= 0x80:
		case c == '.':
			if i == 0 || i == len(d)-1 || d[i-1] == '.' {
				return fmt.Errorf("domain %q has an empty label", d)
			}
		default:
			return fmt.Errorf("domain %q has the character %q", d, c)
		}
	}
	return nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// --- Netscape cookies.txt ---

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
// secure TRUE/FALSE, expiry in Unix seconds with 0 or less for a session
// cookie, name, value); six fields mean an empty value, as in curl. A
// "#HttpOnly_" prefix marks an HttpOnly cookie; other lines starting with
// '#' and blank lines are skipped; CRLF line ends are accepted. The
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
		httpOnly := false
		if rest, ok := strings.CutPrefix(text, "#HttpOnly_"); ok {
			text, httpOnly = rest, true
		} else if strings.HasPrefix(text, "#") || strings.TrimSpace(text) == "" {
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
	exp, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		return sessionpool.Cookie{}, fmt.Errorf("expiry must be whole Unix seconds (got %q)", f[4])
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
	if exp > 0 {
		c.Expires = time.Unix(exp, 0).UTC()
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

// --- Playwright storageState ---

// PlaywrightCookie is one cookie of a Playwright storageState.
type PlaywrightCookie struct {
	Name     string      `json:"name"`
	Value    string      `json:"value"`
	Domain   string      `json:"domain"`
	Path     string      `json:"path"`
	Expires  json.Number `json:"expires"`
	HTTPOnly bool        `json:"httpOnly"`
	Secure   bool        `json:"secure"`
	SameSite string      `json:"sameSite"`
}

// PlaywrightState is Playwright's storageState document. Origins (local
// storage) are not a session's business: exported empty, ignored on import.
type PlaywrightState struct {
	Cookies []PlaywrightCookie `json:"cookies"`
	Origins []struct{}         `json:"origins"`
}

// encodePlaywright writes cookies as a storageState document: expires in
// Unix seconds (to the microsecond, written exactly) or -1, sameSite "Lax"
// when the cookie has none (Playwright wants one).
func encodePlaywright(cs []sessionpool.Cookie) []byte {
	st := PlaywrightState{Cookies: make([]PlaywrightCookie, 0, len(cs)), Origins: []struct{}{}}
	for _, c := range cs {
		pc := PlaywrightCookie{
			Name: c.Name, Value: c.Value, Domain: c.Domain, Path: c.Path,
			Expires: playwrightExpires(c.Expires), HTTPOnly: c.HTTPOnly, Secure: c.Secure, SameSite: c.SameSite,
		}
		if !c.HostOnly {
			pc.Domain = "." + c.Domain
		}
		if pc.SameSite == "" {
			pc.SameSite = "Lax"
		}
		st.Cookies = append(st.Cookies, pc)
	}
	return marshalIndent(st)
}

// parsePlaywright reads a storageState document: an object whose "cookies"
// list holds objects with name, value, domain (leading dot: a domain
// cookie; none: host-only), path (default "/"), expires (Unix seconds, -1
// or any value not above 0 for a session cookie), httpOnly, secure and
// sameSite (Lax, Strict or None; may be absent). Other keys, and other
// fields of a cookie (newer Playwright versions add some), are ignored.
func parsePlaywright(data []byte) ([]Cookie, error) {
	d := NewJSONReader(data, ErrBadCookies)
	if err := d.ExpectDelim('{', "a storageState object"); err != nil {
		return nil, err
	}
	var (
		out        []Cookie
		errs       problems
		sawCookies bool
	)
	for d.dec.More() {
		key, err := d.Key()
		if err != nil {
			return nil, err
		}
		if key != "cookies" {
			if err := d.Skip(); err != nil {
				return nil, err
			}
			continue
		}
		sawCookies = true
		err = d.array("cookies", func(line int) error {
			var pc struct {
				Name     *string         `json:"name"`
				Value    string          `json:"value"`
				Domain   string          `json:"domain"`
				Path     string          `json:"path"`
				Expires  json.RawMessage `json:"expires"`
				HTTPOnly bool            `json:"httpOnly"`
				Secure   bool            `json:"secure"`
				SameSite string          `json:"sameSite"`
			}
			if ok, err := d.element(&pc, line, &errs); !ok {
				return err
			}
			if pc.Name == nil {
				errs.add(line, "cookie without a name")
				return nil
			}
			c := sessionpool.Cookie{
				Name: *pc.Name, Value: pc.Value, Path: pc.Path,
				HTTPOnly: pc.HTTPOnly, Secure: pc.Secure, SameSite: pc.SameSite,
			}
			var dot bool
			c.Domain, dot = strings.CutPrefix(pc.Domain, ".")
			c.HostOnly = !dot
			if len(pc.Expires) > 0 && string(pc.Expires) != "null" {
				exp, err := parsePlaywrightExpires(string(pc.Expires))
				if err != nil {
					errs.add(line, "cookie %q: %v", c.Name, err)
					return nil
				}
				c.Expires = exp
			}
			if err := checkCookie(&c); err != nil {
				errs.add(line, "%v", err)
				return nil
			}
			out = append(out, Cookie{Cookie: c, Line: line})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := d.CloseObject(); err != nil {
		return nil, err
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	if !sawCookies {
		return nil, lineError(ErrBadCookies, 1, `a storageState needs a "cookies" list`)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// playwrightExpires writes t as Unix seconds with up to six decimals, -1
// for a session cookie.
func playwrightExpires(t time.Time) json.Number {
	if t.IsZero() {
		return "-1"
	}
	sec, us := t.Unix(), t.Nanosecond()/1000
	if us == 0 {
		return json.Number(strconv.FormatInt(sec, 10))
	}
	return json.Number(strings.TrimRight(fmt.Sprintf("%d.%06d", sec, us), "0"))
}

// parsePlaywrightExpires reads a storageState expiry, a JSON value: a
// number of Unix seconds, read exactly to the microsecond when written as a
// decimal (a longer fraction is cut); 0 or less means a session cookie
// (zero time).
func parsePlaywrightExpires(s string) (time.Time, error) {
	bad := fmt.Errorf("expires must be Unix seconds or -1 (got %.40s)", s)
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return time.Time{}, bad
	}
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		switch {
		case err != nil:
			return time.Time{}, bad
		case f <= 0:
			return time.Time{}, nil
		case f > maxExpiresUnix:
			return time.Time{}, fmt.Errorf("expires %s is after year 9999", s)
		}
		return time.UnixMicro(int64(math.Round(f * 1e6))).UTC(), nil
	}
	if strings.HasPrefix(s, "-") {
		return time.Time{}, nil // below 0: a session cookie
	}
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) || sec > maxExpiresUnix:
		return time.Time{}, fmt.Errorf("expires %s is after year 9999", s)
	case err != nil:
		return time.Time{}, bad
	case sec == 0 && strings.Trim(frac, "0") == "":
		return time.Time{}, nil // 0: a session cookie
	}
	frac = (frac + "000000")[:6]
	us, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, bad
	}
	return time.Unix(sec, us*1000).UTC(), nil
}

// --- JSON (sessionpool.Cookie) ---

// encodeCookieJSON writes cookies as a JSON list of sessionpool.Cookie.
func encodeCookieJSON(cs []sessionpool.Cookie) []byte {
	if cs == nil {
		cs = []sessionpool.Cookie{}
	}
	return marshalIndent(cs)
}

// jsonCookie is the import form of sessionpool.Cookie: expires as a string
// so that a bad time gets a clear message; creation accepted and ignored
// (the jar stamps imported cookies with the time of the import).
type jsonCookie struct {
	Name     *string `json:"name"`
	Value    string  `json:"value"`
	Domain   string  `json:"domain"`
	Path     string  `json:"path"`
	HostOnly bool    `json:"hostOnly"`
	Secure   bool    `json:"secure"`
	HTTPOnly bool    `json:"httpOnly"`
	SameSite string  `json:"sameSite"`
	Expires  *string `json:"expires"`
	Creation *string `json:"creation"`
}

// parseCookieJSON reads a JSON list of sessionpool.Cookie, as
// GET /sessions/{id}/cookies?format=json writes it: name and domain
// required, a leading dot on domain tolerated (hostOnly decides the kind),
// expires an RFC 3339 time (absent, null, "" or the zero time: a session
// cookie), creation ignored. Unknown fields are errors.
func parseCookieJSON(data []byte) ([]Cookie, error) {
	d := NewJSONReader(data, ErrBadCookies)
	out, err := d.cookieList("the document")
	if err != nil {
		return nil, err
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseJSONAt reads a JSON cookie list that starts at byte off of doc
// (the "cookies" of a POST /sessions body), with lines counted from the
// start of doc.
func ParseJSONAt(doc []byte, off int64) ([]Cookie, error) {
	d := NewJSONReader(doc[off:], ErrBadCookies)
	d.lines = newLineCounter(doc)
	d.base = off
	return d.cookieList(`"cookies"`)
}

// cookieList reads a JSON list of cookies (or null: none).
func (d *JSONReader) cookieList(what string) ([]Cookie, error) {
	var (
		out  []Cookie
		errs problems
	)
	d.strict = true
	err := d.array(what, func(line int) error {
		var jc jsonCookie
		if ok, err := d.element(&jc, line, &errs); !ok {
			return err
		}
		if jc.Name == nil {
			errs.add(line, "cookie without a name")
			return nil
		}
		c := sessionpool.Cookie{
			Name: *jc.Name, Value: jc.Value, Domain: strings.TrimPrefix(jc.Domain, "."), Path: jc.Path,
			HostOnly: jc.HostOnly, Secure: jc.Secure, HTTPOnly: jc.HTTPOnly, SameSite: jc.SameSite,
		}
		if jc.Expires != nil && *jc.Expires != "" {
			t, err := time.Parse(time.RFC3339Nano, *jc.Expires)
			if err != nil {
				errs.add(line, "cookie %q: expires must be an RFC 3339 time (got %q)", c.Name, *jc.Expires)
				return nil
			}
			if !t.IsZero() {
				c.Expires = t.UTC()
			}
		}
		if err := checkCookie(&c); err != nil {
			errs.add(line, "%v", err)
			return nil
		}
		out = append(out, Cookie{Cookie: c, Line: line})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// --- JSON documents with line numbers ---

// JSONReader walks a JSON document token by token so that each problem can
// be given the line it is on: the cookie documents and the admin API's
// request bodies read with it name the line of each problem. Its errors
// are *Error values of the kind it was made with. A JSONReader is not safe
// for concurrent use.
type JSONReader struct {
	data   []byte
	dec    *json.Decoder
	lines  *lineCounter
	base   int64 // offset of data in the document lines counts over
	strict bool  // unknown fields of an element are errors
	kind   error // the Err of the errors about the document
}

// NewJSONReader returns a reader of the JSON document data whose errors
// are of the kind given (wrap it): ErrBadCookies for a cookie document, an
// error of the caller's for another.
func NewJSONReader(data []byte, kind error) *JSONReader {
	return &JSONReader{data: data, dec: json.NewDecoder(bytes.NewReader(data)), lines: newLineCounter(data), kind: kind}
}

// More reports whether the current list or object has another element.
func (d *JSONReader) More() bool { return d.dec.More() }

// Line returns the line (1-based) of byte off of the document.
func (d *JSONReader) Line(off int64) int { return d.lines.at(d.base + off) }

// fail turns a decoder error into a line-numbered one.
func (d *JSONReader) fail(err error) error {
	se, isSyntax := errors.AsType[*json.SyntaxError](err)
	switch {
	case isSyntax:
		return lineError(d.kind, d.Line(se.Offset), "%s", strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return lineError(d.kind, d.Line(int64(len(d.data))), "the JSON ends too early")
	}
	return lineError(d.kind, d.Line(d.dec.InputOffset()), "%v", err)
}

// ExpectDelim reads the next token, which must be delim.
func (d *JSONReader) ExpectDelim(delim json.Delim, what string) error {
	start := d.ValueOffset()
	tok, err := d.dec.Token()
	if err != nil {
		return d.fail(err)
	}
	if tok != delim {
		return lineError(d.kind, d.Line(start), "want %s, got %s", what, describeToken(tok))
	}
	return nil
}

// Key reads an object key.
func (d *JSONReader) Key() (string, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return "", d.fail(err)
	}
	k, _ := tok.(string)
	return k, nil
}

// Value decodes the next value into v; a value of the wrong type is an
// error "name must be want".
func (d *JSONReader) Value(v any, name, want string) error {
	start := d.ValueOffset()
	if err := d.dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return lineError(d.kind, d.Line(start), "%s must be %s", name, want)
		}
		return d.fail(err)
	}
	return nil
}

// Skip reads and drops one value.
func (d *JSONReader) Skip() error {
	var v json.RawMessage
	if err := d.dec.Decode(&v); err != nil {
		return d.fail(err)
	}
	return nil
}

// array reads a list (or null), calling fn with the line of each element's
// start; fn decodes the element with d.element.
func (d *JSONReader) array(what string, fn func(line int) error) error {
	start := d.ValueOffset()
	tok, err := d.dec.Token()
	if err != nil {
		return d.fail(err)
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('[') {
		return lineError(d.kind, d.Line(start), "%s must be a list, got %s", what, describeToken(tok))
	}
	for d.dec.More() {
		if err := fn(d.Line(d.ValueOffset())); err != nil {
			return err
		}
	}
	if _, err := d.dec.Token(); err != nil {
		return d.fail(err)
	}
	return nil
}

// element decodes one list element into v. A syntax error ends the
// document (err); an element that is not an object, has a field of the
// wrong type or (when d.strict) an unknown field is a problem recorded in
// errs, and ok is false.
func (d *JSONReader) element(v any, line int, errs *problems) (ok bool, err error) {
	start := d.ValueOffset()
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		return false, d.fail(err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		errs.add(line, "want a cookie object, got %s", describeRaw(raw))
		return false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if d.strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			errs.add(d.Line(start+te.Offset), "field %q must be %s, got %s", te.Field, jsonKind(te.Type.String()), te.Value)
		} else {
			errs.add(line, "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return false, nil
	}
	return true, nil
}

// CloseObject reads the '}' that ends an object whose members are read.
func (d *JSONReader) CloseObject() error {
	if _, err := d.dec.Token(); err != nil {
		return d.fail(err)
	}
	return nil
}

// End checks that nothing but white space follows the document.
func (d *JSONReader) End() error {
	if _, err := d.dec.Token(); err != io.EOF {
		if err != nil {
			return d.fail(err)
		}
		return lineError(d.kind, d.Line(d.dec.InputOffset()), "unexpected data after the JSON document")
	}
	return nil
}

// ValueOffset is the offset of the next value (or key): the decoder's offset past
// white space, ',' and ':'.
func (d *JSONReader) ValueOffset() int64 {
	return skipJSONSeparators(d.data, d.dec.InputOffset())
}

// skipJSONSeparators returns the offset of the first byte at or after off
// that is not white space, ',' or ':'.
func skipJSONSeparators(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		if t == '[' {
			return "a list"
		}
		return string(t)
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func describeRaw(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// jsonKind names a Go type of a decoded field the way a JSON author thinks.
func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "float"), strings.Contains(goType, "int"):
		return "a number"
	case strings.HasPrefix(goType, "map"):
		return "an object"
	}
	return goType
}

// lineCounter maps byte offsets of a document to 1-based line numbers,
// cheaply for increasing offsets.
type lineCounter struct {
	data []byte
	off  int64
	line int
}

func newLineCounter(data []byte) *lineCounter { return &lineCounter{data: data, line: 1} }

func (l *lineCounter) at(off int64) int {
	off = min(max(off, 0), int64(len(l.data)))
	if off < l.off {
		l.off, l.line = 0, 1
	}
	l.line += bytes.Count(l.data[l.off:off], []byte{'\n'})
	l.off = off
	return l.line
}

// marshalIndent encodes v, which holds only strings, finite numbers,
// booleans, times and lists of them, so the encoding cannot fail.
func marshalIndent(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ")
	return append(b, '\n')
}

// --- importing into a session ---

// Live drops the cookies that have expired at now and returns how
// many it dropped. (A session's SetCookies would keep them as session
// cookies: that is its reading of a browser's "expires -1".)
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
// jar's canonical form (lowercase, punycode).
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
			errs.add(c.Line, "cookie %q: the cookie jar refuses domain %q", c.Name, c.Domain)
		case got[0].HostOnly != c.HostOnly:
			errs.add(c.Line, "cookie %q: %q is a public suffix or an IP address and cannot have domain cookies (make it host-only)", c.Name, c.Domain)
		default:
			c.Domain = got[0].Domain
			out = append(out, c)
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Apply stores checked cookies in sess, in order, one SetCookies
// call per run of cookies of the same domain.
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
