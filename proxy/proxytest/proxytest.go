// Package proxytest is the proxy packages' shared test helpers: real TLS
// with CAs made in the test, real upstream proxies (goproxy over HTTP and
// HTTPS, SOCKS5 via armon/go-socks5) and origins, all on 127.0.0.1 with
// ports from :0, all stopped by t.Cleanup; and bodies compressed with the
// content codings the proxy undoes (Encode). Only tests import it.
package proxytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	socks5 "github.com/armon/go-socks5"
	"github.com/elazarl/goproxy"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// NewCA makes a throwaway ECDSA P-256 CA. It returns the CA certificate
// and its PKCS#8 key as PEM, and a pool holding only that CA (what a client
// trusting it would use as RootCAs).
func NewCA(t testing.TB) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "test CA " + t.Name()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), pool
}

// NewLeaf signs a server certificate for hosts (DNS names or IPs) with
// the CA from NewCA, ready for a tls.Config.
func NewLeaf(t testing.TB, caCertPEM, caKeyPEM []byte, hosts ...string) tls.Certificate {
	t.Helper()
	caPair, err := tls.X509KeyPair(caCertPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caPair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, caCert.Raw}, PrivateKey: key}
}

// StartTLSOrigin serves handler over TLS on 127.0.0.1 with a certificate
// (for 127.0.0.1 and localhost) from a CA made for it, HTTP/1.1 and HTTP/2.
// roots holds only that CA: a client verifying with it trusts the origin.
func StartTLSOrigin(t testing.TB, handler http.Handler) (srv *httptest.Server, roots *x509.CertPool) {
	t.Helper()
	caPEM, keyPEM, pool := NewCA(t)
	srv = httptest.NewUnstartedServer(handler)
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = DiscardLog()
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{NewLeaf(t, caPEM, keyPEM, "127.0.0.1", "localhost")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, pool
}

// StartTLSOriginWithCA is StartTLSOrigin (for 127.0.0.1 only) but returns
// the CA's PEM, so that tests can build pools holding several CAs.
func StartTLSOriginWithCA(t testing.TB, h http.Handler) (*httptest.Server, []byte) {
	t.Helper()
	caPEM, keyPEM, _ := NewCA(t)
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{NewLeaf(t, caPEM, keyPEM, "127.0.0.1")}}
	srv.Config.ErrorLog = DiscardLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, caPEM
}

// OriginConns counts the TCP connections an httptest origin accepts and
// reports each one it closes. Install it with WatchOriginConns before Start.
type OriginConns struct {
	Accepted atomic.Int64
	Closed   chan struct{} // one value per closed connection (buffered)
}

// WatchOriginConns hooks srv.Config.ConnState (call before srv.Start or
// StartTLS) to count accepted connections and signal closed ones.
func WatchOriginConns(srv *httptest.Server) *OriginConns {
	oc := &OriginConns{Closed: make(chan struct{}, 1024)}
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			oc.Accepted.Add(1)
		case http.StateClosed, http.StateHijacked:
			oc.Closed <- struct{}{}
		}
	}
	return oc
}

// connTracking is a listener that remembers its connections so that a
// test server's cleanup can close hijacked ones (goproxy tunnels), which
// httptest.Server.Close does not.
type connTracking struct {
	net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	closed bool // closeAll ran: a connection accepted since is closed at once
}

func (l *connTracking) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.track(c)
	}
	return c, err
}

func (l *connTracking) track(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return
	}
	l.conns = append(l.conns, c)
}

func (l *connTracking) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns, l.closed = nil, true
}

// proxyAuthOK reports whether r carries Proxy-Authorization Basic user:pass
// (always true when user is "").
func proxyAuthOK(r *http.Request, user, pass string) bool {
	if user == "" {
		return true
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	return r.Header.Get("Proxy-Authorization") == want
}

// NewGoproxy returns a goproxy forward proxy that dials directly
// (ignoring *_PROXY variables), logs nothing, requires Proxy-Authorization
// Basic user:pass when user is not "" (407 otherwise), and counts the
// requests and CONNECTs it accepts.
func NewGoproxy(user, pass string, accepted *atomic.Int64) *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = log.New(io.Discard, "", 0)
	gp.Tr = &http.Transport{TLSClientConfig: &tls.Config{}} // origin TLS verified; never used in these tests' tunnels
	gp.ConnectDial = nil
	gp.KeepAcceptEncoding = true
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		if !proxyAuthOK(ctx.Req, user, pass) {
			ctx.Resp = &http.Response{
				StatusCode: http.StatusProxyAuthRequired,
				Status:     "407 Proxy Authentication Required",
				ProtoMajor: 1, ProtoMinor: 1,
				Header:  http.Header{"Proxy-Authenticate": {`Basic realm="upstream"`}},
				Body:    http.NoBody,
				Request: ctx.Req,
			}
			return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, host
		}
		accepted.Add(1)
		return &goproxy.ConnectAction{Action: goproxy.ConnectAccept}, host
	})
	gp.OnRequest().DoFunc(func(r *http.Request, _ *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		if !proxyAuthOK(r, user, pass) {
			return r, goproxy.NewResponse(r, "text/plain", http.StatusProxyAuthRequired, "proxy authentication required\n")
		}
		accepted.Add(1)
		return r, nil
	})
	return gp
}

