package profile

import (
	"os"
	"slices"
	"testing"
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
}
