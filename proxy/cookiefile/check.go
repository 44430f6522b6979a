package cookiefile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// maxExpiresUnix is the last second of year 9999: a later expiry is refused
// (no format can carry it back faithfully).
const maxExpiresUnix = 253402300799

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
	case strings.Contains(c.Name, "="):
		return fmt.Errorf("name %s holds '='", quoteName(c.Name))
	case !utf8.ValidString(c.Name) || !cookieText(c.Name, true):
		return fmt.Errorf("name %s has a control character, ';' or invalid UTF-8", quoteName(c.Name))
	case !utf8.ValidString(c.Value) || !cookieText(c.Value, false):
		return fmt.Errorf("value of %s has a control character, ';' or invalid UTF-8", quoteName(c.Name))
	case len(c.Name)+len(c.Value) > 4096:
		return fmt.Errorf("name and value of %s are longer than 4096 bytes", quoteName(c.Name))
	}
	if err := checkDomain(c.Domain); err != nil {
		return fmt.Errorf("cookie %s: %w", quoteName(c.Name), err)
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.Path[0] != '/' || len(c.Path) > 1024 || !utf8.ValidString(c.Path) || !cookieText(c.Path, false) {
		return fmt.Errorf("cookie %s: path %q must start with '/' and have no control character or ';'", quoteName(c.Name), c.Path)
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
		return fmt.Errorf("cookie %s: sameSite must be Lax, Strict or None (got %q)", quoteName(c.Name), c.SameSite)
	}
	if !c.Expires.IsZero() && c.Expires.Unix() > maxExpiresUnix {
		return fmt.Errorf("cookie %s: expiry after year 9999", quoteName(c.Name))
	}
	// The prefixes are matched ignoring case, as the jar matches them.
	const securePrefix, hostPrefix = "__Secure-", "__Host-"
	switch {
	case strings.EqualFold(c.Name[:min(len(c.Name), len(securePrefix))], securePrefix) && !c.Secure:
		return fmt.Errorf("cookie %s: a __Secure- cookie must be secure", quoteName(c.Name))
	case strings.EqualFold(c.Name[:min(len(c.Name), len(hostPrefix))], hostPrefix) && (!c.Secure || !c.HostOnly || c.Path != "/"):
		return fmt.Errorf("cookie %s: a __Host- cookie must be secure, host-only and have path \"/\"", quoteName(c.Name))
	}
	return nil
}

// quoteName quotes a cookie name for an error message. A name holding '='
// is most likely a "name=value" pasted whole, and a value is a secret that
// no error may show: only what comes before the first '=' is shown, then
// "=…".
func quoteName(name string) string {
	if before, _, ok := strings.Cut(name, "="); ok {
		return strconv.Quote(before + "=…")
	}
	return strconv.Quote(name)
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
