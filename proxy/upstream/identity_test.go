package upstream

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/profile"
	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// TestMirrorUnusableHello: a mirrored request whose client hello uTLS
// cannot read (or that has none) goes out with the fallback profile's
// hello instead of failing the session; a browser profile's hello is used
// as is, over HTTP/2 when the origin offers it.
func TestMirrorUnusableHello(t *testing.T) {
	var n atomic.Int64
	srv, roots := proxytest.StartTLSOrigin(t, helloHandler(&n))
	ts := newTestTransports(t, Options{RootCAs: roots})
	for _, tc := range []struct {
		name, mode string
		who        *profile.Client
	}{
		{"mirror, unreadable hello", profile.Mirror, &profile.Client{Hello: []byte{0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0}}},
		{"mirror, no hello", profile.Mirror, &profile.Client{}},
		{"mirror, no client", profile.Mirror, nil},
		{"chrome", profile.Chrome, nil},
	} {
		tr, err := ts.Get(tc.name, "", tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if tc.who != nil {
			req = req.WithContext(profile.WithClient(req.Context(), tc.who))
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello HTTP/2.0" { // the fallback is Chrome's hello, which offers h2
			t.Errorf("%s: %q", tc.name, body)
		}
	}
	if _, err := ts.Get("x", "", "netscape"); err == nil {
		t.Error("an unknown fingerprint mode was taken")
	}
}

// TestIdentityPoolKey: a mirroring transport pools by origin and by what
// the client's hello asks for, the latest key kept and used again only for
// the same origin and client; a profile's transport by origin alone.
func TestIdentityPoolKey(t *testing.T) {
	mirror := newIdentityTransport(nil, "", nil, nil, Options{})
	chrome := newIdentityTransport(nil, "", profile.Profiles()[profile.Chrome], nil, Options{})
	noHello := &profile.Client{}
	garbled := &profile.Client{Hello: []byte("not a hello")}
	req := func(url string, c *profile.Client) *http.Request {
		r := httptest.NewRequest(http.MethodGet, url, nil)
		if c != nil {
			r = r.WithContext(profile.WithClient(r.Context(), c))
		}
		return r
	}
	for _, tc := range []struct {
		tr   *identityTransport
		req  *http.Request
		want string
	}{
		{mirror, req("https://a.test/", nil), "https://a.test:443"},
		{mirror, req("https://a.test/x", nil), "https://a.test:443"},
		{mirror, req("https://a.test/", noHello), "https://a.test:443|"},
		{mirror, req("https://a.test/", garbled), "https://a.test:443|" + profile.UnusableKey},
		{mirror, req("https://b.test:8443/", garbled), "https://b.test:8443|" + profile.UnusableKey},
		{mirror, req("http://b.test:8443/", garbled), "http://b.test:8443"},
		{mirror, req("https://a.test/", nil), "https://a.test:443"},
		{chrome, req("https://a.test/", garbled), "https://a.test:443"},
	} {
		if got := tc.tr.key(tc.req); got != tc.want {
			t.Errorf("key(%s, client %v) = %q, want %q", tc.req.URL, profile.ClientFrom(tc.req.Context()) != nil, got, tc.want)
		}
	}
}

// goHello returns the ClientHello record a Go crypto/tls client sends
// with cfg.
func goHello(t *testing.T, cfg *tls.Config) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		head := make([]byte, 5)
		if _, err := io.ReadFull(c, head); err != nil {
			got <- nil
			return
		}
		body := make([]byte, int(head[3])<<8|int(head[4]))
		io.ReadFull(c, body)
		got <- append(head, body...)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	go tls.Client(c, cfg).Handshake()
	defer c.Close()
	return <-got
}

// TestMirrorUnbuildableHello: a hello uTLS reads but cannot build again
// (a Go client preferring SecP256r1MLKEM768 sends a key share of a group
// uTLS lacks) goes out as the fallback's, as one it cannot read does,
// and the client is remembered as such; the request failed with a TLS
// error, and its session was marked bad for it.
func TestMirrorUnbuildableHello(t *testing.T) {
	hello := goHello(t, &tls.Config{ServerName: "origin.test", InsecureSkipVerify: true,
		CurvePreferences: []tls.CurveID{tls.SecP256r1MLKEM768, tls.CurveP256}})
	c := &profile.Client{Hello: hello}
	if c.Key() == profile.UnusableKey {
		t.Fatal("uTLS cannot read the hello: not the case under test")
	}
	var n atomic.Int64
	srv, roots := proxytest.StartTLSOrigin(t, helloHandler(&n))
	ts := newTestTransports(t, Options{RootCAs: roots})
	tr, err := ts.Get("s", "", profile.Mirror)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req = req.WithContext(profile.WithClient(req.Context(), c))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("mirrored request with a readable but unbuildable hello: %v", err)
	}
	resp.Body.Close()
	if !c.Unusable() {
		t.Error("the client whose hello could not be built is not remembered as unusable")
	}
}
