package upstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	utls "github.com/refraction-networking/utls"

	"github.com/sessionproxy/sessionproxy/proxy/profile"
	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// ErrNoIdentity is a fingerprint mode that names no identity the proxy
// has.
var ErrNoIdentity = errors.New("upstream: unknown fingerprint")

// identityTransport is a session's transport when it has an identity on
// the wire (a browser profile, or the client's own mirrored): its TLS is
// made with uTLS from a ClientHello, its HTTP/1.1 and HTTP/2 with package
// wire, through the session's upstream proxy as a tunnel (CONNECT or
// SOCKS5) for TLS origins, so that the origin sees the identity's
// handshake and not Go's or the upstream's.
type identityTransport struct {
	upstream *url.URL         // nil: direct
	proxyURL string           // as given, for dialing and errors
	prof     *profile.Profile // nil: mirror
	fallback *profile.Profile // for a mirrored request with no hello or preface of its client
	opts     Options
	tickets  utls.ClientSessionCache // the session's own: it resumes its TLS sessions only
	wire     *wire.Transport
	lastKey  atomic.Pointer[poolKey] // the latest request's (key)
}

// newIdentityTransport builds the transport of a session going through
// upstream u (nil: direct) as prof (nil: mirror its clients).
func newIdentityTransport(u *url.URL, proxyURL string, prof, fallback *profile.Profile, opts Options) *identityTransport {
	t := &identityTransport{upstream: u, proxyURL: proxyURL, prof: prof, fallback: fallback, opts: opts,
		tickets: utls.NewLRUClientSessionCache(32)}
	t.wire = &wire.Transport{
		Key:                    t.key,
		Dial:                   t.dial,
		IdleTimeout:            idleConnTimeout,
		MaxIdlePerKey:          opts.MaxIdleConnsPerHost,
		ResponseHeaderTimeout:  opts.ResponseHeaderTimeout,
		MaxResponseHeaderBytes: opts.MaxResponseHeaderBytes,
		Buffers:                opts.buffers,
	}
	return t
}

// RoundTrip sends req as the identity: a profile's header order (the
// headers it does not know after, in the client's order), or the client's
// own order that the proxy put on req's context.
func (t *identityTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.prof != nil {
		o, _ := wire.OrderFrom(req.Context())
		req = req.WithContext(wire.WithOrder(req.Context(), t.prof.Order(req.Header, o.Names)))
	}
	return t.wire.RoundTrip(req)
}

func (t *identityTransport) CloseIdleConnections() { t.wire.CloseIdleConnections() }

// key pools connections by origin and, mirroring, by what the client's
// hello asks for: two clients with different hellos never share one.
// The key of the latest request is kept: a session's requests mostly go to
// one origin, and the key is then not built again.
func (t *identityTransport) key(req *http.Request) string {
	client, mirrored := "", false
	if t.prof == nil && req.URL.Scheme == "https" {
		if c := profile.ClientFrom(req.Context()); c != nil {
			client, mirrored = c.Key(), true
		}
	}
	if last := t.lastKey.Load(); last != nil && last.scheme == req.URL.Scheme && last.host == req.URL.Host &&
		last.client == client && last.mirrored == mirrored {
		return last.key
	}
	k := req.URL.Scheme + "://" + targetAddr(req.URL)
	if mirrored {
		k += "|" + client
	}
	t.lastKey.Store(&poolKey{scheme: req.URL.Scheme, host: req.URL.Host, client: client, mirrored: mirrored, key: k})
	return k
}

// poolKey is a pool's key and what it was made of.
type poolKey struct {
	scheme, host, client string
	mirrored             bool // a client's hello was asked for
	key                  string
}

// targetAddr is u's host:port, the port from the scheme when u has none.
func targetAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" || u.Scheme == "wss" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// dial opens a connection for req: to a plain-HTTP origin through an
// http(s) upstream, to the upstream itself (absolute-form requests, as
// net/http sends them); otherwise a tunnel to the origin (direct, CONNECT
// or SOCKS5), with the identity's TLS handshake for https.
func (t *identityTransport) dial(ctx context.Context, req *http.Request) (*wire.Conn, error) {
	addr := targetAddr(req.URL)
	if req.URL.Scheme != "https" && t.upstream != nil && (t.upstream.Scheme == "http" || t.upstream.Scheme == "https") {
		return t.dialProxy(ctx)
	}
	if req.URL.Scheme != "https" {
		conn, err := Dial(ctx, t.proxyURL, "tcp", addr, t.opts)
		if err != nil {
			return nil, err
		}
		return &wire.Conn{Conn: conn}, nil
	}
	id := t.identity(req)
	var protos []string // nil: the hello's own ALPN
	if wire.Upgrading(req) {
		// A WebSocket needs HTTP/1.1, and a browser opens its connection
		// offering http/1.1 alone; an origin offered h2 too would take it.
		protos = []string{"http/1.1"}
	}
	uc, err := t.handshake(ctx, req, addr, id, protos)
	if id.client != nil && errors.Is(err, profile.ErrHello) {
		// uTLS read the client's hello but cannot build it (a key share
		// of a group it lacks): the fallback's goes instead, as for a
		// hello it cannot read, from now on for this client.
		id.client.SetUnbuildable()
		id = t.identity(req)
		uc, err = t.handshake(ctx, req, addr, id, protos)
	}
	if err != nil && strings.Contains(err.Error(), "no application protocol") {
		// The client offered only protocols the origin does not speak
		// (say, h2 alone to an HTTP/1.1 origin): a browser would have
		// offered http/1.1 too, and so does the session, once.
		if protos := profile.ALPN(id.hello); protos != nil && !slices.Contains(protos, "http/1.1") {
			uc, err = t.handshake(ctx, req, addr, id, append(slices.Clip(protos), "http/1.1"))
		}
	}
	if err != nil {
		return nil, err
	}
	c := &wire.Conn{Conn: uc, Proto: uc.ConnectionState().NegotiatedProtocol}
	if c.Proto == "h2" {
		c.H2 = id.preface()
	}
	return c, nil
}

