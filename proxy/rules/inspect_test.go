package rules

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// wordy is n bytes of text that compresses about twofold: a zstd encoder
// writes it as blocks whose compressed size is far past a small limit.
func wordy(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 0, n+16)
	b = append(b, "captcha "...)
	for len(b) < n {
		b = append(b, byte('a'+r.IntN(26)))
		if r.IntN(7) == 0 {
			b = append(b, ' ')
		}
	}
	return b[:n]
}

// encodedCase is a body whose first limit bytes, decoded, the body
// inspectors must see, whatever its encoding.
type encodedCase struct {
	name        string
	header      http.Header // its Content-Encoding, if any
	plain, wire []byte
}

// encodedCases is one body as identity, gzip, br and zstd.
func encodedCases(t *testing.T) []encodedCase {
	plain := wordy(200 << 10)
	out := []encodedCase{{"identity", http.Header{}, plain, plain}}
	for _, c := range []string{"gzip", "br", "zstd"} {
		out = append(out, encodedCase{c, http.Header{"Content-Encoding": {c}}, plain, proxytest.Encode(t, c, plain)})
	}
	return out
}

// The limit counts decoded bytes (proxy.md: "the first body_limit bytes
// after undoing Content-Encoding"): a zstd block longer than the limit is
// held whole, and the client still gets every byte as sent.
func TestHoldPrefixDecodesTheLimit(t *testing.T) {
	const limit = 4096
	for _, c := range encodedCases(t) {
		t.Run(c.name, func(t *testing.T) {
			resp := &http.Response{Header: c.header, Body: io.NopCloser(bytes.NewReader(c.wire))}
			got := HoldPrefix(resp, limit)
			if !bytes.Equal(got, c.plain[:limit]) {
				t.Errorf("decoded %d bytes, want the body's first %d", len(got), limit)
			}
			all, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(all, c.wire) {
				t.Errorf("client got %d bytes (%v), want the %d sent", len(all), err, len(c.wire))
			}
		})
	}
}

func TestInspectBodyDecodesTheLimit(t *testing.T) {
	const limit = 4096
	for _, c := range encodedCases(t) {
		t.Run(c.name, func(t *testing.T) {
			var got []byte
			calls := 0
			body := InspectBody(io.NopCloser(bytes.NewReader(c.wire)), c.header, limit, func(b []byte) {
				calls++
				got = b
			})
			all, err := io.ReadAll(body)
			body.Close()
			if err != nil || !bytes.Equal(all, c.wire) {
				t.Errorf("client got %d bytes (%v), want the %d sent", len(all), err, len(c.wire))
			}
			if calls != 1 || !bytes.Equal(got, c.plain[:limit]) {
				t.Errorf("decide called %d times with %d bytes, want once with the body's first %d", calls, len(got), limit)
			}
		})
	}
}

// A short body, or one closed early, is decided on what came.
func TestInspectBodyDecidesOnWhatCame(t *testing.T) {
	plain := []byte("are you a robot? solve the captcha")
	wire := proxytest.Encode(t, "zstd", plain)
	h := http.Header{"Content-Encoding": {"zstd"}}
	var got []byte
	body := InspectBody(io.NopCloser(bytes.NewReader(wire)), h, 4096, func(b []byte) { got = b })
	if _, err := io.ReadAll(body); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Errorf("decided on %q, want %q", got, plain)
	}

	got = nil
	fired := false
	body = InspectBody(io.NopCloser(bytes.NewReader(wordy(10000))), http.Header{}, 4096, func(b []byte) { got, fired = b, true })
	body.Read(make([]byte, 100))
	body.Close()
	if !fired || len(got) != 100 {
		t.Errorf("closed after 100 bytes: decided %v on %d bytes, want on 100", fired, len(got))
	}
}
