package profile

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	utls "github.com/refraction-networking/utls"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// shape is what a ClientHello asks for, without what changes on every
// connection (randoms, keys, GREASE values, padding length, session IDs).
func shape(t *testing.T, hello []byte) string {
	t.Helper()
	spec, err := (&utls.Fingerprinter{AllowBluntMimicry: true}).FingerprintClientHello(hello)
	if err != nil {
		t.Fatalf("parse hello: %v", err)
	}
	s := fmt.Sprintf("suites %x\n", spec.CipherSuites)
	for _, e := range spec.Extensions {
		switch e := e.(type) {
		case *utls.GenericExtension:
			s += fmt.Sprintf("generic %d %x\n", e.Id, e.Data)
		case *utls.UtlsPaddingExtension, *utls.UtlsGREASEExtension, *utls.GREASEEncryptedClientHelloExtension:
			s += fmt.Sprintf("%T\n", e)
		case *utls.SNIExtension:
			s += "sni\n"
		case *utls.KeyShareExtension:
			groups := []utls.CurveID{}
			for _, k := range e.KeyShares {
				groups = append(groups, k.Group)
			}
			s += fmt.Sprintf("keyshare %v\n", groups)
		default:
			s += fmt.Sprintf("%T %+v\n", e, e)
		}
	}
	return s
}

// captureHello runs a TLS server that keeps the ClientHello records of its
// one connection and completes the handshake offering h2 and http/1.1,
// with curves as its key exchange preferences (none: Go's).
func captureHello(t *testing.T, curves ...tls.CurveID) (addr string, roots *utls.Config, hello <-chan []byte) {
	t.Helper()
	caPEM, keyPEM, pool := proxytest.NewCA(t)
	leaf := proxytest.NewLeaf(t, caPEM, keyPEM, "origin.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		rec := &recording{Conn: c}
		cfg := &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: []string{"h2", "http/1.1"}, CurvePreferences: curves}
		cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			ch <- slices.Clone(rec.buf)
			return nil, nil
		}
		tls.Server(rec, cfg).Handshake()
	}()
	return ln.Addr().String(), &utls.Config{ServerName: "origin.test", RootCAs: pool}, ch
}

type recording struct {
	net.Conn
	buf []byte
}

func (r *recording) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// TestHandshakeSendsTheHello: the origin receives a ClientHello of the same
// shape as the one given, for each profile's data, and the handshake
// completes, verified, with the protocol the hello offered first.
func TestHandshakeSendsTheHello(t *testing.T) {
	for _, name := range []string{"chrome", "firefox", "safari"} {
		t.Run(name, func(t *testing.T) {
			hello, err := os.ReadFile("data/" + name + ".hello")
			if err != nil {
				t.Fatal(err)
			}
			addr, cfg, got := captureHello(t)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			uc, err := Handshake(context.Background(), conn, hello, cfg)
			if err != nil {
				t.Fatalf("Handshake: %v", err)
			}
			if p := uc.ConnectionState().NegotiatedProtocol; p != "h2" {
				t.Errorf("negotiated %q, want h2", p)
			}
			if want, sent := shape(t, hello), shape(t, <-got); want != sent {
				t.Errorf("the origin got\n%s\nwant\n%s", sent, want)
			}
		})
	}
}

// TestHandshakeVerifies: an origin whose certificate the roots do not
// vouch for fails the handshake.
func TestHandshakeVerifies(t *testing.T) {
	hello, err := os.ReadFile("data/chrome.hello")
	if err != nil {
		t.Fatal(err)
	}
	addr, cfg, _ := captureHello(t)
	cfg.RootCAs = nil // the system roots: not the test's CA
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := Handshake(context.Background(), conn, hello, cfg); err == nil {
		t.Fatal("Handshake with an untrusted certificate succeeded")
	}
}

func TestHandshakeRefusesGarbage(t *testing.T) {
	for _, hello := range [][]byte{nil, []byte("GET / HTTP/1.1\r\n\r\n"), {0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0}} {
		c1, c2 := net.Pipe()
		_, err := Handshake(context.Background(), c1, hello, &utls.Config{ServerName: "x"})
		c1.Close()
		c2.Close()
		if err == nil {
			t.Errorf("Handshake(%q) succeeded", hello)
		}
	}
}

