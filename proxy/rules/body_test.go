package rules

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// page is a text body of about 40 KB that compresses well but not absurdly.
func page() []byte {
	var b strings.Builder
	b.WriteString("<html><body><h1>Are you a robot? Solve the captcha</h1>\n")
	for i := 0; b.Len() < 40000; i++ {
		b.WriteString("<p>line ")
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), i%50))
		b.WriteString("</p>\n")
	}
	return []byte(b.String())
}

func TestDecodePrefixEncodings(t *testing.T) {
	body := page()
	for _, tt := range []struct{ header, coding string }{
		{"gzip", "gzip"}, {"x-gzip", "gzip"}, {"GZIP", "gzip"},
		{"deflate", "deflate"}, {"deflate", "rawdeflate"},
		{"br", "br"}, {"zstd", "zstd"}, {" Zstd ", "zstd"},
	} {
		enc := proxytest.Encode(t, tt.coding, body)
		got, err := DecodePrefix(tt.header, enc, len(body)+100)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s (%s): %d bytes, %v; want the %d-byte body", tt.header, tt.coding, len(got), err, len(body))
		}
		got, err = DecodePrefix(tt.header, enc, 1000)
		if err != nil || !bytes.Equal(got, body[:1000]) {
			t.Errorf("%s (%s) limited: %d bytes, %v", tt.header, tt.coding, len(got), err)
		}
	}
}

func TestDecodePrefixIdentity(t *testing.T) {
	body := []byte("plain text body")
	for _, ce := range []string{"", "identity", " identity , ", "IDENTITY"} {
		got, err := DecodePrefix(ce, body, 5)
		if err != nil || string(got) != "plain" {
			t.Errorf("%q: %q, %v", ce, got, err)
		}
		got, err = DecodePrefix(ce, body, 100)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%q: %q, %v", ce, got, err)
		}
	}
}

func TestDecodePrefixStacked(t *testing.T) {
	body := page()
	// "gzip, br": gzip applied first, then br; decoding undoes br, then gzip.
	enc := proxytest.Encode(t, "br", proxytest.Encode(t, "gzip", body))
	got, err := DecodePrefix("gzip, br", enc, 1<<20)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("gzip, br: %d bytes, %v", len(got), err)
	}
	if _, err := DecodePrefix("br, gzip", enc, 1<<20); err == nil {
		t.Error("wrong order decoded without error")
	}
	enc = proxytest.Encode(t, "zstd", proxytest.Encode(t, "deflate", body))
	got, err = DecodePrefix("deflate,identity,zstd", enc, 1<<20)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("deflate, zstd: %d bytes, %v", len(got), err)
	}
	// Split headers are joined with a comma by the caller: same thing.
	enc = proxytest.Encode(t, "gzip", proxytest.Encode(t, "gzip", body))
	got, err = DecodePrefix("gzip, gzip", enc, 100)
	if err != nil || !bytes.Equal(got, body[:100]) {
		t.Errorf("gzip, gzip: %q, %v", got, err)
	}
}

// TestDecodePrefixTruncated: the start of a compressed body decodes to a
// start of the plain body, without error.
func TestDecodePrefixTruncated(t *testing.T) {
	body := page()
	for _, coding := range []string{"gzip", "deflate", "rawdeflate", "br"} {
		header := coding
		if coding == "rawdeflate" {
			header = "deflate"
		}
		enc := proxytest.Encode(t, coding, body)
		for _, cut := range []int{len(enc) / 2, len(enc) - 1, 600} {
			got, err := DecodePrefix(header, enc[:cut], len(body))
			if err != nil {
				t.Errorf("%s cut at %d/%d: %v", coding, cut, len(enc), err)
				continue
			}
			if len(got) == 0 || len(got) >= len(body) && cut < len(enc)-10 || !bytes.Equal(got, body[:len(got)]) {
				t.Errorf("%s cut at %d/%d: %d bytes decoded, not a proper prefix", coding, cut, len(enc), len(got))
			}
		}
		// a cut inside the header gives nothing, and no error
		got, err := DecodePrefix(header, enc[:1], len(body))
		if err != nil || len(got) != 0 {
			t.Errorf("%s cut at 1: %q, %v", coding, got, err)
		}
	}
	// zstd decodes whole blocks only: a body written as several frames
	// yields the complete frames before the cut.
	var buf bytes.Buffer
	for i := 0; i < 4; i++ {
		buf.Write(proxytest.Encode(t, "zstd", body[i*10000:(i+1)*10000]))
	}
	enc := buf.Bytes()
	got, err := DecodePrefix("zstd", enc[:len(enc)*3/4], len(body))
	if err != nil || len(got) < 20000 || !bytes.Equal(got, body[:len(got)]) {
		t.Errorf("zstd cut: %d bytes, %v", len(got), err)
	}
	if got, err := DecodePrefix("zstd", enc[:3], 100); err != nil || len(got) != 0 {
		t.Errorf("zstd cut at 3: %q, %v", got, err)
	}
	// stacked and truncated
	enc = proxytest.Encode(t, "br", proxytest.Encode(t, "gzip", body))
	got, err = DecodePrefix("gzip, br", enc[:len(enc)/2], len(body))
	if err != nil || len(got) == 0 || !bytes.Equal(got, body[:len(got)]) {
		t.Errorf("gzip, br cut: %d bytes, %v", len(got), err)
	}
}