// handshake opens a tunnel to addr and makes TLS on it as id (the hello's
// ALPN replaced by protos when not nil).
func (t *identityTransport) handshake(ctx context.Context, req *http.Request, addr string, id identity, protos []string) (*utls.UConn, error) {
	conn, err := Dial(ctx, t.proxyURL, "tcp", addr, t.opts)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, t.opts.TLSHandshakeTimeout)
	defer cancel()
	cfg := &utls.Config{
		ServerName:         req.URL.Hostname(),
		RootCAs:            t.opts.RootCAs,
		InsecureSkipVerify: t.opts.InsecureSkipVerify,
		ClientSessionCache: t.tickets,
		NextProtos:         protos,
	}
	if t.opts.verified != nil {
		// The shared cache verifies, as uTLS would; uTLS is told to skip
		// its own, which also leaves the hello untouched.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = t.opts.verified.verifyConnection(cfg.ServerName)
	}
	var uc *utls.UConn
	if id.prof != nil {
		uc, err = id.prof.Handshake(hctx, conn, cfg)
	} else {
		uc, err = profile.Handshake(hctx, conn, id.hello, cfg)
	}
	if err != nil {
		conn.Close()
		kind := KindTLS
		if k := errorKind(err); k == KindTimeout {
			kind = k
		}
		return nil, &Error{Hop: originHop(addr), Kind: kind, Err: err, secrets: secretsOf(t.proxyURL)}
	}
	return uc, nil
}

// identity is what a connection to an origin is made as: a profile's
// hello (prof), or a client's own (client).
type identity struct {
	hello   []byte              // the ClientHello: prof's, or client's
	prof    *profile.Profile    // nil: client's own hello
	client  *profile.Client     // the client whose hello it is, or nil
	preface func() wire.Preface // the HTTP/2 preface, once the connection chose h2
}

// identity returns what to make req's connection as: the profile's, or
// the client's own when mirroring (the fallback profile's for a client
// that showed none, such as one that sent an https URL in a plain-HTTP
// request, or one whose hello uTLS cannot rebuild: the session is not to
// fail for it).
func (t *identityTransport) identity(req *http.Request) identity {
	if t.prof != nil {
		return identity{hello: t.prof.Hello, prof: t.prof, preface: func() wire.Preface { return t.prof.H2 }}
	}
	c := profile.ClientFrom(req.Context())
	if c == nil || c.Unusable() {
		return identity{hello: t.fallback.Hello, prof: t.fallback, preface: func() wire.Preface { return t.fallback.H2 }}
	}
	return identity{hello: c.Hello, client: c, preface: func() wire.Preface {
		if c.H2 != nil {
			if p, ok := c.H2(); ok {
				return p
			}
		}
		return t.fallback.H2
	}}
}

// dialProxy connects to the http(s) upstream proxy itself, for plain-HTTP
// requests in absolute form with its Proxy-Authorization.
func (t *identityTransport) dialProxy(ctx context.Context) (*wire.Conn, error) {
	u := t.upstream
	fail := func(err error) error {
		return &Error{Hop: proxyHop(u), Kind: errorKind(err), Err: err, secrets: secretsOf(t.proxyURL)}
	}
	var conn net.Conn
	var err error
	if u.Scheme == "https" {
		conn, err = dialTLSProxy(ctx, t.opts.dialer(), u, t.opts)
	} else {
		conn, err = t.opts.dialer().DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, fail(err)
	}
	c := &wire.Conn{Conn: conn, Proxy: true}
	if u.User != nil {
		pass, _ := u.User.Password()
		auth := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pass))
		c.ProxyLines = []string{"Proxy-Authorization: Basic " + auth}
	}
	return c, nil
}

// forIdentity returns the transport for a session with fingerprint mode
// fp: nil for "go" (the caller's net/http transport).
func forIdentity(fp string, u *url.URL, proxyURL string, profiles map[string]*profile.Profile, opts Options) (roundTripCloser, error) {
	switch fp {
	case "", profile.Go:
		return nil, nil
	case profile.Mirror:
		return newIdentityTransport(u, proxyURL, nil, profiles[profile.Chrome], opts), nil
	}
	p, ok := profiles[fp]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrNoIdentity, fp)
	}
	return newIdentityTransport(u, proxyURL, p, profiles[profile.Chrome], opts), nil
}
