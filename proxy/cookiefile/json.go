package cookiefile

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

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

// ParseJSONAt reads a JSON cookie list (or null) that starts at byte off
// of doc, as a JSONReader of doc's ValueOffset gives it: the "cookies" of a
// POST /sessions body. Problems are reported as Parse reports them, with
// lines counted from the start of doc; what follows the list is the
// caller's to read.
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
	d.fields = jsonFields(reflect.TypeFor[jsonCookie]())
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
				errs.add(line, "cookie %s: expires must be an RFC 3339 time (got %q)", quoteName(c.Name), *jc.Expires)
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

// marshalIndent encodes v, which holds only strings, finite numbers,
// booleans, times and lists of them, so the encoding cannot fail.
func marshalIndent(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ")
	return append(b, '\n')
}