// TestHandshakeResumes: a second connection with the same session cache
// resumes the first one's TLS session, as a browser does; one with another
// cache does not. The ticket comes after the handshake, whose ephemeral
// keys and hellos the connection no longer holds.
func TestHandshakeResumes(t *testing.T) {
	caPEM, keyPEM, pool := proxytest.NewCA(t)
	leaf := proxytest.NewLeaf(t, caPEM, keyPEM, "origin.test")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				c.Write([]byte("x")) // the ticket comes after the handshake
				io.Copy(io.Discard, c)
			}()
		}
	}()
	hello, err := os.ReadFile("data/chrome.hello")
	if err != nil {
		t.Fatal(err)
	}
	connect := func(cache utls.ClientSessionCache) bool {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		uc, err := Handshake(context.Background(), conn, hello, &utls.Config{ServerName: "origin.test", RootCAs: pool, ClientSessionCache: cache})
		if err != nil {
			t.Fatalf("Handshake: %v", err)
		}
		if k := uc.HandshakeState.State13.KeyShareKeys; k != nil {
			t.Errorf("the handshake's ephemeral private keys outlive it: %+v", k)
		}
		io.ReadFull(uc, make([]byte, 1)) // reads the ticket, after the handshake's state is gone
		return uc.ConnectionState().DidResume
	}
	mine, other := utls.NewLRUClientSessionCache(4), utls.NewLRUClientSessionCache(4)
	if connect(mine) {
		t.Fatal("the first connection resumed")
	}
	if !connect(mine) {
		t.Error("the second connection with the same cache did not resume")
	}
	if connect(other) {
		t.Error("a connection with another cache resumed")
	}
}

// TestHandshakeNeverSendsTheClientsTicket: a client's hello that resumes a
// session (its pre_shared_key holds a ticket it got from someone else: for
// the proxy, from the proxy itself) goes out without that key when the
// session's own cache holds none.
func TestHandshakeNeverSendsTheClientsTicket(t *testing.T) {
	caPEM, keyPEM, pool := proxytest.NewCA(t)
	leaf := proxytest.NewLeaf(t, caPEM, keyPEM, "origin.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hellos := make(chan []byte, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rec := &recording{Conn: c}
				cfg := &tls.Config{Certificates: []tls.Certificate{leaf}}
				cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
					hellos <- slices.Clone(rec.buf)
					return nil, nil
				}
				tc := tls.Server(rec, cfg)
				if tc.Handshake() == nil {
					tc.Write([]byte("x")) // the ticket comes after the handshake
					io.Copy(io.Discard, tc)
				}
			}()
		}
	}()
	hasPSK := func(hello []byte) bool {
		spec, err := (&utls.Fingerprinter{AllowBluntMimicry: true}).FingerprintClientHello(hello)
		if err != nil {
			t.Fatalf("parse hello: %v", err)
		}
		for _, e := range spec.Extensions {
			switch e.(type) {
			case *utls.FakePreSharedKeyExtension, *utls.UtlsPreSharedKeyExtension:
				return true
			}
		}
		return false
	}
	// A Go client connects twice; its second hello resumes with a ticket.
	goCfg := &tls.Config{RootCAs: pool, ServerName: "origin.test", ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	for range 2 {
		c, err := tls.Dial("tcp", ln.Addr().String(), goCfg)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(c, make([]byte, 1))
		c.Close()
	}
	<-hellos
	resumed := <-hellos
	if !hasPSK(resumed) {
		t.Fatal("the Go client's second hello has no pre_shared_key: nothing to test")
	}
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := Handshake(context.Background(), conn, resumed, &utls.Config{ServerName: "origin.test", RootCAs: pool,
		ClientSessionCache: utls.NewLRUClientSessionCache(4)}); err != nil {
		t.Fatalf("Handshake: %v", err)
	}
	if hasPSK(<-hellos) {
		t.Error("the session sent a pre_shared_key: the client's ticket went on")
	}
}

