package proxytest

import (
	"crypto/tls"
	"net"
	"os"
	"testing"
)

// TestJA4 checks JA4 against fingerprints measured elsewhere (issue 12 of
// this project, with another tool): headless Chromium 156 and Go 1.26's
// crypto/tls as net/http uses it.
func TestJA4(t *testing.T) {
	chrome, err := os.ReadFile("../profile/data/chrome.hello")
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := net.Pipe()
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 4096)
		n, _ := c2.Read(buf) // the ClientHello record, written at once
		got <- buf[:n]
		c2.Close()
	}()
	tls.Client(c1, &tls.Config{ServerName: "example.com", NextProtos: []string{"h2", "http/1.1"}}).Handshake()
	goHello := <-got
	for _, tc := range []struct {
		name  string
		hello []byte
		want  string
	}{
		{"chromium 156", chrome, "t13d1517h2_8daaf6152771_cb7bf5808d99"},
		{"go crypto/tls", goHello, "t13d1312h2_f57a46bbacb6_ab7e3b40a677"},
	} {
		if ja4, err := JA4(tc.hello); err != nil || ja4 != tc.want {
			t.Errorf("%s: JA4 %q, %v; want %s", tc.name, ja4, err, tc.want)
		}
	}
	for _, bad := range [][]byte{nil, []byte("GET / HTTP/1.1\r\n"), {0x16, 3, 1, 0, 4, 1, 0, 0, 0}, chrome[:100]} {
		if _, err := JA4(bad); err == nil {
			t.Errorf("JA4(%q) succeeded", bad)
		}
	}
}

func FuzzJA4(f *testing.F) {
	if chrome, err := os.ReadFile("../profile/data/chrome.hello"); err == nil {
		f.Add(chrome)
	}
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) { JA4(b) })
}