// StartGoproxyUpstream runs a goproxy upstream proxy on 127.0.0.1 (plain
// HTTP; CONNECT tunnels are not intercepted). With a non-empty user it
// wants Proxy-Authorization Basic user:pass on requests and CONNECTs and
// answers 407 otherwise. proxyURL carries the credentials
// ("http://user:pass@127.0.0.1:PORT"); count returns how many requests and
// CONNECTs it accepted.
func StartGoproxyUpstream(t testing.TB, user, pass string) (proxyURL string, count func() int) {
	t.Helper()
	var accepted atomic.Int64
	addr := serveTracked(t, NewGoproxy(user, pass, &accepted))
	return "http://" + Userinfo(user, pass) + addr, func() int { return int(accepted.Load()) }
}

// serveTracked serves h over plain HTTP on 127.0.0.1 until the test ends,
// when it closes every connection (hijacked tunnels too), and returns its
// address.
func serveTracked(t testing.TB, h http.Handler) string {
	srv := httptest.NewUnstartedServer(h)
	ln := &connTracking{Listener: srv.Listener}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		ln.closeAll()
	})
	return ln.Addr().String()
}

// StartNamingUpstream is StartGoproxyUpstream (no credentials) that connects
// every host name ending in ".test" to 127.0.0.1, keeping the port: the DNS
// of tests that need several site names on one loopback origin
// ("http://shop.a.test:PORT/" reaches the origin on 127.0.0.1:PORT).
func StartNamingUpstream(t testing.TB) (proxyURL string, count func() int) {
	t.Helper()
	var accepted atomic.Int64
	gp := NewGoproxy("", "", &accepted)
	var d net.Dialer
	gp.Tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".test") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	return "http://" + serveTracked(t, gp), func() int { return int(accepted.Load()) }
}

// StartHTTPSGoproxyUpstream is StartGoproxyUpstream served over TLS (an
// https:// upstream) with a certificate for 127.0.0.1 from a CA made for
// it; roots holds only that CA.
func StartHTTPSGoproxyUpstream(t testing.TB, user, pass string) (proxyURL string, roots *x509.CertPool, count func() int) {
	t.Helper()
	var accepted atomic.Int64
	caPEM, keyPEM, pool := NewCA(t)
	srv := httptest.NewUnstartedServer(NewGoproxy(user, pass, &accepted))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{NewLeaf(t, caPEM, keyPEM, "127.0.0.1")}}
	srv.Config.ErrorLog = DiscardLog()
	ln := &connTracking{Listener: srv.Listener}
	srv.Listener = ln
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		ln.closeAll()
	})
	return "https://" + Userinfo(user, pass) + ln.Addr().String(), pool,
		func() int { return int(accepted.Load()) }
}

// Userinfo returns "user:pass@" for a URL's authority, or "" when user is
// "".
func Userinfo(user, pass string) string {
	if user == "" {
		return ""
	}
	return user + ":" + pass + "@"
}

// StartSOCKS5 runs an armon/go-socks5 server on 127.0.0.1; with a non-empty
// user it wants username/password authentication with user:pass. addr is
// its host:port (use "socks5://[user:pass@]"+addr); count returns how many
// connections it opened to targets for its clients.
func StartSOCKS5(t testing.TB, user, pass string) (addr string, count func() int) {
	t.Helper()
	var dials atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tracked := &connTracking{Listener: ln}
	conf := &socks5.Config{
		Logger: log.New(io.Discard, "", 0),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				dials.Add(1)
				tracked.track(c)
			}
			return c, err
		},
	}
	if user != "" {
		conf.Credentials = socks5.StaticCredentials{user: pass}
	}
	srv, err := socks5.New(conf)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // accept loop: ends when the listener closes
		defer wg.Done()
		for {
			c, err := tracked.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		tracked.closeAll()
		wg.Wait()
	})
	return ln.Addr().String(), func() int { return int(dials.Load()) }
}

// DiscardLog returns a logger for test servers that discards their lines
// (expected TLS failures).
func DiscardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// ClosedPort returns a 127.0.0.1 address nothing listens on.
func ClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// ServeConns accepts connections on 127.0.0.1 and serves each with handle
// in a goroutine of its own until the test ends; cleanup closes the
// listener and every connection, then waits for the handlers. It returns
// the listener's address.
func ServeConns(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tracked := &connTracking{Listener: ln}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tracked.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		tracked.closeAll()
		wg.Wait()
	})
	return ln.Addr().String()
}

// SilentServer accepts connections on 127.0.0.1 and never answers (for
// timeouts); its connections are closed by cleanup.
func SilentServer(t testing.TB) string {
	t.Helper()
	return ServeConns(t, func(net.Conn) {})
}

// GetThrough sends GET url with transport tr and returns the status and body.
func GetThrough(t testing.TB, tr http.RoundTripper, url string) (int, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// AssertNoSecret fails when s contains secret.
func AssertNoSecret(t testing.TB, s, secret string) {
	t.Helper()
	if strings.Contains(s, secret) {
		t.Errorf("%q contains the secret %q", s, secret)
	}
}

// SameCookie reports whether a and b are the same cookie: every field equal,
// Expires as an instant (time.Time's == would compare locations too).
func SameCookie(a, b sessionpool.Cookie) bool {
	return a.Name == b.Name && a.Value == b.Value && a.Domain == b.Domain && a.Path == b.Path &&
		a.HostOnly == b.HostOnly && a.Secure == b.Secure && a.HTTPOnly == b.HTTPOnly &&
		a.SameSite == b.SameSite && a.Expires.Equal(b.Expires)
}