// handshakeWith runs Handshake with hello against a captureHello origin
// (curves: its preferences) and returns what the origin received, or
// Handshake's error.
func handshakeWith(t *testing.T, hello []byte, curves ...tls.CurveID) (sent []byte, err error) {
	t.Helper()
	addr, cfg, got := captureHello(t, curves...)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := Handshake(context.Background(), conn, hello, cfg); err != nil {
		return nil, err
	}
	return <-got, nil
}

// TestHandshakeOneX25519KeyLikeGo: Go's crypto/tls sends one X25519 key in
// both its X25519MLKEM768 and its X25519 key shares; a mirrored Go hello
// does too, and the handshake completes whichever share the origin takes.
// A browser's hello, with two keys, keeps two.
func TestHandshakeOneX25519KeyLikeGo(t *testing.T) {
	addr, cfg, got := captureHello(t)
	goConn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "origin.test", RootCAs: cfg.RootCAs})
	if err != nil {
		t.Fatal(err)
	}
	goConn.Close()
	goHello := <-got
	if hybrid, plain := x25519Keys(goHello); hybrid == nil || !bytes.Equal(hybrid, plain) {
		t.Fatalf("Go's own hello: X25519 keys %x and %x, want one key in both shares", hybrid, plain)
	}
	for _, tc := range []struct {
		name   string
		curves []tls.CurveID
	}{
		{"origin takes X25519MLKEM768", nil},
		{"origin takes X25519", []tls.CurveID{tls.X25519}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A wrong private key for the share the origin takes fails
			// the handshake (the Finished messages do not verify).
			sent, err := handshakeWith(t, goHello, tc.curves...)
			if err != nil {
				t.Fatalf("Handshake: %v", err)
			}
			hybrid, plain := x25519Keys(sent)
			if hybrid == nil || !bytes.Equal(hybrid, plain) {
				t.Errorf("sent X25519 keys %x and %x, want one key in both shares", hybrid, plain)
			}
			if own, _ := x25519Keys(goHello); bytes.Equal(own, hybrid) {
				t.Errorf("the client's own key was sent on")
			}
		})
	}
	t.Run("chrome keeps two keys", func(t *testing.T) {
		sent, err := handshakeWith(t, hello("chrome"))
		if err != nil {
			t.Fatalf("Handshake: %v", err)
		}
		if hybrid, plain := x25519Keys(sent); hybrid == nil || plain == nil || bytes.Equal(hybrid, plain) {
			t.Errorf("sent X25519 keys %x and %x, want two keys as Chrome sends", hybrid, plain)
		}
	})
}

// withExtension returns hello (one record) with ext (type, length, data)
// put first in its extension list, the lengths fixed up.
func withExtension(t *testing.T, hello, ext []byte) []byte {
	t.Helper()
	i := 5 + 4 + 2 + 32                                 // record and handshake headers, version, random
	i += 1 + int(hello[i])                              // session ID
	i += 2 + (int(hello[i])<<8 | int(hello[i+1]))       // cipher suites
	i += 1 + int(hello[i])                              // compression methods
	out := slices.Concat(hello[:i+2], ext, hello[i+2:]) // after the extensions' length
	grow := func(at, size int) {
		n := 0
		for k := range size {
			n = n<<8 | int(out[at+k])
		}
		n += len(ext)
		for k := size - 1; k >= 0; k-- {
			out[at+k], n = byte(n), n>>8
		}
	}
	grow(3, 2) // the record's length
	grow(6, 3) // the handshake message's
	grow(i, 2) // the extensions'
	return out
}

