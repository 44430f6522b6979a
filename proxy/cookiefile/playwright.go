package cookiefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

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
	for d.More() {
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
			c, ok, err := d.playwrightCookie(line, &errs)
			if ok {
				out = append(out, Cookie{Cookie: c, Line: line})
			}
			return err
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

// playwrightImport is the import form of a PlaywrightCookie: a missing
// name told from an empty one, expires kept raw for parsePlaywrightExpires.
type playwrightImport struct {
	Name     *string         `json:"name"`
	Value    string          `json:"value"`
	Domain   string          `json:"domain"`
	Path     string          `json:"path"`
	Expires  json.RawMessage `json:"expires"`
	HTTPOnly bool            `json:"httpOnly"`
	Secure   bool            `json:"secure"`
	SameSite string          `json:"sameSite"`
}

// playwrightCookie reads the cookie of a storageState's list that starts
// at line. When it is not a valid cookie, the problem is recorded in errs
// and ok is false; err is a syntax error, which ends the document.
func (d *JSONReader) playwrightCookie(line int, errs *problems) (c sessionpool.Cookie, ok bool, err error) {
	var pc playwrightImport
	if ok, err := d.element(&pc, line, errs); !ok {
		return c, false, err
	}
	if pc.Name == nil {
		errs.add(line, "cookie without a name")
		return c, false, nil
	}
	c = sessionpool.Cookie{
		Name: *pc.Name, Value: pc.Value, Path: pc.Path,
		HTTPOnly: pc.HTTPOnly, Secure: pc.Secure, SameSite: pc.SameSite,
	}
	var dot bool
	c.Domain, dot = strings.CutPrefix(pc.Domain, ".")
	c.HostOnly = !dot
	if len(pc.Expires) > 0 && string(pc.Expires) != "null" {
		exp, err := parsePlaywrightExpires(string(pc.Expires))
		if err != nil {
			errs.add(line, "cookie %s: %v", quoteName(c.Name), err)
			return c, false, nil
		}
		c.Expires = exp
	}
	if err := checkCookie(&c); err != nil {
		errs.add(line, "%v", err)
		return c, false, nil
	}
	return c, true, nil
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
