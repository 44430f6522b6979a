package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Upstream errors, matched with errors.Is.
var (
	// ErrBadUpstream: an upstream proxy URL cannot be parsed or uses an
	// unsupported scheme. Messages carrying it show the URL redacted.
	ErrBadUpstream = errors.New("proxy: invalid upstream proxy URL")
	// ErrConnectRefused: an upstream proxy answered CONNECT with a status
	// other than 200 (the status follows in the message).
	ErrConnectRefused = errors.New("proxy: upstream proxy refused CONNECT")
	// ErrRootCAs: a file named in mitm.upstream_ca holds no usable certificate.
	ErrRootCAs = errors.New("proxy: bad upstream CA file")
)

// Defaults of TransportOptions' zero fields.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultMaxIdleConnsPerHost   = 64

	idleConnTimeout = 90 * time.Second
	tcpKeepAlive    = 30 * time.Second
)

// TransportOptions configures the connections made to origins and upstream
// proxies. Its zero value means: system roots, verification on, and the
// Default* timeouts and limits.
type TransportOptions struct {
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
}

func (o TransportOptions) withDefaults() TransportOptions {
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

func (o TransportOptions) dialer() *net.Dialer {
	return &net.Dialer{Timeout: o.DialTimeout, KeepAlive: tcpKeepAlive}
}

// LoadRootCAs returns the system roots plus the PEM certificates in files.
// No files gives nil (meaning the system roots to TransportOptions). A file
// that cannot be read, holds a malformed certificate or no certificate at
// all is an error naming it.
func LoadRootCAs(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrRootCAs, f, err)
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
				return nil, fmt.Errorf("%w %s: certificate %d: %v", ErrRootCAs, f, n+1, err)
			}
			pool.AddCert(cert)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%w %s: no PEM CERTIFICATE block", ErrRootCAs, f)
		}
	}
	return pool, nil
}

// ParseUpstream parses an upstream proxy URL: http, https, socks5 or
// socks5h, with optional user info, a host and an optional port; "" (direct)
// gives nil and no error. Errors wrap ErrBadUpstream and show the URL
// redacted.
func ParseUpstream(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	if !strings.Contains(s, "://") {
		return nil, fmt.Errorf("%w %s: missing scheme (want http://, https://, socks5:// or socks5h:// and a host)", ErrBadUpstream, RedactURL(s))
	}
	u, err := url.Parse(s)
	if err != nil {
		detail := "cannot parse"
		var uerr *url.Error
		if errors.As(err, &uerr) && !strings.Contains(s, "@") {
			detail = uerr.Err.Error() // without user info it cannot leak a password
		}
		return nil, fmt.Errorf("%w %s: %s", ErrBadUpstream, RedactURL(s), detail)
	}
	bad := func(why string) error {
		return fmt.Errorf("%w %s: %s", ErrBadUpstream, RedactURL(s), why)
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	case "":
		return nil, bad("missing scheme (want http, https, socks5 or socks5h)")
	default:
		return nil, bad(fmt.Sprintf("unsupported scheme %q (want http, https, socks5 or socks5h)", u.Scheme))
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, bad("missing host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, bad(fmt.Sprintf("invalid port %q", p))
		}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, bad("unexpected path, query or fragment")
	}
	return u, nil
}

// proxyAddr is the upstream's host:port, with the scheme's default port.
func proxyAddr(u *url.URL) string {
	if p := u.Port(); p != "" {
		return net.JoinHostPort(u.Hostname(), p)
	}
	port := "80"
	switch u.Scheme {
	case "https":
		port = "443"
	case "socks5", "socks5h":
		port = "1080"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// RedactURL returns s with the password of its user info replaced by
// "xxxxx" (as url.URL.Redacted does), for logs and the admin API. Strings
// that do not parse as URLs are redacted all the same.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" && !strings.ContainsAny(s, " \t\r\n") {
		return u.Redacted()
	}
	if i, j := fallbackPassword(s); i >= 0 {
		return s[:i] + "xxxxx" + s[j:]
	}
	return s
}