// TestReadHelloRefusesWhatUTLSCannotBuild: a hello with a second
// session_ticket extension, or with its pre_shared_key not last, is an
// error, not a spec uTLS panics on.
func TestReadHelloRefusesWhatUTLSCannotBuild(t *testing.T) {
	chrome := hello("chrome")
	if _, err := readHello(withExtension(t, chrome, []byte{0x01, 0x23, 0, 0})); err != nil {
		t.Fatalf("a harmless unknown extension: %v", err)
	}
	for name, ext := range map[string][]byte{
		"second session_ticket":   {0x00, 0x23, 0, 0},
		"pre_shared_key not last": {0x00, 0x29, 0, 11, 0, 4, 0, 1, 0xaa, 0, 0, 0, 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			b := withExtension(t, chrome, ext)
			if _, err := readHello(b); err == nil {
				t.Fatal("readHello took it")
			}
			if _, err := handshakeWith(t, b); !errors.Is(err, ErrHello) {
				t.Fatalf("Handshake: %v, want ErrHello", err)
			}
		})
	}
}

// TestHandshakeALPSFollowsALPN: protocols given for the ALPN (a
// WebSocket's http/1.1 alone) leave Chrome's ALPS (application settings)
// only for those of them it offered, and the extension out when none is
// left: Chrome offers ALPS for protocols of its ALPN alone.
func TestHandshakeALPSFollowsALPN(t *testing.T) {
	for _, tc := range []struct {
		protos, wantALPS []string
	}{
		{[]string{"http/1.1"}, nil},
		{[]string{"h2", "http/1.1"}, []string{"h2"}},
	} {
		addr, cfg, got := captureHello(t)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cfg.NextProtos = tc.protos
		if _, err := Handshake(context.Background(), conn, hello("chrome"), cfg); err != nil {
			t.Fatalf("%q: Handshake: %v", tc.protos, err)
		}
		conn.Close()
		spec, err := readHello(<-got)
		if err != nil {
			t.Fatal(err)
		}
		var alpn, alps []string
		for _, e := range spec.Extensions {
			switch e := e.(type) {
			case *utls.ALPNExtension:
				alpn = e.AlpnProtocols
			case *utls.ApplicationSettingsExtensionNew:
				alps = e.SupportedProtocols
			case *utls.ApplicationSettingsExtension:
				alps = e.SupportedProtocols
			}
		}
		if !slices.Equal(alpn, tc.protos) || !slices.Equal(alps, tc.wantALPS) {
			t.Errorf("ALPN %q: the hello offers ALPN %q and ALPS %q, want ALPS %q", tc.protos, alpn, alps, tc.wantALPS)
		}
	}
}

// TestProfileHandshakePermutes: the chrome profile's connections send its
// extensions in a new order each, as Chrome does since version 110: the
// same extensions with the same data, GREASE and padding in their places;
// a hello given to Handshake (a client's own) keeps its order.
func TestProfileHandshakePermutes(t *testing.T) {
	chrome := Profiles()[Chrome]
	lines := func(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }
	want := lines(shape(t, chrome.Hello))
	fixed := func(l string) bool { return l == "*tls.UtlsGREASEExtension" || l == "*tls.UtlsPaddingExtension" }
	send := func(permuted bool) []string {
		addr, cfg, got := captureHello(t)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if permuted {
			_, err = chrome.Handshake(context.Background(), conn, cfg)
		} else {
			_, err = Handshake(context.Background(), conn, chrome.Hello, cfg)
		}
		if err != nil {
			t.Fatalf("Handshake: %v", err)
		}
		return lines(shape(t, <-got))
	}
	if sent := send(false); !slices.Equal(sent, want) {
		t.Errorf("a hello given as it is went out as\n%s\nwant\n%s", strings.Join(sent, "\n"), strings.Join(want, "\n"))
	}
	orders := map[string]bool{}
	for range 4 {
		sent := send(true)
		orders[strings.Join(sent, "\n")] = true
		if !slices.Equal(slices.Sorted(slices.Values(sent)), slices.Sorted(slices.Values(want))) {
			t.Fatalf("the permuted hello is not the same extensions:\n%s\nwant\n%s", strings.Join(sent, "\n"), strings.Join(want, "\n"))
		}
		for i, l := range want {
			if fixed(l) && sent[i] != l {
				t.Errorf("extension %d: %q, want %q in its place", i, sent[i], l)
			}
		}
	}
	if len(orders) == 1 {
		t.Error("four connections of the chrome profile sent one extension order")
	}
}
