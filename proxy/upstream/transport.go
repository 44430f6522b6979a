package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/profile"
	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// Defaults of Options' zero fields.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultMaxIdleConnsPerHost   = 64

	idleConnTimeout = 90 * time.Second
	tcpKeepAlive    = 30 * time.Second
)

// Options configures the connections that Transports and Dial make to
// origins and upstream proxies. Its zero value means: system roots,
// verification on, and the Default* timeouts and limits.
type Options struct {
	// RootCAs verifies origins and https upstream proxies. Nil means the
	// system roots (see LoadRootCAs).
	RootCAs *x509.CertPool
	// InsecureSkipVerify turns off verification of origins and https
	// upstream proxies (mitm.insecure_skip_verify).
	InsecureSkipVerify bool
	// DialTimeout bounds a TCP connect. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds a TLS handshake. Zero means
	// DefaultTLSHandshakeTimeout.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after a
	// request is written, and for an upstream's answer to CONNECT (a SOCKS5
	// dial and handshake together get DialTimeout+ResponseHeaderTimeout).
	// Zero means DefaultResponseHeaderTimeout.
	ResponseHeaderTimeout time.Duration
	// MaxIdleConnsPerHost caps the idle connections one session keeps per
	// origin. Zero means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
	// CheckTarget, when set, is called with every address a direct
	// connection to an origin (no upstream proxy) is about to connect to,
	// after name resolution; an error refuses that address (the dial
	// fails wrapping ErrTargetRefused). It must be safe for concurrent
	// use. Nil means every address is allowed.
	CheckTarget func(netip.AddrPort) error
	// MaxResponseHeaderBytes bounds an origin's or upstream's response
	// head. Zero means net/http's default (10 MiB).
	MaxResponseHeaderBytes int64

	buffers  *wire.Buffers // what the sessions' exchanges borrow their buffers from; see NewTransports
	verified *verifyCache  // the origin chains the sessions' identities verified; nil: each handshake verifies its own
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	return o
}

func (o Options) dialer() *net.Dialer {
	return &net.Dialer{Timeout: o.DialTimeout, KeepAlive: tcpKeepAlive}
}

// LoadRootCAs returns the system roots plus the PEM certificates in files.
// No files gives nil (meaning the system roots to Options). A file
// that cannot be read, holds a malformed certificate or no certificate at
// all is an error naming it; every such file is named.
func LoadRootCAs(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	var errs []error // each file's problem, all of them
	for _, f := range files {
		if err := addRootCAs(pool, f); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return pool, nil
}

// addRootCAs adds the PEM certificates of file f to pool.
func addRootCAs(pool *x509.CertPool, f string) error {
	data, err := os.ReadFile(f)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrRootCAs, f, err)
	}
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%w %s: certificate %d: %v", ErrRootCAs, f, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w %s: no PEM CERTIFICATE block", ErrRootCAs, f)
	}
	return nil
}

// Transports hands out one transport per session ID, each with its own
// connection pool, so that two sessions never share a connection. Each
// goes through its session's upstream proxy, verifies TLS as Options say,
// speaks HTTP/2 where the origin offers it and leaves Accept-Encoding and
// bodies alone. A session's fingerprint mode decides what the origin sees:
// "go" (or "") is net/http's Transport with Go's TLS and HTTP/2; "mirror"
// sends each request with the ClientHello, HTTP/2 preface and header order
// of the proxy client that made it (see profile.Client and
// wire.WithOrder); a browser profile's name sends that browser's.
//
// K is what names a session (a comparable key: making it costs no
// allocation per request). Make one with NewTransports; the zero value is
// not usable. Its methods are safe for concurrent use.
type Transports[K comparable] struct {
	opts Options

	profiles map[string]*profile.Profile

	mu sync.RWMutex // guards m
	m  map[K]sessionTransport
}

type sessionTransport struct {
	upstream    string
	fingerprint string
	tr          roundTripCloser
}

// roundTripCloser is a session's transport.
type roundTripCloser interface {
	http.RoundTripper
	CloseIdleConnections()
}

// NewTransports returns an empty Transports building transports with opts.
func NewTransports[K comparable](opts Options) *Transports[K] {
	opts = opts.withDefaults()
	opts.buffers = wire.NewBuffers() // one for every session: an idle connection holds none
	if !opts.InsecureSkipVerify {
		opts.verified = newVerifyCache(opts.RootCAs)
	}
	return &Transports[K]{opts: opts, profiles: profile.Profiles(), m: make(map[K]sessionTransport)}
}