// fallbackPassword finds the password of a string that does not parse as a
// URL with a host, deliberately broadly: everything between the first ':'
// after the scheme and the last '@'. It returns its bounds, or -1, -1.
func fallbackPassword(s string) (start, end int) {
	off := 0
	if i := strings.Index(s, "://"); i >= 0 && isScheme(s[:i]) {
		off = i + 3
	}
	at := strings.LastIndex(s[off:], "@")
	if at < 0 {
		return -1, -1
	}
	c := strings.Index(s[off:off+at], ":")
	if c < 0 {
		return -1, -1
	}
	return off + c + 1, off + at
}

// isScheme reports whether s is a URL scheme (RFC 3986).
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// Transports hands out one *http.Transport per session ID, each with its
// own connection pool, so that two sessions never share a connection. Each
// transport goes through its session's upstream proxy, verifies TLS as
// TransportOptions say, speaks HTTP/2 where the origin offers it and leaves
// Accept-Encoding and bodies alone (DisableCompression).
//
// Make one with NewTransports; the zero value is not usable. Its methods
// are safe for concurrent use.
type Transports struct {
	opts TransportOptions

	mu sync.RWMutex // guards m
	m  map[string]sessionTransport
}

type sessionTransport struct {
	upstream string
	tr       *http.Transport
}

// NewTransports returns an empty Transports building transports with opts.
func NewTransports(opts TransportOptions) *Transports {
	return &Transports{opts: opts.withDefaults(), m: make(map[string]sessionTransport)}
}

// Get returns the session's transport, creating it on first use. upstream is
// the session's upstream proxy URL ("" = direct); a session whose upstream
// changed gets a new transport (the old one's idle connections are closed).
// An invalid upstream gives an error wrapping ErrBadUpstream.
func (t *Transports) Get(sessionID, upstream string) (*http.Transport, error) {
	t.mu.RLock()
	st, ok := t.m[sessionID]
	t.mu.RUnlock()
	if ok && st.upstream == upstream {
		return st.tr, nil
	}

	u, err := ParseUpstream(upstream)
	if err != nil {
		return nil, err
	}
	tr := newTransport(u, t.opts)

	t.mu.Lock()
	old, ok := t.m[sessionID]
	if ok && old.upstream == upstream { // another caller won the race
		t.mu.Unlock()
		return old.tr, nil
	}
	t.m[sessionID] = sessionTransport{upstream: upstream, tr: tr}
	t.mu.Unlock()
	if ok {
		old.tr.CloseIdleConnections()
	}
	return tr, nil
}

// Retain closes the transports of every session for which keep reports
// false: the sessions that left the pool without being retired (expired,
// evicted). keep is called without the lock held.
func (t *Transports) Retain(keep func(sessionID string) bool) {
	t.mu.RLock()
	ids := make([]string, 0, len(t.m))
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
func (t *Transports) Close(sessionID string) {
	t.mu.Lock()
	st, ok := t.m[sessionID]
	delete(t.m, sessionID)
	t.mu.Unlock()
	if ok {
		st.tr.CloseIdleConnections()
	}
}

// CloseAll forgets every transport and closes their idle connections.
func (t *Transports) CloseAll() {
	t.mu.Lock()
	m := t.m
	t.m = make(map[string]sessionTransport)
	t.mu.Unlock()
	for _, st := range m {
		st.tr.CloseIdleConnections()
	}
}

// Len returns the number of sessions with a transport.
func (t *Transports) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// newTransport builds the transport for upstream u (nil: direct).
func newTransport(u *url.URL, opts TransportOptions) *http.Transport {
	d := opts.dialer()
	tr := &http.Transport{
		DialContext: d.DialContext,
		TLSClientConfig: &tls.Config{
			RootCAs:            opts.RootCAs,
			InsecureSkipVerify: opts.InsecureSkipVerify,
		},
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   opts.TLSHandshakeTimeout,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	if u == nil {
		return tr
	}
	tr.Proxy = http.ProxyURL(u)
	// net/http returns a refused CONNECT as a bare status text; make it
	// recognisable (ClassifyError names the upstream for it).
	tr.OnProxyConnectResponse = func(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w: %s", ErrConnectRefused, oneLine(resp.Status))
		}
		return nil
	}
	if u.Scheme == "https" {
		// TLS to the proxy itself, verified like origins but limited to
		// HTTP/1.1: CONNECT and absolute-form requests are HTTP/1.1 things.
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialTLSProxy(ctx, d, u, opts)
		}
	}
	return tr
}

