package wire

import (
	"errors"
	"io"
	"net/http"
	"sync"

	"golang.org/x/net/http2"
)

// errBodyClosed is what a response body's reads give after Close.
var errBodyClosed = errors.New("wire: read on closed response body")

// pipe holds a stream's response body between the read loop and the
// body's reader. Its fields are guarded by the connection's mu; waits are
// on its cond.
type pipe struct {
	c       *H2Conn
	s       *h2Stream
	buf     dataBuffer
	err     error          // io.EOF at END_STREAM; returned once buf is drained
	trailer http.Header    // filled by the trailing HEADERS, before io.EOF
	resp    *http.Response // the response whose Trailer the reader fills at io.EOF
	unacked int32          // bytes of the stream consumed, not yet given back
}

// writeLocked appends data from a DATA frame.
func (p *pipe) writeLocked(data []byte) {
	p.buf.Write(data)
	p.c.cond.Broadcast()
}

// closeLocked ends the body with err after what is buffered.
func (p *pipe) closeLocked(err error) {
	if p.err == nil {
		p.err = err
	}
	p.c.cond.Broadcast()
}

// read waits for body bytes and reads them, giving the flow-control
// window they held back to the server.
func (p *pipe) read(b []byte) (int, error) {
	c, s := p.c, p.s
	c.mu.Lock()
	for p.buf.Len() == 0 && p.err == nil && !s.reset && c.err == nil {
		c.cond.Wait()
	}
	if p.buf.Len() == 0 {
		err := p.err
		switch {
		case err != nil:
		case s.err != nil:
			err = s.err
		default:
			err = c.err
		}
		if err == io.EOF && p.trailer != nil && p.resp != nil {
			// The trailers go to the response now, in the reader's
			// goroutine (as net/http's do): the read loop never writes
			// a map the caller reads.
			p.resp.Trailer, p.trailer = p.trailer, nil
		}
		c.mu.Unlock()
		return 0, err
	}
	n := p.buf.Read(b)
	c.recvUnack += int32(n)
	p.unacked += int32(n)
	inc := int32(0)
	if p.unacked >= windowUpdateSize && p.err == nil {
		inc, p.unacked = p.unacked, 0
		s.recvWin += inc
	}
	c.mu.Unlock()
	if err := c.giveBack(s.id, inc); err != nil {
		c.fail(err)
	}
	return n, nil
}

// h2Body is a response body of an H2Conn.
type h2Body struct {
	s      *h2Stream
	stop   func() bool // stops the watch on the request's context
	closed bool
	names  []string // the head's field names (ResponseNames); immutable
}

func (b *h2Body) headNames() []string { return b.names }

func (b *h2Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	n, err := b.s.body.read(p)
	if err != nil {
		b.stop()
	}
	return n, err
}

// Close ends the stream: one whose response has not all come, or whose
// request body has not all gone (the server answered first), is reset
// (CANCEL), and what was buffered and not read is given back.
func (b *h2Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.stop()
	s, c := b.s, b.s.c
	c.mu.Lock()
	unread := int32(s.body.buf.Len())
	s.body.buf.Reset()
	c.recvUnack += unread
	done := s.recvDone && s.sendDone
	c.mu.Unlock()
	if !done {
		s.cancel(http2.ErrCodeCancel, errBodyClosed)
	}
	if err := c.giveBack(0, 0); err != nil {
		c.fail(err)
	}
	return nil
}

var _ io.ReadCloser = (*h2Body)(nil)

// dataBuffer is a queue of bytes in chunks from a pool, each given back
// once read: it holds what it was sent and not read, where a growing
// array (bytes.Buffer's) holds up to twice that, and more while the
// arrays it grew out of wait for the GC. A stalled reader of a browser
// profile's stream lets the server send 6 MiB. Its zero value is not
// usable: pool must be set.
type dataBuffer struct {
	pool   *sync.Pool // of *chunk
	chunks []*chunk   // read from the first, written to the last
	r      int        // read offset in chunks[0]
	w      int        // write offset in the last chunk
	n      int        // bytes held
}

// Len returns the bytes held.
func (d *dataBuffer) Len() int { return d.n }

// Write appends p.
func (d *dataBuffer) Write(p []byte) {
	for len(p) > 0 {
		if len(d.chunks) == 0 || d.w == len(chunk{}) {
			d.chunks = append(d.chunks, d.pool.Get().(*chunk))
			d.w = 0
		}
		c := copy(d.chunks[len(d.chunks)-1][d.w:], p)
		d.w += c
		d.n += c
		p = p[c:]
	}
}

// Read takes up to len(p) bytes from the front.
func (d *dataBuffer) Read(p []byte) int {
	n := 0
	for len(p) > 0 && d.n > 0 {
		end := len(chunk{})
		if len(d.chunks) == 1 {
			end = d.w
		}
		c := copy(p, d.chunks[0][d.r:end])
		d.r += c
		d.n -= c
		n += c
		p = p[c:]
		if d.r == end {
			d.pool.Put(d.chunks[0])
			d.chunks[0] = nil
			d.chunks = d.chunks[1:]
			d.r = 0
		}
	}
	return n
}

// Reset drops what is held.
func (d *dataBuffer) Reset() {
	for i, c := range d.chunks {
		d.pool.Put(c)
		d.chunks[i] = nil
	}
	d.chunks = d.chunks[:0]
	d.r, d.w, d.n = 0, 0, 0
}
