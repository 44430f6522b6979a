package profile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

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

	once sync.Once
	key  string
}

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

// Key names what the client's hello asks for, leaving out what changes
// from one of its connections to the next (randoms, keys, GREASE values,
// extension order): two connections of one browser have the same key, so
// a mirrored session can share origin connections between them. A hello
// uTLS cannot read has the key UnusableKey.
func (c *Client) Key() string {
	c.once.Do(func() { c.key = helloKey(c.Hello) })
	return c.key
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
			exts = append(exts, fmt.Sprintf("%d", e.Id))
		case *utls.ALPNExtension:
			exts = append(exts, "alpn="+strings.Join(e.AlpnProtocols, ","))
		default:
			exts = append(exts, fmt.Sprintf("%T", e))
		}
	}
	slices.Sort(exts)
	return strings.Join(suites, ",") + "|" + strings.Join(exts, ",")
}

// UnusableKey is the Key of a hello uTLS cannot read.
const UnusableKey = "?"

// isGREASE reports whether v is a GREASE value (RFC 8701).
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }
