package profile

import (
	"net"
	"testing"

	utls "github.com/refraction-networking/utls"
)

// FuzzReadHello: any bytes a client sends as its ClientHello are read into
// a spec uTLS can build, or refused with an error (the look at its key
// shares included): never a panic, which in a tunnel's goroutine would end
// the whole proxy. ApplyPreset is called bare, not through applyPreset's
// recover, so that a panic readHello lets through is found.
func FuzzReadHello(f *testing.F) {
	for _, name := range []string{"chrome", "firefox", "safari"} {
		f.Add(hello(name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ALPN(b)
		shared := sharesX25519(b)
		spec, err := readHello(b)
		if err != nil {
			return
		}
		resumable(spec)
		if shared {
			if _, err := oneX25519Key(spec, nil); err != nil {
				t.Fatal(err)
			}
		}
		c, _ := net.Pipe()
		defer c.Close()
		utls.UClient(c, &utls.Config{ServerName: "origin.test"}, utls.HelloCustom).ApplyPreset(spec)
	})
}
