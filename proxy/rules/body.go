package rules

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// ErrUnsupportedEncoding is returned (wrapped) by DecodePrefix for a
// Content-Encoding it cannot undo.
var ErrUnsupportedEncoding = errors.New("rules: unsupported content encoding")

// maxEncodings bounds how many stacked encodings DecodePrefix undoes.
const maxEncodings = 4

// zstdMaxWindow bounds the memory a zstd stream may ask for (RFC 8878
// recommends decoders support 8 MiB windows; HTTP's zstd uses at most 8 MiB).
const zstdMaxWindow = 8 << 20

// DecodePrefix undoes contentEncoding (a Content-Encoding header value:
// gzip or x-gzip, deflate (zlib-wrapped or raw, as browsers accept), br,
// zstd, identity; stacked ones like "gzip, br" are undone in reverse order)
// on prefix, the start of a body, and returns at most limit decoded bytes.
//
// A truncated prefix decodes as far as it goes: that is not an error. The
// output never exceeds limit (limit <= 0 gives an empty result), whatever the
// compression ratio. An unknown encoding gives an error wrapping
// ErrUnsupportedEncoding and no output; a corrupt stream gives what decoded
// before the corruption along with the error. For identity alone the result
// shares memory with prefix. DecodePrefix is safe for concurrent use.
func DecodePrefix(contentEncoding string, prefix []byte, limit int) ([]byte, error) {
	if limit < 0 {
		limit = 0
	}
	encs, err := parseEncodings(contentEncoding)
	if err != nil {
		return nil, err
	}
	if len(encs) == 0 {
		return prefix[:min(len(prefix), limit)], nil
	}
	var r io.Reader = &sliceReader{b: prefix}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for i := len(encs) - 1; i >= 0; i-- {
		next, closer, err := newDecoder(encs[i], r)
		if err != nil {
			if truncated(err) {
				return []byte{}, nil
			}
			return []byte{}, fmt.Errorf("decode %s: %w", encs[i], err)
		}
		if closer != nil {
			closers = append(closers, closer)
		}
		r = next
	}
	out := make([]byte, 0, min(limit, 4096+4*len(prefix)))
	for len(out) < limit {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, err := r.Read(out[len(out):min(cap(out), limit)])
		out = out[:len(out)+n]
		if err == io.EOF || (err != nil && truncated(err)) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("decode %s: %w", contentEncoding, err)
		}
	}
	return out, nil
}

// truncated reports whether err means the input ended early.
func truncated(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// sliceReader reads a byte slice. Unlike bytes.Reader it is not an
// io.ByteReader, so flate reads through its own buffering either way.
type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// parseEncodings splits a Content-Encoding value into lower-case codings,
// dropping identity; unknown ones are an error.
func parseEncodings(ce string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(ce, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		switch e {
		case "", "identity":
			continue
		case "x-gzip":
			e = "gzip"
		case "gzip", "deflate", "br", "zstd":
		default:
			if len(e) > 40 {
				e = e[:40] + "..."
			}
			return nil, fmt.Errorf("decode %q: %w", e, ErrUnsupportedEncoding)
		}
		if len(out) == maxEncodings {
			return nil, fmt.Errorf("decode: more than %d stacked encodings: %w", maxEncodings, ErrUnsupportedEncoding)
		}
		out = append(out, e)
	}
	return out, nil
}

// supportedEncodings reports whether DecodePrefix can undo ce.
func supportedEncodings(ce string) bool {
	_, err := parseEncodings(ce)
	return err == nil
}

// newDecoder returns a reader undoing enc on r and, when it holds
// resources, a function releasing them.
func newDecoder(enc string, r io.Reader) (io.Reader, func(), error) {
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, nil, nil
	case "deflate":
		br := bufio.NewReader(r)
		if hdr, _ := br.Peek(2); len(hdr) == 2 && isZlibHeader(hdr[0], hdr[1]) {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, nil, err
			}
			return zr, nil, nil
		}
		fr := flate.NewReader(br)
		return fr, func() { fr.Close() }, nil
	case "br":
		return brotli.NewReader(r), nil, nil
	case "zstd":
		zr, err := zstd.NewReader(r,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(zstdMaxWindow*2))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return nil, nil, fmt.Errorf("%q: %w", enc, ErrUnsupportedEncoding)
}

// isZlibHeader reports whether two bytes start a zlib stream (RFC 1950):
// method deflate, window at most 32 KiB, check bits valid.
func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}

// IsTextLike reports whether a body of this Content-Type is inspected by
// body rules: text/*, JSON, JavaScript, XML (and +json, +xml types), form
// data. An empty Content-Type counts as text-like: a server that does not
// say what it sends is inspected (a body rule then simply fails to match
// binary data); there is no sniffing. Parameters (charset) are ignored.
func IsTextLike(contentType string) bool {
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	if mt == "" {
		return true
	}
	if len(mt) >= 5 && strings.EqualFold(mt[:5], "text/") {
		return true
	}
	for _, t := range [...]string{"application/json", "application/javascript", "application/x-javascript",
		"application/ecmascript", "application/xml", "application/x-www-form-urlencoded"} {
		if strings.EqualFold(mt, t) {
			return true
		}
	}
	if len(mt) > 5 {
		tail := mt[len(mt)-5:]
		if strings.EqualFold(tail, "+json") || strings.EqualFold(tail[1:], "+xml") {
			return true
		}
	}
	return false
}
