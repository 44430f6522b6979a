package profile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	utls "github.com/refraction-networking/utls"

	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// Client is what a proxy client showed of its own identity on one
// connection to the proxy: its ClientHello and, over HTTP/2, its
// connection preface. A mirrored session sends them on as its own. Its
// methods are safe for concurrent use.
type Client struct {
	// Hello is the ClientHello records the client sent; nil when it did
	// not speak TLS to the proxy.
	Hello []byte
	// H2 returns the client's HTTP/2 preface once it has come; ok is false
	// before that, or when the client speaks HTTP/1.x. Nil means never.
	H2 func() (p wire.Preface, ok bool)

	once        sync.Once
	key         string
	unbuildable atomic.Bool // uTLS read the hello but could not build it again
}

// Unusable reports whether the client's hello cannot be sent again: it
// has none, uTLS cannot read it (Key is UnusableKey), or uTLS read it but
// could not build it (SetUnbuildable).
func (c *Client) Unusable() bool {
	return c.Hello == nil || c.Key() == UnusableKey || c.unbuildable.Load()
}

// SetUnbuildable records that a handshake could not build the client's
// hello (Handshake's ErrHello): Unusable reports true from now on.
func (c *Client) SetUnbuildable() { c.unbuildable.Store(true) }

type clientKey struct{}

// WithClient returns ctx carrying c for the requests made with it.
func WithClient(ctx context.Context, c *Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the Client ctx carries, or nil.
func ClientFrom(ctx context.Context) *Client {
	c, _ := ctx.Value(clientKey{}).(*Client)
	return c
}

// Key names what the client's hello asks for (its cipher suites and each
// extension with its data: groups, key share groups, versions, signature
// algorithms, ALPN...), leaving out what changes from one of its
// connections to the next (randoms, keys, tickets, GREASE values,
// extension order): two connections of one browser have the same key, so
// a mirrored session can share origin connections between them, and two
// clients that ask for different things never do. A hello uTLS cannot
// read has the key UnusableKey.
//
// Over HTTP/2 the key holds the client's preface too (SETTINGS, window,
// PRIORITY frames, HEADERS priority), which a connection opens with: it
// has come by the time the client's first request is read.
func (c *Client) Key() string {
	c.once.Do(func() {
		c.key = helloKey(c.Hello)
		if c.key != UnusableKey && c.H2 != nil {
			if p, ok := c.H2(); ok {
				c.key += "|h2=" + prefaceKey(p)
			}
		}
	})
	return c.key
}

// prefaceKey writes out an HTTP/2 preface for Key.
func prefaceKey(p wire.Preface) string {
	var b strings.Builder
	for _, st := range p.Settings {
		fmt.Fprintf(&b, "%d:%d,", st.ID, st.Val)
	}
	fmt.Fprintf(&b, "|%d|", p.WindowUpdate)
	for _, pf := range p.Priorities {
		fmt.Fprintf(&b, "%d:%d:%d:%t,", pf.StreamID, pf.StreamDep, pf.Weight, pf.Exclusive)
	}
	if hp := p.HeaderPriority; hp != nil {
		fmt.Fprintf(&b, "|%d:%d:%t", hp.StreamDep, hp.Weight, hp.Exclusive)
	}
	return b.String()
}

// helloKey is Key of one hello.
func helloKey(hello []byte) string {
	if hello == nil {
		return ""
	}
	spec, err := readHello(hello)
	if err != nil {
		return UnusableKey
	}
	var suites []string
	for _, cs := range spec.CipherSuites {
		if !isGREASE(cs) {
			suites = append(suites, fmt.Sprintf("%04x", cs))
		}
	}
	var exts []string
	for _, e := range spec.Extensions {
		switch e := e.(type) {
		case *utls.UtlsGREASEExtension, *utls.UtlsPaddingExtension:
		case *utls.GenericExtension:
			switch e.Id {
			case 35, 41, 0xfe0d: // session_ticket, pre_shared_key, encrypted_client_hello: per connection
				exts = append(exts, fmt.Sprintf("%d", e.Id))
			default:
				exts = append(exts, fmt.Sprintf("%d=%x", e.Id, e.Data))
			}
		case *utls.ALPNExtension:
			exts = append(exts, "alpn="+strings.Join(e.AlpnProtocols, ","))
		case *utls.SupportedCurvesExtension:
			exts = append(exts, "groups="+ids(e.Curves))
		case *utls.KeyShareExtension:
			groups := make([]utls.CurveID, len(e.KeyShares))
			for i, ks := range e.KeyShares {
				groups[i] = ks.Group // the group, not the key: that changes
			}
			exts = append(exts, "shares="+ids(groups))
		case *utls.SupportedVersionsExtension:
			exts = append(exts, "versions="+ids(e.Versions))
		case *utls.SignatureAlgorithmsExtension:
			exts = append(exts, "sigalgs="+ids(e.SupportedSignatureAlgorithms))
		case *utls.SignatureAlgorithmsCertExtension:
			exts = append(exts, "sigalgs-cert="+ids(e.SupportedSignatureAlgorithms))
		case *utls.PSKKeyExchangeModesExtension:
			exts = append(exts, fmt.Sprintf("psk-modes=%x", e.Modes))
		case *utls.SupportedPointsExtension:
			exts = append(exts, fmt.Sprintf("points=%x", e.SupportedPoints))
		case *utls.UtlsCompressCertExtension:
			exts = append(exts, "compress-cert="+ids(e.Algorithms))
		case *utls.ApplicationSettingsExtension:
			exts = append(exts, "alps="+strings.Join(e.SupportedProtocols, ","))
		case *utls.FakeRecordSizeLimitExtension:
			exts = append(exts, fmt.Sprintf("record-size-limit=%d", e.Limit))
		default:
			exts = append(exts, fmt.Sprintf("%T", e))
		}
	}
	slices.Sort(exts) // a browser may send them in another order each time
	return strings.Join(suites, ",") + "|" + strings.Join(exts, ";")
}

// ids lists a hello's code points in order, GREASE values left out (a
// browser draws them anew for each connection).
func ids[T ~uint16](vs []T) string {
	var b strings.Builder
	for _, v := range vs {
		if isGREASE(uint16(v)) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%04x", uint16(v))
	}
	return b.String()
}

// UnusableKey is the Key of a hello uTLS cannot read.
const UnusableKey = "?"

// isGREASE reports whether v is a GREASE value (RFC 8701).
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }
