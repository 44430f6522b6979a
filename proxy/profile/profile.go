// Package profile is what a session looks like on the wire below its
// headers: the TLS ClientHello it sends, the HTTP/2 preface it opens a
// connection with, and the order of its headers. A Profile is a browser's
// (chrome, firefox, safari, edge), kept as data; a mirrored identity is the
// proxy client's own, taken from what it sent (Mirror).
//
// Handshake makes a TLS client connection that sends a given ClientHello
// (with uTLS): the cipher suites, extensions and their data, groups, key
// share groups, ALPN and GREASE positions of the hello, with fresh randoms
// and keys.
package profile

import (
	"embed"
	"fmt"
	"net/http"

	"golang.org/x/net/http2"

	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// The names of the profiles, and of the two modes that are not a profile.
const (
	Chrome  = "chrome"
	Firefox = "firefox"
	Safari  = "safari"
	Edge    = "edge"
	Mirror  = "mirror" // the client's own identity
	Go      = "go"     // Go's crypto/tls and net/http
)

// Profile is a browser's identity on the wire. Profiles are shared and
// immutable: use them from any goroutine, never change one.
type Profile struct {
	// Name is the profile's name (Chrome, Firefox, Safari or Edge).
	Name string
	// Source says which browser, at which version, the data comes from.
	Source string
	// Hello is the ClientHello records the browser sent.
	Hello []byte
	// Permute says the browser sends Hello's extensions in a new order on
	// every connection (Chrome since 110): Profile.Handshake does so too.
	Permute bool
	// H2 is the browser's HTTP/2 connection preface.
	H2 wire.Preface
	// Pseudo is its HTTP/2 pseudo-header order.
	Pseudo []string
	// Header is the order of its request headers, with their HTTP/1.1
	// case (HTTP/2 sends them lowercase).
	Header []string
}

//go:embed data/*.hello
var helloFiles embed.FS

// Profiles returns the browser profiles, each a new copy, by name.
func Profiles() map[string]*Profile {
	chrome := chromeProfile()
	edge := *chrome
	edge.Name = Edge
	edge.Source = "Chromium 156, as Edge of the same Chromium: the same hello, preface and order"
	return map[string]*Profile{Chrome: chrome, Edge: &edge, Firefox: firefoxProfile(), Safari: safariProfile()}
}

// hello returns the embedded ClientHello records of a browser.
func hello(name string) []byte {
	b, err := helloFiles.ReadFile("data/" + name + ".hello")
	if err != nil {
		panic(fmt.Sprintf("profile: embedded %s.hello: %v", name, err)) // the build embeds it
	}
	return b
}

func chromeProfile() *Profile {
	return &Profile{
		Name:    Chrome,
		Source:  "Chromium 156 (Debian), headless, navigating",
		Hello:   hello("chrome"),
		Permute: true,
		H2: wire.Preface{
			Settings: []http2.Setting{
				{ID: http2.SettingHeaderTableSize, Val: 65536},
				{ID: http2.SettingEnablePush, Val: 0},
				{ID: http2.SettingInitialWindowSize, Val: 6291456},
				{ID: http2.SettingMaxHeaderListSize, Val: 262144},
			},
			WindowUpdate:   15663105,
			HeaderPriority: &http2.PriorityParam{Exclusive: true, Weight: 255},
		},
		Pseudo: []string{":method", ":authority", ":scheme", ":path"},
		Header: chromeHeader(),
	}
}

func firefoxProfile() *Profile {
	return &Profile{
		Name:   Firefox,
		Source: "Firefox 135 (the ClientHello and preface of tls-client v1.11.2's Firefox_135)",
		Hello:  hello("firefox"),
		H2: wire.Preface{
			Settings: []http2.Setting{
				{ID: http2.SettingHeaderTableSize, Val: 65536},
				{ID: http2.SettingEnablePush, Val: 0},
				{ID: http2.SettingInitialWindowSize, Val: 131072},
				{ID: http2.SettingMaxFrameSize, Val: 16384},
			},
			WindowUpdate: 12517377,
		},
		Pseudo: []string{":method", ":path", ":authority", ":scheme"},
		Header: firefoxHeader(),
	}
}

func safariProfile() *Profile {
	return &Profile{
		Name:   Safari,
		Source: "Safari 18.5 (the ClientHello and preface of tls-client v1.11.2's Safari_IOS_18_5)",
		Hello:  hello("safari"),
		H2: wire.Preface{
			Settings: []http2.Setting{
				{ID: http2.SettingEnablePush, Val: 0},
				{ID: http2.SettingMaxConcurrentStreams, Val: 100},
				{ID: http2.SettingInitialWindowSize, Val: 2097152},
				{ID: 9, Val: 1}, // SETTINGS_NO_RFC7540_PRIORITIES
			},
			WindowUpdate:   10420225,
			HeaderPriority: &http2.PriorityParam{Weight: 255},
		},
		Pseudo: []string{":method", ":scheme", ":authority", ":path"},
		Header: safariHeader(),
	}
}

// HeaderOrder returns the header order of the named browser profile (nil
// for an unknown name), with its HTTP/1.1 case.
func HeaderOrder(name string) []string {
	switch name {
	case Chrome, Edge:
		return chromeHeader()
	case Firefox:
		return firefoxHeader()
	case Safari:
		return safariHeader()
	}
	return nil
}

func chromeHeader() []string {
	return []string{
		"Host", "Connection", "Content-Length", "Cache-Control",
		"sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform",
		"Upgrade-Insecure-Requests", "User-Agent", "Accept", "Origin",
		"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-User", "Sec-Fetch-Dest",
		"Referer", "Accept-Encoding", "Accept-Language", "Cookie", "Priority",
	}
}

func firefoxHeader() []string {
	return []string{
		"Host", "User-Agent", "Accept", "Accept-Language", "Accept-Encoding",
		"Content-Type", "Content-Length", "Origin", "Connection", "Referer", "Cookie",
		"Upgrade-Insecure-Requests", "Sec-Fetch-Dest", "Sec-Fetch-Mode",
		"Sec-Fetch-Site", "Sec-Fetch-User", "Priority", "TE",
	}
}

func safariHeader() []string {
	return []string{
		"Host", "Accept", "Sec-Fetch-Site", "Cookie", "Sec-Fetch-Dest",
		"Accept-Language", "Sec-Fetch-Mode", "User-Agent", "Accept-Encoding",
		"Connection",
	}
}

// Order returns the wire order for a request with header h as the profile
// sends it: the headers the profile knows in its order and case, then the
// others in the client's order (client, its header names as written; nil
// when unknown: then sorted).
func (p *Profile) Order(h http.Header, client []string) wire.Order {
	names := make([]string, 0, len(h)+1)
	known := make(map[string]bool, len(p.Header))
	for _, name := range p.Header {
		k := http.CanonicalHeaderKey(name)
		known[k] = true
		for range h[k] {
			names = append(names, name)
		}
		switch {
		case k == "Host":
			names = append(names, name) // from req.Host: not in h
		case len(h[k]) == 0 && (k == "Connection" || k == "Content-Length"):
			// Sent by the browser whatever the client's header said (a
			// proxy removed Connection; Go keeps a length outside the
			// header): wire.Order supplies the value, keep-alive or close,
			// the body's length, and drops what HTTP/2 has no place for.
			names = append(names, name)
		}
	}
	for _, name := range client {
		if !known[http.CanonicalHeaderKey(name)] {
			names = append(names, name)
		}
	}
	return wire.Order{Names: names, Pseudo: p.Pseudo}
}
