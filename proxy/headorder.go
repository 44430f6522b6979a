package proxy

import (
	"bytes"
	"strings"
	"sync"

	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// heldSize is the size of the buffers in which a client connection holds
// what is written to it: gathered writes (coalescingConn) and a response
// head being put in order (headOrderer).
const heldSize = 16 << 10

// newHeldBuffers returns a pool of *[heldSize]byte, for one listener's
// connections.
func newHeldBuffers() *sync.Pool {
	return &sync.Pool{New: func() any { return new([heldSize]byte) }}
}

// headOrderer gives an HTTP/1.x client a response's header lines in the
// order and case in which the origin sent them. net/http's server (plain
// HTTP) and goproxy (inside tunnels) write canonical names in sorted order;
// the orderer sits under them, on the client's connection. expect arms it
// with the origin's names (wire.ResponseNames) before a response's head is
// written (a final one, or an interim one passed on); the next head written
// is gathered whole, its lines put back in the origin's order (reorderHead)
// and written with what followed it in the same write. A 100 Continue, the
// server's own answer to the client, passes as it is and the orderer waits
// for the next. A head larger than a held buffer goes as written.
//
// It is used by the goroutine that writes the client's responses, one at a
// time; the zero value passes every write through. A write of continueHead
// alone may come from another goroutine: the connection passes it by.
type headOrderer struct {
	buffers *sync.Pool // of *[heldSize]byte; nil: the orderer never arms
	names   []string   // the next response's names, nil when not armed
	held    []byte     // what has been gathered of its head; from buffers
}

// expect arms o for the next response head written, whose header lines the
// origin sent with these names. nil names disarm it.
func (o *headOrderer) expect(names []string) {
	if o.buffers == nil {
		return
	}
	o.names = names
}

// armed reports whether the next write may be held.
func (o *headOrderer) armed() bool { return o.names != nil || o.held != nil }

// write writes p through w, holding it while it is part of an armed head.
// It reports all of p written unless w fails.
func (o *headOrderer) write(p []byte, w func([]byte) (int, error)) (int, error) {
	n := len(p)
	for o.names != nil {
		if o.held == nil {
			o.held = o.buffers.Get().(*[heldSize]byte)[:0]
		}
		take := min(len(p), cap(o.held)-len(o.held))
		o.held = append(o.held, p[:take]...)
		p = p[take:]
		end := wire.HeadEnd(o.held)
		switch {
		case end < 0 && len(o.held) < cap(o.held):
			return n, nil // the rest of the head is still to come
		case end < 0: // too large to hold: as written
			o.names = nil
			_, err := w(o.held)
			o.release()
			if err != nil {
				return 0, err
			}
		case isContinue(o.held):
			if _, err := w(o.held[:end]); err != nil {
				o.release()
				return 0, err
			}
			o.held = o.held[:copy(o.held, o.held[end:])]
			if len(o.held) == 0 && len(p) == 0 {
				return n, nil // armed still: the head it was armed for is to come
			}
		default:
			out := o.buffers.Get().(*[heldSize]byte)[:0]
			out = reorderHead(out, o.held[:end], o.names)
			out = append(out, o.held[end:]...)
			o.names = nil
			o.release()
			_, err := w(out)
			o.buffers.Put((*[heldSize]byte)(out[:heldSize]))
			if err != nil {
				return 0, err
			}
		}
	}
	if len(p) > 0 {
		if _, err := w(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// release returns the held buffer.
func (o *headOrderer) release() {
	if o.held != nil {
		o.buffers.Put((*[heldSize]byte)(o.held[:heldSize]))
		o.held = nil
	}
}

// continueHead is a 100 Continue as net/http's server and goproxy (in
// tunnels) write it: whole, in one write, from the goroutine that reads the
// request's body. While a body streams to an HTTP/2 origin, that goroutine
// runs beside the one that owns the connection's orderer, so the
// connection writes it without asking the orderer.
const continueHead = "HTTP/1.1 100 Continue\r\n\r\n"

// isContinue reports whether head is a 100 Continue's.
func isContinue(head []byte) bool {
	_, rest, ok := bytes.Cut(head, []byte(" "))
	return ok && bytes.HasPrefix(rest, []byte("100")) && len(rest) > 3 && (rest[3] == ' ' || rest[3] == '\r' || rest[3] == '\n')
}

// maxReordered bounds the field lines reorderHead puts in order; a head
// with more goes as written (its cost grows with lines times names).
const maxReordered = 256

// reorderHead appends head, a response head as a server wrote it (status
// line, header lines, blank line), to dst with its header lines in the
// order of names: for each name the next line of that name not yet placed,
// renamed in the name's case (the same length: only case differs). Lines
// no name matches (the proxy's own X-Session-* headers, framing the server
// chose) follow in the order written; names with no line left (headers the
// proxy dropped) are skipped. A head with folded or nameless lines, or too
// many, is appended as it is.
func reorderHead(dst, head []byte, names []string) []byte {
	status, rest, ok := bytes.Cut(head, []byte("\n"))
	if !ok {
		return append(dst, head...)
	}
	var linesBuf [64][]byte
	lines := linesBuf[:0] // each with its line ending
	for {
		line, after, found := bytes.Cut(rest, []byte("\n"))
		if !found {
			return append(dst, head...) // no blank line: not a head
		}
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			break // the blank line
		}
		if line[0] == ' ' || line[0] == '\t' || bytes.IndexByte(line, ':') <= 0 || len(lines) == maxReordered {
			return append(dst, head...)
		}
		lines = append(lines, rest[:len(line)+1])
		rest = after
	}
	var placedBuf [64]bool
	placed := placedBuf[:]
	if len(lines) > len(placedBuf) {
		placed = make([]bool, len(lines))
	}
	dst = append(dst, status...)
	dst = append(dst, '\n')
	for _, name := range names {
		for i, line := range lines {
			if placed[i] || len(line) <= len(name) || line[len(name)] != ':' || !strings.EqualFold(string(line[:len(name)]), name) {
				continue
			}
			placed[i] = true
			dst = append(dst, name...)
			dst = append(dst, line[len(name):]...)
			break
		}
	}
	for i, line := range lines {
		if !placed[i] {
			dst = append(dst, line...)
		}
	}
	return append(dst, rest...) // the blank line
}