// Get returns the session's transport, creating it on first use. proxyURL
// is the session's upstream proxy URL ("" = direct), fingerprint its mode
// ("" or "go", "mirror", or a profile name); a session whose upstream or
// mode changed gets a new transport (the old one's idle connections are
// closed). An invalid proxyURL gives a *ParseError (ErrInvalidURL), an
// unknown mode ErrNoIdentity.
func (t *Transports[K]) Get(sessionID K, proxyURL, fingerprint string) (http.RoundTripper, error) {
	t.mu.RLock()
	st, ok := t.m[sessionID]
	t.mu.RUnlock()
	if ok && st.upstream == proxyURL && st.fingerprint == fingerprint {
		return st.tr, nil
	}

	u, err := parseProxy(proxyURL)
	if err != nil {
		return nil, err
	}
	var tr roundTripCloser
	switch id, err := forIdentity(fingerprint, u, proxyURL, t.profiles, t.opts); {
	case err != nil:
		return nil, err
	case id != nil:
		tr = id
	default:
		tr = newTransport(u, proxyURL, t.opts)
	}

	t.mu.Lock()
	old, ok := t.m[sessionID]
	if ok && old.upstream == proxyURL && old.fingerprint == fingerprint { // another caller won the race
		t.mu.Unlock()
		return old.tr, nil
	}
	t.m[sessionID] = sessionTransport{upstream: proxyURL, fingerprint: fingerprint, tr: tr}
	t.mu.Unlock()
	if ok {
		old.tr.CloseIdleConnections()
	}
	return tr, nil
}

// Retain closes the transports of every session for which keep reports
// false: the sessions that left the pool without being retired (expired,
// evicted). keep is called without the lock held.
func (t *Transports[K]) Retain(keep func(sessionID K) bool) {
	t.mu.RLock()
	ids := make([]K, 0, len(t.m))
	for id := range t.m {
		ids = append(ids, id)
	}
	t.mu.RUnlock()
	for _, id := range ids {
		if !keep(id) {
			t.Close(id)
		}
	}
}

// Close forgets the session's transport and closes its idle connections
// (for a retired or evicted session). Connections still carrying a request
// go back to the forgotten transport's pool when done and are closed after
// 90 s idle. Closing an unknown session does nothing.
func (t *Transports[K]) Close(sessionID K) {
	t.mu.Lock()
	st, ok := t.m[sessionID]
	delete(t.m, sessionID)
	t.mu.Unlock()
	if ok {
		st.tr.CloseIdleConnections()
	}
}

// CloseAll forgets every transport and closes their idle connections.
func (t *Transports[K]) CloseAll() {
	t.mu.Lock()
	m := t.m
	t.m = make(map[K]sessionTransport)
	t.mu.Unlock()
	for _, st := range m {
		st.tr.CloseIdleConnections()
	}
}

// parseProxy is Parse, but "" (direct) gives nil and no error.
func parseProxy(proxyURL string) (*url.URL, error) {
	if proxyURL == "" {
		return nil, nil
	}
	return Parse(proxyURL)
}

// newTransport builds the transport for upstream u (nil: direct), parsed
// from proxyURL. Through an upstream, the tunnels (SOCKS5, and CONNECT for
// https origins) are opened by dial, whose timeouts bound the upstream's
// answer: net/http's own wait up to a minute for an answer to CONNECT and
// for ever for a SOCKS5 one, detached from the request. Plain-HTTP requests
// through an http(s) upstream go to it in absolute form.
func newTransport(u *url.URL, proxyURL string, opts Options) roundTripCloser {
	if u == nil {
		return newHTTPTransport(opts.originDialer().DialContext, opts)
	}
	tunnels := newHTTPTransport(func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dial(ctx, u, proxyURL, network, addr, opts)
	}, opts)
	if u.Scheme == "socks5" || u.Scheme == "socks5h" {
		return tunnels
	}
	d := opts.dialer()
	forward := newHTTPTransport(d.DialContext, opts)
	forward.Proxy = http.ProxyURL(u)
	if u.Scheme == "https" {
		// TLS to the proxy itself, verified like origins but limited to
		// HTTP/1.1: absolute-form requests are an HTTP/1.1 thing.
		forward.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialTLSProxy(ctx, d, u, opts)
		}
	}
	return &byScheme{https: tunnels, http: forward}
}

// newHTTPTransport is net/http's transport as Options say, connecting
// with dial.
func newHTTPTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error), opts Options) *http.Transport {
	return &http.Transport{
		DialContext: dial,
		TLSClientConfig: &tls.Config{
			RootCAs:            opts.RootCAs,
			InsecureSkipVerify: opts.InsecureSkipVerify,
		},
		ForceAttemptHTTP2:      true,
		DisableCompression:     true,
		MaxIdleConnsPerHost:    opts.MaxIdleConnsPerHost,
		IdleConnTimeout:        idleConnTimeout,
		TLSHandshakeTimeout:    opts.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  opts.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: opts.MaxResponseHeaderBytes,
	}
}

// byScheme sends https requests through a transport of tunnels to origins,
// and the others through one that sends them to the upstream proxy.
type byScheme struct {
	https, http *http.Transport
}

func (b *byScheme) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "https" {
		return b.https.RoundTrip(req)
	}
	return b.http.RoundTrip(req)
}

func (b *byScheme) CloseIdleConnections() {
	b.https.CloseIdleConnections()
	b.http.CloseIdleConnections()
}

// dialTLSProxy connects to the https upstream u and completes the TLS
// handshake, verified with opts, offering only HTTP/1.1.
func dialTLSProxy(ctx context.Context, d *net.Dialer, u *url.URL, opts Options) (net.Conn, error) {
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, &tls.Config{
		ServerName:         u.Hostname(),
		RootCAs:            opts.RootCAs,
		InsecureSkipVerify: opts.InsecureSkipVerify,
		NextProtos:         []string{"http/1.1"},
	})
	hctx, cancel := context.WithTimeout(ctx, opts.TLSHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}
