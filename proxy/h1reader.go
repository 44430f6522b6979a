package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// h1Reader passes an HTTP/1.x request stream through unchanged while
// parsing it ahead of its reader, one request at a time: a request's head is
// passed on only once it is whole and valid, and is refused as the proxy's
// http.Server refuses it outside tunnels (431 over max_header_bytes, 501 for
// an unknown Transfer-Encoding, 505 for a version other than 1.x, 400 for
// anything else malformed: bad request line, duplicate or negative
// Content-Length...). A head must be whole within lim.readHeader of its
// first byte. The body is passed on as its framing is read, so a head is
// never held longer than it takes to arrive and memory stays within
// max_header_bytes and a read buffer.
//
// Its Read is for one goroutine at a time.
type h1Reader struct {
	conn net.Conn // the cleartext client connection: read, and answered on refusal
	lim  connLimits
	src  *recorder
	br   *bufio.Reader // over src: what the parser reads
	body io.ReadCloser // the current request's body; nil between requests
	buf  []byte        // what the parser reads of bodies, discarded
	err  error         // ends the stream once what was parsed is passed on
	done int64         // bytes of src passed on to the reader
	read func() int64  // bytes of src the parser has taken
	now  func() time.Time

	heads headQueue // the header names of the requests parsed
}

func newH1Reader(conn net.Conn, lim connLimits) *h1Reader {
	r := &h1Reader{conn: conn, lim: lim, src: &recorder{r: conn, allow: -1}, now: time.Now}
	r.br = bufio.NewReader(r.src)
	r.read = func() int64 { return r.src.n - int64(r.br.Buffered()) }
	return r
}

func (r *h1Reader) Read(p []byte) (int, error) {
	for {
		if r.src.pass {
			return r.br.Read(p)
		}
		if n := r.read() - r.done; n > 0 {
			k := r.src.take(p[:min(n, int64(len(p)))])
			r.done += int64(k)
			return k, nil
		}
		if r.err != nil {
			return 0, r.err
		}
		if r.body == nil {
			r.err = r.readHead()
		} else {
			r.err = r.readBody(len(p))
		}
	}
}

// watch reads ahead of the parser while a request without a body is under
// way, as net/http's server does outside tunnels, so that a client that
// resets its connection meanwhile ends its request: gone is called (from
// another goroutine) when that read fails, but for a clean end of the
// client's side (io.EOF: a half-close). Bytes it reads (a
// request sent ahead) stay for the parser. stop ends the read and waits for
// it; the reader must not be read until then. When the parser is not
// between requests, watch does nothing.
func (r *h1Reader) watch(gone func()) (stop func()) {
	if r.src.pass || r.err != nil || r.read() != r.done || r.br.Buffered() > 0 ||
		(r.body != nil && r.body != http.NoBody) {
		return func() {}
	}
	r.body = nil // a bodiless request's body has nothing to parse
	var stopping atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := r.br.Peek(1); err != nil && !stopping.Load() {
			r.err = err // the next Read meets it where it happened
			if !errors.Is(err, io.EOF) {
				// A reset or a failed read; a clean end of the
				// client's side (a half-close) lets the request run.
				gone()
			}
		}
	}()
	return func() {
		stopping.Store(true)
		r.conn.SetReadDeadline(time.Unix(1, 0)) // ends the read; the TLS state survives a timeout
		<-done
		r.conn.SetReadDeadline(time.Time{})
	}
}

// passThrough stops parsing: what follows the last request is no longer
// HTTP (a WebSocket). The reader must have taken every request so far.
func (r *h1Reader) passThrough() {
	r.src.pass = true
	r.src.drop()
}

// readHead parses the next request's head and answers it when it is
// refused. At the end of the stream it returns io.EOF.
func (r *h1Reader) readHead() error {
	r.src.allow = -1
	if _, err := r.br.Peek(1); err != nil { // waiting for a request: the idle watch's time
		return err
	}
	r.src.allow = int64(r.lim.maxHeaderBytes) + headSlop
	// A head that arrived whole (most do, in one record) needs no deadline:
	// setting and clearing one would cost two timer updates a request.
	whole := headArrived(r.br)
	if !whole {
		r.conn.SetReadDeadline(r.now().Add(r.lim.readHeader))
	}
	req, err := http.ReadRequest(r.br)
	if !whole {
		r.conn.SetReadDeadline(time.Time{})
	}
	r.src.allow = -1
	if err == nil && req.ProtoMajor != 1 {
		err = errVersion
	}
	if err != nil {
		r.src.drop() // nothing of a refused head reaches goproxy
		r.done = r.read()
		return r.refuse(err)
	}
	r.body = req.Body
	r.heads.keep(wire.HeadNames(string(r.src.buf[r.src.off : r.src.off+int(r.read()-r.done)])))
	return nil
}

