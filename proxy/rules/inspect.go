package rules

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
)

// HoldPrefix reads the start of resp's body, at most limit bytes as they
// come off the wire, and puts it back in front of the rest so the client
// still gets every original byte. It is how a rule with retry sees the body
// before the client does. A read error is kept for the client to meet where
// it happened; HoldPrefix returns what was read before it.
func HoldPrefix(resp *http.Response, limit int64) []byte {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	rest := io.Reader(resp.Body)
	if err != nil {
		rest = errReader{err} // the client sees the failure where it happened
	}
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(raw), rest), resp.Body}
	return raw
}

// DecodedBody undoes the Content-Encoding of h on raw, a prefix of its
// response's body, for Outcome.Body: at most limit bytes, never nil (nil
// would mean "not inspected"). What cannot be decoded is matched as far as it
// decoded.
func DecodedBody(h http.Header, raw []byte, limit int64) []byte {
	body, _ := DecodePrefix(strings.Join(h["Content-Encoding"], ", "), raw, int(limit))
	if body == nil {
		body = []byte{}
	}
	return body
}

// InspectBody returns a body that passes rc's bytes on untouched while it
// keeps a copy of the first limit bytes; once it has them, or rc ends or the
// body is closed, it calls decide with the copy (raw, not decoded), exactly
// once, outside its lock and on the goroutine that read or closed. It is how
// a rule without retry sees the body without delaying a single byte. The
// body may be closed while another goroutine reads it.
func InspectBody(rc io.ReadCloser, limit int, decide func(raw []byte)) io.ReadCloser {
	return &inspectingBody{rc: rc, limit: limit, decide: decide}
}

// inspectingBody is the body of InspectBody.
type inspectingBody struct {
	rc     io.ReadCloser
	limit  int
	decide func(raw []byte)

	mu   sync.Mutex // guards buf and done: Close may race a Read
	buf  []byte
	done bool
}

func (b *inspectingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	var raw []byte
	fire := false
	if !b.done {
		take := min(n, b.limit-len(b.buf))
		b.buf = append(b.buf, p[:take]...)
		if len(b.buf) >= b.limit || err != nil {
			raw, fire = b.finishLocked()
		}
	}
	b.mu.Unlock()
	if fire {
		b.decide(raw) // outside the lock: deciding logs
	}
	return n, err
}

func (b *inspectingBody) Close() error {
	err := b.rc.Close()
	b.mu.Lock()
	raw, fire := []byte(nil), false
	if !b.done {
		raw, fire = b.finishLocked()
	}
	b.mu.Unlock()
	if fire {
		b.decide(raw)
	}
	return err
}

func (b *inspectingBody) finishLocked() ([]byte, bool) {
	b.done = true
	raw := b.buf
	b.buf = nil
	return raw, true
}

// readCloser joins a reader to the closer of the body it reads from.
type readCloser struct {
	io.Reader
	io.Closer
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
