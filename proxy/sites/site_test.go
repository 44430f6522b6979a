package sites

import (
	"net/netip"
	"strings"
	"testing"
)

func TestOf(t *testing.T) {
	tests := []struct{ host, want string }{
		{"example.com", "example.com"},
		{"www.example.com", "example.com"},
		{"a.b.c.example.com", "example.com"},
		{"WWW.Example.COM", "example.com"},
		{"www.example.com:8443", "example.com"},
		{"www.example.com.", "example.com"},
		{"shop.example.co.uk", "example.co.uk"},
		{"example.co.uk", "example.co.uk"},
		{"co.uk", "co.uk"},                   // a public suffix is its own site
		{"com", "com"},                       // so is a bare TLD
		{"localhost", "localhost"},           // a host without a dot
		{"localhost:8080", "localhost"},      // with a port
		{"foo.github.io", "foo.github.io"},   // github.io is a (private) public suffix
		{"a.foo.github.io", "foo.github.io"}, //
		{"accounts.google.com", "google.com"},
		{"update.googleapis.com", "update.googleapis.com"}, // googleapis.com is on the list's private part
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.1:8080", "127.0.0.1"},
		{"10.1.2.3", "10.1.2.3"}, // not "2.3"
		{"::1", "::1"},
		{"[::1]", "::1"},
		{"[::1]:443", "::1"},
		{"[2001:DB8::1]:443", "2001:db8::1"},
		{"2001:db8:0:0::1", "2001:db8::1"},
		{"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
		{"a..example.com", "a..example.com"}, // empty label: not a domain name, its own site
		{"", ""},
	}
	for _, tt := range tests {
		if got := Of(tt.host); got != tt.want {
			t.Errorf("Of(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestHost(t *testing.T) {
	tests := []struct{ host, want string }{
		{"WWW.Example.com:80", "www.example.com"},
		{"[::1]:80", "::1"},
		{"::1", "::1"},
		{"example.com..", "example.com"},
		{"x", "x"},
	}
	for _, tt := range tests {
		if got := Host(tt.host); got != tt.want {
			t.Errorf("Host(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

func FuzzOf(f *testing.F) {
	for _, s := range []string{"www.example.co.uk:443", "[::1]:80", "co.uk", "10.0.0.1", "a..b", "", ".", "[x", "A.B.C.D.E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		s := Of(host)
		if again := Of(s); again != s {
			t.Fatalf("Of(%q) = %q but Of(%q) = %q", host, s, s, again)
		}
		if strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Fatalf("Of(%q) = %q, not lower case", host, s)
		}
		if a, err := netip.ParseAddr(Host(host)); err == nil && s != a.String() {
			t.Fatalf("Of(%q) = %q, not the IP literal's canonical form %q", host, s, a.String())
		}
		if _, err := netip.ParseAddr(s); err != nil && !strings.HasSuffix(Host(host), s) {
			t.Fatalf("Of(%q) = %q, not a suffix of the host %q", host, s, Host(host))
		}
	})
}
