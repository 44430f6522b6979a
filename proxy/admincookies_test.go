package proxy

import "github.com/sessionproxy/sessionproxy/sessionpool"

// sameCookie compares every field but Creation (the time the jar stored
// the cookie, which an import sets afresh).
func sameCookie(a, b sessionpool.Cookie) bool {
	return a.Name == b.Name && a.Value == b.Value && a.Domain == b.Domain && a.Path == b.Path &&
		a.HostOnly == b.HostOnly && a.Secure == b.Secure && a.HTTPOnly == b.HTTPOnly &&
		a.SameSite == b.SameSite && a.Expires.Equal(b.Expires)
}
