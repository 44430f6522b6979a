package profile

import (
	"crypto/tls"
	"os"
	"slices"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// TestClientKey: two connections of one TLS stack (other randoms) have one
// key, two stacks two keys, and an unreadable hello UnusableKey; a
// mirrored session pools origin connections by it.
func TestClientKey(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("data/" + name + ".hello")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	chrome, firefox := read("chrome"), read("firefox")
	other := slices.Clone(chrome)
	for i := 11; i < 43; i++ { // record header 5, handshake header 4, version 2, then the random
		other[i] ^= 0xff
	}
	if (&Client{Hello: chrome}).Key() != (&Client{Hello: other}).Key() {
		t.Error("another random gave another key")
	}
	if (&Client{Hello: chrome}).Key() == (&Client{Hello: firefox}).Key() {
		t.Error("Chrome's and Firefox's hellos have one key")
	}
	if k := (&Client{Hello: []byte("GET / HTTP/1.1\r\n")}).Key(); k != UnusableKey {
		t.Errorf("an unreadable hello's key %q, want UnusableKey", k)
	}

	// Over HTTP/2 the preface is part of it.
	chromeH2 := Profiles()[Chrome].H2
	firefoxH2 := Profiles()[Firefox].H2
	h2Key := func(p wire.Preface) string {
		return (&Client{Hello: chrome, H2: func() (wire.Preface, bool) { return p, true }}).Key()
	}
	if h2Key(chromeH2) == h2Key(firefoxH2) || h2Key(chromeH2) != h2Key(chromeH2) || h2Key(chromeH2) == (&Client{Hello: chrome}).Key() {
		t.Error("the HTTP/2 preface does not set the key apart")
	}

	// One stack asking for different things: same extensions, other data.
	goHello := func(cfg *tls.Config) []byte {
		addr, ucfg, got := captureHello(t)
		cfg.ServerName, cfg.RootCAs = "origin.test", ucfg.RootCAs
		if c, err := tls.Dial("tcp", addr, cfg); err == nil {
			c.Close()
		}
		return <-got
	}
	base := (&Client{Hello: goHello(&tls.Config{})}).Key()
	if again := (&Client{Hello: goHello(&tls.Config{})}).Key(); again != base {
		t.Errorf("two connections of Go's crypto/tls have two keys:\n%s\n%s", base, again)
	}
	for name, cfg := range map[string]*tls.Config{
		"curves":      {CurvePreferences: []tls.CurveID{tls.CurveP256}},
		"ALPN":        {NextProtos: []string{"http/1.1"}},
		"max TLS 1.2": {MaxVersion: tls.VersionTLS12},
	} {
		if k := (&Client{Hello: goHello(cfg)}).Key(); k == base {
			t.Errorf("a Go hello with other %s has the default's key %s", name, k)
		}
	}
}
