package upstream

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"time"

	xproxy "golang.org/x/net/proxy"
)

// Dial opens a raw TCP tunnel to addr (host:port) through the upstream
// proxy at proxyURL, for CONNECT requests that are not intercepted and for
// WebSockets:
//   - "": a direct dial;
//   - http://[user:pass@]host:port: HTTP CONNECT, with Proxy-Authorization
//     Basic from the user info;
//   - https://...: TLS to the proxy (verified with opts), then CONNECT;
//   - socks5:// and socks5h://: SOCKS5, with username/password
//     authentication when the URL has user info (the proxy resolves names).
//
// network must be "tcp", "tcp4" or "tcp6" and addr host:port
// (ErrBadTarget); an invalid proxyURL gives a *ParseError. Failures to
// connect are *Error values naming the failing hop without credentials; a
// CONNECT answered with a status other than 200 wraps ErrConnectRefused.
// ctx bounds the whole setup; the returned connection is not bound by ctx.
func Dial(ctx context.Context, proxyURL string, network, addr string, opts Options) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("%w: unsupported network %q", ErrBadTarget, network)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("%w: address %q: %w", ErrBadTarget, addr, err)
	}
	u, err := parseProxy(proxyURL)
	if err != nil {
		return nil, err
	}
	return dial(ctx, u, proxyURL, network, addr, opts.withDefaults())
}

// dial is Dial once its input is checked: u is proxyURL parsed (nil:
// direct), opts has its defaults.
func dial(ctx context.Context, u *url.URL, proxyURL, network, addr string, opts Options) (net.Conn, error) {
	if u == nil {
		conn, err := opts.originDialer().DialContext(ctx, network, addr)
		if err != nil {
			return nil, &Error{Hop: originHop(addr), Kind: errorKind(err), Err: err}
		}
		return conn, nil
	}
	secrets := secretsOf(proxyURL)
	hop := proxyHop(u)
	fail := func(kind ErrorKind, err error) error {
		return &Error{Hop: hop, Kind: kind, Err: err, secrets: secrets}
	}
	switch u.Scheme {
	case "socks5", "socks5h":
		conn, err := dialSOCKS5(ctx, u, network, addr, opts)
		if err != nil {
			return nil, fail(errorKind(err), err)
		}
		return conn, nil
	default: // http, https: Parse allows nothing else
		conn, kind, err := dialConnect(ctx, u, addr, opts)
		if err != nil {
			return nil, fail(kind, err)
		}
		return conn, nil
	}
}

// proxyDialError marks a failure to reach the upstream proxy itself.
type proxyDialError struct{ err error }

func (e *proxyDialError) Error() string { return e.err.Error() }
func (e *proxyDialError) Unwrap() error { return e.err }

// markingDialer dials the SOCKS5 server, marking its failures.
type markingDialer struct{ d *net.Dialer }

func (m markingDialer) Dial(network, addr string) (net.Conn, error) {
	return m.DialContext(context.Background(), network, addr)
}

func (m markingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := m.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &proxyDialError{err}
	}
	return conn, nil
}

func dialSOCKS5(ctx context.Context, u *url.URL, network, addr string, opts Options) (net.Conn, error) {
	var auth *xproxy.Auth
	if u.User != nil {
		p, _ := u.User.Password()
		auth = &xproxy.Auth{User: u.User.Username(), Password: p}
	}
	d, err := xproxy.SOCKS5("tcp", u.Host, auth, markingDialer{opts.dialer()})
	if err != nil {
		return nil, err
	}
	cd, ok := d.(xproxy.ContextDialer)
	if !ok { // x/net/proxy's SOCKS5 dialer always is one
		return nil, errors.New("upstream: SOCKS5 dialer without DialContext")
	}
	// The handshake gets as long as a response header.
	sctx, cancel := context.WithTimeout(ctx, opts.DialTimeout+opts.ResponseHeaderTimeout)
	defer cancel()
	return cd.DialContext(sctx, network, addr)
}

// aLongTimeAgo is a deadline that makes blocked I/O return at once.
var aLongTimeAgo = time.Unix(1, 0)

// dialConnect opens a CONNECT tunnel to addr through the http or https
// proxy u. On failure it also returns the Kind.
func dialConnect(ctx context.Context, u *url.URL, addr string, opts Options) (net.Conn, ErrorKind, error) {
	d := opts.dialer()
	var conn net.Conn
	var err error
	if u.Scheme == "https" {
		conn, err = dialTLSProxy(ctx, d, u, opts)
	} else {
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, errorKind(err), err
	}

	hdr := make(http.Header)
	if u.User != nil {
		p, _ := u.User.Password()
		hdr.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+p)))
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: hdr,
	}

	// ctx or ResponseHeaderTimeout, whichever comes first, unblocks the
	// exchange through the connection's deadline.
	conn.SetDeadline(time.Now().Add(opts.ResponseHeaderTimeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	// The answer's head is read through a limit, lifted for the tunnel's
	// bytes after it, as net/http's CONNECT does.
	limit := opts.MaxResponseHeaderBytes
	if limit <= 0 {
		limit = 10 << 20 // net/http's default
	}
	lr := &io.LimitedReader{R: conn, N: limit}
	br := bufio.NewReader(lr)
	err = req.Write(conn)
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil && lr.N == 0 {
		err = fmt.Errorf("head over %d bytes: %w", limit, err)
	}
	lr.N = math.MaxInt64
	if !stop() {
		conn.Close()
		return nil, errorKind(ctx.Err()), ctx.Err()
	}
	if err != nil {
		conn.Close()
		kind := errorKind(err)
		if kind == KindProtocol {
			err = fmt.Errorf("read CONNECT response: %w", err)
		}
		return nil, kind, err
	}
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, KindConnect, fmt.Errorf("%w: %s", ErrConnectRefused, OneLine(resp.Status))
	}
	conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		// The proxy sent tunnel bytes right after its answer: keep them.
		return &bufferedConn{Conn: conn, r: br}, "", nil
	}
	return conn, "", nil
}

// bufferedConn is a connection whose first bytes were read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection underneath (a relay's half-close
// must reach the upstream whether or not bytes came with its answer), or
// closes it when it cannot be half-closed.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