// TestDecodePrefixBomb: a small input expanding to 8 MiB yields limit bytes.
func TestDecodePrefixBomb(t *testing.T) {
	zeros := make([]byte, 1<<20)
	for _, coding := range []string{"gzip", "deflate", "br", "zstd"} {
		var buf bytes.Buffer
		var w interface {
			Write([]byte) (int, error)
			Close() error
		}
		switch coding {
		case "gzip":
			w, _ = gzip.NewWriterLevel(&buf, gzip.BestCompression)
		case "deflate":
			w, _ = zlib.NewWriterLevel(&buf, zlib.BestCompression)
		case "br":
			w = brotli.NewWriterLevel(&buf, 5)
		case "zstd":
			w, _ = zstd.NewWriter(&buf)
		}
		for i := 0; i < 8; i++ { // 8 MiB of zeros, 128 times the limit
			if _, err := w.Write(zeros); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := DecodePrefix(coding, buf.Bytes(), 65536)
		if err != nil || len(got) != 65536 || !bytes.Equal(got, zeros[:65536]) {
			t.Errorf("%s bomb (%d bytes compressed): %d bytes out, %v", coding, buf.Len(), len(got), err)
		}
	}
}

func TestDecodePrefixErrors(t *testing.T) {
	body := []byte("hello hello hello")
	for _, ce := range []string{"compress", "gzip, lzma", "sdch", strings.Repeat("gzip,", 5)} {
		got, err := DecodePrefix(ce, body, 100)
		if !errors.Is(err, ErrUnsupportedEncoding) || len(got) != 0 {
			t.Errorf("%q: %q, %v", ce, got, err)
		}
	}
	// corrupt streams: an error, never a panic
	for _, ce := range []string{"gzip", "deflate", "br", "zstd"} {
		garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 64)
		if _, err := DecodePrefix(ce, garbage, 100); err == nil {
			t.Errorf("%s: garbage decoded without error", ce)
		}
	}
	// a corrupt tail keeps what decoded before it
	enc := proxytest.Encode(t, "gzip", page())
	bad := append([]byte(nil), enc...)
	bad[len(bad)-5] ^= 0xff // break the CRC/size trailer
	got, err := DecodePrefix("gzip", bad, 1<<20)
	if err == nil || len(got) == 0 {
		t.Errorf("corrupt trailer: %d bytes, %v", len(got), err)
	}
	// limits at and below zero
	for _, limit := range []int{0, -1} {
		got, err := DecodePrefix("gzip", enc, limit)
		if err != nil || len(got) != 0 {
			t.Errorf("limit %d: %q, %v", limit, got, err)
		}
		got, err = DecodePrefix("", body, limit)
		if err != nil || len(got) != 0 {
			t.Errorf("identity limit %d: %q, %v", limit, got, err)
		}
	}
}

func TestDecodeTextLike(t *testing.T) {
	for ct, want := range map[string]bool{
		"":                                  true,
		"text/html":                         true,
		"text/html; charset=utf-8":          true,
		"TEXT/PLAIN":                        true,
		"text/css":                          true,
		"application/json":                  true,
		"Application/JSON; charset=utf-8":   true,
		"application/javascript":            true,
		"application/x-javascript":          true,
		"application/xml":                   true,
		"application/problem+json":          true,
		"application/ld+json; profile=x":    true,
		"application/atom+xml":              true,
		"image/svg+xml":                     true,
		"application/x-www-form-urlencoded": true,
		"image/png":                         false,
		"application/octet-stream":          false,
		"video/mp4":                         false,
		"application/pdf":                   false,
		"application/jsonx":                 false,
		"multipart/form-data; boundary=abc": false,
		"application/vnd.ms-excel":          false,
		"  ; charset=utf-8":                 true,
		"application/x-json-but-not-really": false,
	} {
		if got := IsTextLike(ct); got != want {
			t.Errorf("IsTextLike(%q) = %v, want %v", ct, got, want)
		}
	}
}

func FuzzDecodePrefix(f *testing.F) {
	body := []byte("<html>captcha? are you a robot? " + strings.Repeat("la ", 200) + "</html>")
	for _, c := range []string{"gzip", "deflate", "rawdeflate", "br", "zstd"} {
		enc := proxytest.Encode(f, c, body)
		if c == "rawdeflate" {
			c = "deflate"
		}
		f.Add(c, enc, 100)
		f.Add(c, enc[:len(enc)/2], 1000)
	}
	f.Add("gzip, br", proxytest.Encode(f, "br", proxytest.Encode(f, "gzip", body)), 64)
	f.Add("identity", body, 10)
	f.Add("compress", body, 10)
	f.Fuzz(func(t *testing.T, ce string, data []byte, limit int) {
		if limit > 1<<20 {
			limit %= 1 << 20
		}
		got, err := DecodePrefix(ce, data, limit)
		if len(got) > max(limit, 0) {
			t.Fatalf("%d bytes out, limit %d", len(got), limit)
		}
		if err == nil && ce == "" && !bytes.Equal(got, data[:min(len(data), max(limit, 0))]) {
			t.Fatal("identity changed the data")
		}
	})
}

func BenchmarkDecodePrefix(b *testing.B) {
	body := page()
	for _, c := range []string{"gzip", "deflate", "br", "zstd"} {
		enc := proxytest.Encode(b, c, body)
		b.Run(c, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if out, err := DecodePrefix(c, enc, 65536); err != nil || len(out) != len(body) {
					b.Fatal(len(out), err)
				}
			}
		})
	}
}
