package rules

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
)

// encodedSlack is how many bytes past the limit an encoded body's start may
// take to decode limit bytes: a zstd block is decoded whole and may be up
// to 128 KiB long (RFC 8878, 3.1.1.2.4), after a frame header of at most 18
// bytes; gzip, deflate and br decode as they go.
const encodedSlack = 128<<10 + 1<<10

// rawLimit is how many bytes of a body's start, as received, are read at
// most to decode limit bytes of it: limit itself unless the body is
// encoded.
func rawLimit(h http.Header, limit int64) int64 {
	for _, ce := range h["Content-Encoding"] {
		if encs, err := parseEncodings(ce); err != nil || len(encs) > 0 {
			return limit + encodedSlack
		}
	}
	return limit
}

// HoldPrefix reads the start of resp's body, decodes it (DecodedBody) and
// returns at most limit decoded bytes, having put what it read back in
// front of the rest so that the client still gets every original byte. It
// is how a rule with retry sees the body before the client does. For an
// encoded body it reads limit bytes, and more (at most rawLimit) only if
// they decode to fewer than limit. A read error is kept for the client to
// meet where it happened; HoldPrefix decodes what was read before it.
func HoldPrefix(resp *http.Response, limit int64) []byte {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	body := DecodedBody(resp.Header, raw, limit)
	if max := rawLimit(resp.Header, limit); err == nil && int64(len(raw)) == limit && int64(len(body)) < limit && max > limit {
		var more []byte
		more, err = io.ReadAll(io.LimitReader(resp.Body, max-limit))
		raw = append(raw, more...)
		body = DecodedBody(resp.Header, raw, limit)
	}
	rest := io.Reader(resp.Body)
	if err != nil {
		rest = errReader{err} // the client sees the failure where it happened
	}
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(raw), rest), resp.Body}
	return body
}

// DecodedBody undoes the Content-Encoding of h on raw, the start of its
// response's body, for Outcome.Body: at most limit bytes, decoded from at
// most the first rawLimit bytes of raw, never nil (nil would mean "not
// inspected"). What cannot be decoded is matched as far as it decoded.
func DecodedBody(h http.Header, raw []byte, limit int64) []byte {
	raw = raw[:min(int64(len(raw)), rawLimit(h, limit))]
	body, _ := DecodePrefix(strings.Join(h["Content-Encoding"], ", "), raw, int(limit))
	if body == nil {
		body = []byte{}
	}
	return body
}

// InspectBody returns a body that passes rc's bytes on untouched while it
// keeps a copy of their start, decoded as h's Content-Encoding says; once
// limit bytes have decoded, or rc ends or the body is closed, it calls
// decide with the decoded start (DecodedBody), exactly once, outside its
// lock and on the goroutine that read or closed. It is how a rule without
// retry sees the body without delaying a single byte. Like HoldPrefix it
// copies limit bytes, and for an encoded body that decodes to fewer, more
// up to rawLimit. The body may be closed while another goroutine reads it.
func InspectBody(rc io.ReadCloser, h http.Header, limit int64, decide func(body []byte)) io.ReadCloser {
	return &inspectingBody{rc: rc, h: h, limit: limit, max: rawLimit(h, limit), decide: decide}
}

// inspectingBody is the body of InspectBody.
type inspectingBody struct {
	rc     io.ReadCloser
	h      http.Header
	limit  int64 // decoded bytes wanted
	max    int64 // raw bytes copied at most
	decide func(body []byte)

	mu      sync.Mutex // guards the fields below: Close may race a Read
	buf     []byte
	checked bool // the first limit bytes of an encoded body were decoded
	done    bool
}

func (b *inspectingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return n, err
	}
	take := min(int64(n), b.max-int64(len(b.buf)))
	b.buf = append(b.buf, p[:take]...)
	var raw []byte
	switch {
	case int64(len(b.buf)) >= b.max || err != nil:
		raw = b.finishLocked()
	case int64(len(b.buf)) >= b.limit && !b.checked:
		// Encoded: if the copy so far decodes to limit bytes, that
		// is enough. Appends only write past len, so the copy's
		// start stays as it is while the lock is let go.
		b.checked = true
		start := b.buf
		b.mu.Unlock()
		body := DecodedBody(b.h, start, b.limit)
		if int64(len(body)) < b.limit {
			return n, err
		}
		b.mu.Lock()
		if b.done { // closed meanwhile, and decided on
			b.mu.Unlock()
			return n, err
		}
		b.finishLocked()
		b.mu.Unlock()
		b.decide(body)
		return n, err
	default:
		b.mu.Unlock()
		return n, err
	}
	b.mu.Unlock()
	b.decide(DecodedBody(b.h, raw, b.limit)) // outside the lock: deciding logs
	return n, err
}

func (b *inspectingBody) Close() error {
	err := b.rc.Close()
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return err
	}
	raw := b.finishLocked()
	b.mu.Unlock()
	b.decide(DecodedBody(b.h, raw, b.limit))
	return err
}

// finishLocked marks the body decided on and returns the copy.
func (b *inspectingBody) finishLocked() []byte {
	b.done = true
	raw := b.buf
	b.buf = nil
	return raw
}

// readCloser joins a reader to the closer of the body it reads from.
type readCloser struct {
	io.Reader
	io.Closer
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
