package proxy

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/profile"
	"github.com/sessionproxy/sessionproxy/proxy/wire"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// identify puts on the context of a request inside an intercepted tunnel
// what the session's identity on the wire needs of the client
// (fingerprint: mirror, and the header order of the others): the order in
// which the client sent req's headers, and its ClientHello and HTTP/2
// preface. Every request of a tunnel takes its own order, whatever the
// mode. A plain-HTTP request has its order already (serveProxy). An
// HTTP/1.1 client's request also gets where the origin's interim responses
// go: the tunnel (an HTTP/2 client's stream has its own, serveTunnelStream).
func identify(req *http.Request, t *tunnel, before map[string][]string) *http.Request {
	if t.mitm == nil {
		return req
	}
	o := t.mitm.order(req)
	ctx := req.Context()
	if t.mitm.h1 != nil && req.ProtoAtLeast(1, 1) {
		ctx = context.WithValue(ctx, wire.InterimKey{}, wire.Interim(t.mitm))
	}
	// Whatever the configured mode: a session keeps its own (made before
	// a reload, or named by the admin API), which may need them.
	o.Names = withCookieSlot(o.Names, req.Header.Get("User-Agent"), before)
	ctx = profile.WithClient(wire.WithOrder(ctx, o), t.mitm.who)
	return req.WithContext(ctx)
}

// withCookieSlot returns the header names a client sent with a place for
// the Cookie header the session may add, when the client sent none: where
// the browser its User-Agent names puts it (Chrome's order for any other
// client), in the case of the client's other names; before is
// beforeCookie's. names is not changed.
func withCookieSlot(names []string, userAgent string, before map[string][]string) []string {
	if len(names) == 0 || slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, "Cookie") }) {
		return names
	}
	browser := profile.Chrome
	switch {
	case strings.Contains(userAgent, "Firefox/"):
		browser = profile.Firefox
	case strings.Contains(userAgent, "Safari/") && !strings.Contains(userAgent, "Chrome/"):
		browser = profile.Safari
	}
	i := 0 // after the last of the client's names that the browser sends before Cookie
	for j, n := range names {
		if slices.ContainsFunc(before[browser], func(b string) bool { return len(b) == len(n) && strings.EqualFold(b, n) }) {
			i = j + 1
		}
	}
	name := "Cookie"
	if strings.ToLower(names[0]) == names[0] {
		name = "cookie"
	}
	return slices.Insert(slices.Clip(names), i, name)
}

// beforeCookie returns, for each browser profile, the headers it sends
// before Cookie.
func beforeCookie() map[string][]string {
	m := make(map[string][]string, 3)
	for _, b := range [...]string{profile.Chrome, profile.Firefox, profile.Safari} {
		order := profile.HeaderOrder(b)
		m[b] = order[:slices.Index(order, "Cookie")]
	}
	return m
}

// browsers are the profiles random draws from.
func browsers() [4]string {
	return [...]string{profile.Chrome, profile.Firefox, profile.Safari, profile.Edge}
}

// drawFingerprint returns the fingerprint a new session gets: asked (when
// not "" or random), else the configured mode; random draws a browser.
func drawFingerprint(mode config.Fingerprint, asked string) string {
	if asked != "" && asked != string(config.FingerprintRandom) {
		return asked
	}
	if asked == "" && mode != config.FingerprintRandom {
		return string(mode)
	}
	b := browsers()
	return b[rand.IntN(len(b))]
}

// fingerprintOf returns the fingerprint mode sess goes out with: its own,
// given when it was made; for a session made without one (restored from an
// older state), the configured mode, random drawing from the session's ID
// so that the choice stays the same.
func fingerprintOf(sess *sessionpool.Session, cfg *config.Config) string {
	if fp := sess.Fingerprint(); fp != "" {
		return fp
	}
	if cfg.Fingerprint != config.FingerprintRandom {
		return string(cfg.Fingerprint)
	}
	h := fnv.New32a()
	h.Write([]byte(sess.ID()))
	b := browsers()
	return b[h.Sum32()%uint32(len(b))]
}