// dialTLSProxy connects to the https upstream u and completes the TLS
// handshake, verified with opts, offering only HTTP/1.1.
func dialTLSProxy(ctx context.Context, d *net.Dialer, u *url.URL, opts TransportOptions) (net.Conn, error) {
	conn, err := d.DialContext(ctx, "tcp", proxyAddr(u))
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

// Kinds of UpstreamError.
const (
	KindConnect  = "connect"  // no connection: refused, unreachable, DNS, CONNECT or SOCKS refused
	KindTLS      = "tls"      // certificate or handshake failure
	KindTimeout  = "timeout"  // a deadline passed
	KindProtocol = "protocol" // anything else: bad answers, resets, cancellation
)

// UpstreamError is a failure to get a response from an origin, naming the
// hop that failed. Error() is one line and never shows credentials.
type UpstreamError struct {
	// Hop is "upstream proxy HOST:PORT" or "origin HOST:PORT", never with
	// credentials.
	Hop string
	// Kind is KindConnect, KindTLS, KindTimeout or KindProtocol.
	Kind string
	// Err is the underlying error; its text may hold credentials, which
	// Error() removes.
	Err error

	secrets []string // strings Error() replaces with "xxxxx"
}

// Error returns "proxy: KIND error at HOP: DETAIL" on one line, with user
// info passwords in URLs and the upstream's password replaced by "xxxxx".
func (e *UpstreamError) Error() string {
	detail := "unknown error"
	if e.Err != nil {
		detail = strings.TrimPrefix(scrub(e.Err.Error(), e.secrets), "proxy: ")
	}
	return "proxy: " + e.Kind + " error at " + oneLine(e.Hop) + ": " + detail
}

// Unwrap returns Err.
func (e *UpstreamError) Unwrap() error { return e.Err }

// ClassifyError turns an error from a Transports transport's RoundTrip or
// from DialUpstream into an UpstreamError: its Kind from the error (TLS and
// certificate errors, timeouts and deadlines, failed dials and refused
// CONNECT or SOCKS requests, else protocol) and its Hop (the upstream proxy
// when reaching it or its answer failed, else the origin target, given as
// host:port or URL). upstream is the session's upstream URL ("" = direct).
// An error that already holds an *UpstreamError gives that; nil gives nil.
// A client that went away shows as KindProtocol wrapping context.Canceled.
func ClassifyError(err error, upstream string, target string) *UpstreamError {
	if err == nil {
		return nil
	}
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return ue
	}
	secrets := secretsOf(upstream)
	if errors.Is(err, ErrBadUpstream) {
		return &UpstreamError{Hop: "upstream proxy (invalid URL)", Kind: KindProtocol, Err: err, secrets: secrets}
	}
	u, _ := ParseUpstream(upstream)
	hop := originHop(target)
	if u != nil && failedAtProxy(err) {
		hop = proxyHop(u)
	}
	return &UpstreamError{Hop: hop, Kind: errorKind(err), Err: err, secrets: secrets}
}

func proxyHop(u *url.URL) string { return "upstream proxy " + proxyAddr(u) }

// originHop names target ("host:port", "host" or a URL) as "origin HOST:PORT".
func originHop(target string) string {
	if strings.Contains(target, "://") {
		if u, err := url.Parse(target); err == nil && u.Hostname() != "" {
			port := u.Port()
			if port == "" {
				port = "80"
				if u.Scheme == "https" || u.Scheme == "wss" {
					port = "443"
				}
			}
			return "origin " + net.JoinHostPort(u.Hostname(), port)
		}
	}
	if i := strings.LastIndex(target, "@"); i >= 0 { // user info, never shown
		target = target[i+1:]
	}
	if i := strings.IndexAny(target, "/?# \t\r\n"); i >= 0 {
		target = target[:i]
	}
	if target == "" {
		return "origin"
	}
	return "origin " + target
}

