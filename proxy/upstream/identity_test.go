package upstream

import (
	"io"
	"net/http"
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