// headArrived reports whether br holds the end of a head already.
func headArrived(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// errVersion is a request head naming an HTTP version other than 1.x.
var errVersion = errors.New("proxy: unsupported protocol version")

// readBody parses up to n bytes of the current request's body; at its end
// the next request's head is next. One step may read n bytes, a chunk line
// and a trailer (which net/http caps at its read buffer) and no more.
func (r *h1Reader) readBody(n int) error {
	if cap(r.buf) == 0 {
		r.buf = make([]byte, 32<<10)
	}
	n = min(n, len(r.buf))
	r.src.allow = int64(n+r.lim.maxHeaderBytes) + 2*headSlop
	_, err := r.body.Read(r.buf[:n])
	r.src.allow = -1
	if errors.Is(err, io.EOF) {
		r.body = nil
		return nil
	}
	if err != nil && r.src.over {
		return errHeadTooLarge
	}
	return err
}

// refuse answers a head that cannot be passed on as net/http's server does,
// and returns the error that ends the stream. A connection that failed or
// timed out gets no answer.
func (r *h1Reader) refuse(err error) error {
	var status int
	var text string
	var ne net.Error
	switch {
	case r.src.over:
		status, text, err = http.StatusRequestHeaderFieldsTooLarge, "431 Request Header Fields Too Large", errHeadTooLarge
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne):
		return err
	case errors.Is(err, errVersion):
		status, text = http.StatusHTTPVersionNotSupported, "505 HTTP Version Not Supported: unsupported protocol version"
	case strings.Contains(err.Error(), "unsupported transfer encoding"): // net/http's unexported unsupportedTEError
		status, text = http.StatusNotImplemented, "Unsupported transfer encoding"
	default:
		status, text = http.StatusBadRequest, "400 Bad Request"
	}
	r.conn.SetWriteDeadline(r.now().Add(closeFlushMax))
	fmt.Fprintf(r.conn, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), text)
	return fmt.Errorf("proxy: refused request in tunnel (%d): %w", status, err)
}

// recorder reads r, keeping what it read until the h1Reader passes it on,
// and refuses to read more than allow bytes (-1: no limit) at a time.
type recorder struct {
	r     io.Reader
	buf   []byte // buf[off:] was read, not yet passed on
	off   int
	n     int64 // bytes read in all
	allow int64 // bytes it may still read; -1 for any
	over  bool  // a read was refused for allow
	pass  bool  // not parsing any more: read without keeping
}

// take moves the oldest bytes not yet passed on into p.
func (s *recorder) take(p []byte) int {
	k := copy(p, s.buf[s.off:])
	s.off += k
	if s.off == len(s.buf) {
		s.drop()
	}
	return k
}

// drop forgets what was not passed on.
func (s *recorder) drop() { s.buf, s.off = s.buf[:0], 0 }

func (s *recorder) Read(p []byte) (int, error) {
	if s.allow == 0 {
		s.over = true
		return 0, errHeadTooLarge
	}
	if s.allow > 0 && int64(len(p)) > s.allow {
		p = p[:s.allow]
	}
	n, err := s.r.Read(p)
	if s.allow > 0 {
		s.allow -= int64(n)
	}
	if !s.pass {
		s.buf = append(s.buf, p[:n]...)
	}
	s.n += int64(n)
	return n, err
}

// errHeadTooLarge is a request head longer than max_header_bytes inside an
// intercepted tunnel, or a body step reading more than it may.
var errHeadTooLarge = errors.New("proxy: request head too large")

// connLimits are the limits applied to an intercepted tunnel's client, the
// same as the proxy's http.Server applies to plain-HTTP clients.
type connLimits struct {
	maxHeaderBytes int           // request head
	idle           time.Duration // no request in flight and nothing read or written
	readHeader     time.Duration // a request head, from its first byte
	handshake      time.Duration // the TLS handshake, from its first byte
}