// failedAtProxy reports whether err happened reaching the upstream proxy or
// in its answer to CONNECT or SOCKS5, rather than at the origin.
func failedAtProxy(err error) bool {
	if errors.Is(err, ErrConnectRefused) {
		return true
	}
	var pe *proxyDialError
	if errors.As(err, &pe) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if op, ok := e.(*net.OpError); ok && (op.Op == "proxyconnect" || strings.HasPrefix(op.Op, "socks")) {
			return true
		}
	}
	return false
}

// errorKind decides the Kind of err.
func errorKind(err error) string {
	if isTLSError(err) {
		return KindTLS
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return KindTimeout
	}
	if errors.Is(err, context.Canceled) {
		return KindProtocol
	}
	if errors.Is(err, ErrConnectRefused) {
		return KindConnect
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return KindConnect
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if op, ok := e.(*net.OpError); ok && (op.Op == "dial" || op.Op == "proxyconnect" || strings.HasPrefix(op.Op, "socks")) {
			return KindConnect
		}
	}
	var pe *proxyDialError
	if errors.As(err, &pe) {
		return KindConnect
	}
	return KindProtocol
}

func isTLSError(err error) bool {
	var (
		unknownAuth  x509.UnknownAuthorityError
		hostErr      x509.HostnameError
		invalidErr   x509.CertificateInvalidError
		verifyErr    *tls.CertificateVerificationError
		recordErr    tls.RecordHeaderError
		alertErr     tls.AlertError
		rootsErr     x509.SystemRootsError
		echRejectErr *tls.ECHRejectionError
	)
	if errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalidErr) ||
		errors.As(err, &verifyErr) || errors.As(err, &recordErr) || errors.As(err, &alertErr) ||
		errors.As(err, &rootsErr) || errors.As(err, &echRejectErr) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ")
}

// secretsOf returns the strings of upstream that must never be shown: its
// password, raw and escaped.
func secretsOf(upstream string) []string {
	p := passwordOf(upstream)
	if len(p) < 3 { // shorter ones would garble every message
		return nil
	}
	out := []string{p}
	if u, err := url.PathUnescape(p); err == nil && u != p && len(u) >= 3 {
		out = append(out, u)
	}
	if e := url.QueryEscape(p); e != p {
		out = append(out, e)
	}
	if e := url.PathEscape(p); e != p {
		out = append(out, e)
	}
	return out
}

// passwordOf returns the password in s, found the way RedactURL finds it.
func passwordOf(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" && !strings.ContainsAny(s, " \t\r\n") {
		if u.User == nil {
			return ""
		}
		p, _ := u.User.Password()
		return p
	}
	if i, j := fallbackPassword(s); i >= 0 {
		return s[i:j]
	}
	return ""
}

// scrub makes text one line without credentials: passwords in URL user
// info and the given secrets become "xxxxx".
func scrub(text string, secrets []string) string {
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, "xxxxx")
	}
	text = redactEmbeddedURLs(oneLine(text))
	for _, s := range secrets {
		text = strings.ReplaceAll(text, oneLine(s), "xxxxx")
	}
	return text
}

// redactEmbeddedURLs redacts the password of every "scheme://user:pass@"
// in text.
func redactEmbeddedURLs(text string) string {
	var b strings.Builder
	for {
		i := strings.Index(text, "://")
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		b.WriteString(text[:i+3])
		text = text[i+3:]
		end := strings.IndexAny(text, "/?# \"'<>")
		if end < 0 {
			end = len(text)
		}
		auth := text[:end]
		at := strings.LastIndex(auth, "@")
		if at < 0 {
			continue
		}
		user := auth[:at]
		if c := strings.Index(user, ":"); c >= 0 {
			user = user[:c] + ":xxxxx"
		}
		b.WriteString(user)
		text = text[at:]
	}
}

// oneLine replaces line breaks and other control characters with spaces.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
