package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrConnUnusable is a connection that cannot carry another request now:
// it is busy, closed, or a previous exchange on it did not end cleanly.
var ErrConnUnusable = errors.New("wire: connection unusable")

// errHeadTooLarge is a response head over the connection's limit.
var errHeadTooLarge = errors.New("wire: response head too large")

// H1Conn is an HTTP/1.1 client connection: one exchange at a time, kept
// alive while exchanges end cleanly. Make one with NewH1Conn. Its methods
// are safe for concurrent use; a second RoundTrip while one is under way
// fails with ErrConnUnusable.
type H1Conn struct {
	conn net.Conn
	lr   *limitedReader // under br: bounds a response head
	bufs *Buffers

	headTimeout time.Duration // see NewH1Conn
	closeConn   func()        // closes conn: the watch on an exchange's context

	mu        sync.Mutex  // guards the fields below
	busy      bool        // an exchange is under way (until its body ends)
	alive     bool        // the connection may carry another exchange
	used      bool        // an exchange was started on it before
	exchanges uint64      // exchanges started on it
	unwatch   func() bool // stops the watch on the exchange's context
	// br reads the connection during an exchange; between exchanges it is
	// back in bufs.
	br *bufio.Reader
}

// NewH1Conn wraps conn, whose handshake (if any) is done. maxHead bounds a
// response head (zero means 1 MiB); headTimeout, when positive, bounds the
// wait for a response head once the request is written; bufs lends the
// exchanges their buffers (nil: the connection's own).
func NewH1Conn(conn net.Conn, maxHead int64, headTimeout time.Duration, bufs *Buffers) *H1Conn {
	if maxHead <= 0 {
		maxHead = 1 << 20
	}
	if bufs == nil {
		bufs = NewBuffers()
	}
	lr := &limitedReader{r: conn, max: maxHead, left: -1}
	c := &H1Conn{conn: conn, lr: lr, bufs: bufs, alive: true, headTimeout: headTimeout}
	c.closeConn = func() { conn.Close() }
	return c
}

// limitedReader reads r, refusing more than left bytes while left >= 0.
type limitedReader struct {
	r    io.Reader
	max  int64   // a head's limit
	left int64   // bytes the current head may still take; -1: no limit
	tee  *[]byte // when set, what is read is appended to it
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left == 0 {
		return 0, errHeadTooLarge
	}
	if l.left > 0 && int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	if l.left > 0 {
		l.left -= int64(n)
	}
	if l.tee != nil {
		*l.tee = append(*l.tee, p[:n]...)
	}
	return n, err
}

// Idle reports whether the connection can take a request now.
func (c *H1Conn) Idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alive && !c.busy
}

// Close closes the connection.
func (c *H1Conn) Close() error {
	c.mu.Lock()
	c.alive = false
	c.mu.Unlock()
	return c.conn.Close()
}

// RoundTrip sends req, its header lines in the Order its context carries
// (see OrderFrom; none: Host, then sorted), and returns the response with
// its body read from the connection. target is the request line's target:
// "" for req.URL's origin form (the absolute form, for a plain-HTTP
// upstream proxy, is the caller's to give); extra are header lines sent
// last ("Name: value", e.g. the upstream proxy's Proxy-Authorization).
// Interim 1xx responses but 101 go to the context's Interim, if any (100
// Continue excepted), and are otherwise dropped; a 101's body is the
// connection itself. done, when not nil, is called once when the exchange
// ends (its body read to the end or closed), with whether the connection
// can carry another.
func (c *H1Conn) RoundTrip(req *http.Request, target string, extra []string, done func(reusable bool)) (*http.Response, error) {
	c.mu.Lock()
	if c.busy || !c.alive {
		c.mu.Unlock()
		return nil, ErrConnUnusable
	}
	c.busy = true
	c.exchanges++
	exchange := c.exchanges
	reused := c.used
	c.used = true
	c.br = c.bufs.readers.Get().(*bufio.Reader)
	c.br.Reset(c.lr)
	// The request's context ending closes the connection, which ends
	// whatever waits on it, until the exchange ends.
	c.unwatch = context.AfterFunc(req.Context(), c.closeConn)
	c.mu.Unlock()
	writeErr := c.writeRequest(req, target, extra)
	var readErr *bodyReadError
	if writeErr != nil && (errors.As(writeErr, &readErr) || req.Context().Err() != nil) {
		c.end(false, done)
		return nil, fmt.Errorf("wire: write request: %w", writeErr)
	}
	// A write the connection refused may have met an answer sent early,
	// before the body was read (a 413 to an upload too large): it is
	// looked for, and the write's error returned when there is none.
	failed := func() (*http.Response, error) {
		c.end(false, done)
		if reused && req.Context().Err() == nil {
			// The server closed the idle connection: it got no request.
			return nil, fmt.Errorf("wire: write request: %w: %w", ErrRetryable, writeErr)
		}
		return nil, fmt.Errorf("wire: write request: %w", writeErr)
	}
	if c.headTimeout > 0 {
		c.conn.SetReadDeadline(time.Now().Add(c.headTimeout))
	}
	if writeErr != nil {
		if _, err := c.br.Peek(1); err != nil {
			return failed()
		}
	} else if reused {
		if _, err := c.br.Peek(1); err != nil && closedIdle(err) && req.Context().Err() == nil {
			// The server closed the connection before a byte of an
			// answer: as net/http does, send it again when repeating it
			// cannot do harm.
			c.end(false, done)
			if idempotent(req) {
				err = fmt.Errorf("%w: %w", ErrRetryable, err)
			}
			return nil, fmt.Errorf("wire: read response: server closed the idle connection: %w", err)
		}
	}
	// The head limit counts every head up to the final one but those
	// handed on (as net/http's), and the head timeout runs until the final
	// head has come.
	c.lr.left = c.lr.max
	for {
		names, large := peekNames(c.br)
		if large != nil { // a head longer than the buffer: its rest, as it is read
			c.lr.tee = &large
		}
		resp, err := http.ReadResponse(c.br, req)
		if c.lr.tee != nil {
			c.lr.tee = nil
			names = HeadNames(string(large))
		}
		if err == nil && badStatusLine(resp.Status) {
			err = fmt.Errorf("malformed status line %q", resp.Status)
		}
		if err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			if passInterim(req, resp, names) {
				c.lr.left = c.lr.max
			}
			continue
		}
		c.lr.left = -1
		if c.headTimeout > 0 && err == nil && !c.bodyBuffered(resp) {
			// The body is read without the head's deadline. A body that
			// has arrived whole is not read from the connection at all:
			// its deadline stays until the next request sets its own.
			c.conn.SetReadDeadline(time.Time{})
		}
		if writeErr != nil && (err != nil || reused && resp.StatusCode == http.StatusRequestTimeout) {
			// A 408 on a kept connection is the server closing it while
			// idle, before the request came (net/http drops it too).
			return failed()
		}
		if err != nil {
			c.end(false, done)
			if ctxErr := req.Context().Err(); ctxErr != nil {
				err = ctxErr
			}
			return nil, fmt.Errorf("wire: read response: %w", err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			br := c.detach() // the connection is the body's now
			resp.Body = &upgraded{Conn: c.conn, br: br, done: done, names: names}
			return resp, nil
		}
		left := resp.ContentLength
		if resp.Body == http.NoBody {
			left = 0
		}
		reusable := !resp.Close && !req.Close && writeErr == nil
		resp.Body = &h1Body{body: resp.Body, c: c, exchange: exchange, reusable: reusable, done: done, left: left, names: names}
		return resp, nil
	}
}

// badStatusLine reports whether a response's status (code and reason
// phrase) holds a control character, a bare CR above all: RFC 9112 allows
// none, and a client that ends a line at a CR would read a header the
// origin put there.
func badStatusLine(status string) bool {
	return strings.ContainsFunc(status, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f })
}

// bodyBuffered reports whether resp's whole body, of a known length, is in
// the connection's buffer already (never for an interim or 101 response,
// whose reading goes on).
func (c *H1Conn) bodyBuffered(resp *http.Response) bool {
	return resp.StatusCode >= 200 && resp.ContentLength >= 0 && int64(c.br.Buffered()) >= resp.ContentLength
}

// closedIdle reports whether err is how a read sees a connection the server
// closed: the end of the stream, or a reset.
func closedIdle(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// idempotent reports whether sending req twice does no more than sending
// it once (RFC 9110, 9.2.2), as net/http decides it: by its method, or an
// Idempotency-Key header.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// end ends an exchange; the connection stays alive only when reusable,
// and when the server sent nothing past the response (net/http's
// "unsolicited response": what would be read as the next one's start).
func (c *H1Conn) end(reusable bool, done func(bool)) {
	c.mu.Lock()
	c.busy = false
	if c.unwatch != nil && !c.unwatch() {
		reusable = false // the context ended: the connection is closed
	}
	c.unwatch = nil
	if c.br.Buffered() > 0 {
		reusable = false
	}
	c.br.Reset(nil)
	c.bufs.readers.Put(c.br)
	c.br = nil
	if !reusable {
		c.alive = false
	}
	reusable = c.alive
	c.mu.Unlock()
	if !reusable {
		c.conn.Close()
	}
	if done != nil {
		done(reusable)
	}
}

// abort closes the connection if exchange is still under way on it.
func (c *H1Conn) abort(exchange uint64) {
	c.mu.Lock()
	under := c.busy && c.exchanges == exchange
	if under {
		c.alive = false
	}
	c.mu.Unlock()
	if under {
		c.conn.Close()
	}
}

// detach gives the connection, and the reader of what is buffered from
// it, up to a 101 response's body.
func (c *H1Conn) detach() *bufio.Reader {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy, c.alive = false, false
	if c.unwatch != nil {
		c.unwatch()
		c.unwatch = nil
	}
	br := c.br
	c.br = nil
	return br
}

// writeRequest writes req's head and body.
func (c *H1Conn) writeRequest(req *http.Request, target string, extra []string) error {
	if target == "" {
		target = req.URL.RequestURI()
	}
	o, _ := OrderFrom(req.Context())
	w := c.bufs.writers.Get().(*bufio.Writer)
	w.Reset(c.conn)
	defer func() {
		w.Reset(nil)
		c.bufs.writers.Put(w)
	}()
	w.WriteString(valueOr(req.Method, http.MethodGet))
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\n")
	for _, f := range fields(req, o, false) {
		w.WriteString(f.name)
		w.WriteString(": ")
		w.WriteString(f.value)
		w.WriteString("\r\n")
	}
	for _, line := range extra {
		w.WriteString(line)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if req.Body != nil && req.Body != http.NoBody {
		if err := writeBody(w, req); err != nil {
			return err
		}
	}
	return w.Flush()
}

// bodyReadError is a failure to read a request's body (the client's side),
// as against one to write it to the connection.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// bodyReader reads a request's body, its failures bodyReadErrors.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyReadError{err}
	}
	return n, err
}

// writeBody writes req's body, chunked when its framing is. A failure to
// read the body is a *bodyReadError.
func writeBody(w *bufio.Writer, req *http.Request) error {
	defer req.Body.Close()
	body := bodyReader{req.Body}
	if !chunked(req) {
		n, err := io.Copy(w, body)
		if err == nil && req.ContentLength > 0 && n != req.ContentLength {
			err = &bodyReadError{fmt.Errorf("body of %d bytes, not the %d announced", n, req.ContentLength)}
		}
		return err
	}
	cw := httputil.NewChunkedWriter(w)
	if _, err := io.Copy(cw, body); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	for k, vs := range req.Trailer {
		for _, v := range vs {
			fmt.Fprintf(w, "%s: %s\r\n", k, v)
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// h1Body is a response body: at its end the exchange ends, and the
// connection is kept when the body was read to its end. Once the exchange
// has ended its reader is another exchange's, so the body never reads
// from it again.
type h1Body struct {
	body     io.ReadCloser // net/http's, reading the exchange's reader
	c        *H1Conn
	exchange uint64 // the connection's count of exchanges when this one began
	reusable bool
	done     func(bool)
	names    []string // the head's header names (ResponseNames); immutable

	mu   sync.Mutex // guards the fields below; held across a read of body
	err  error      // once set, the exchange has ended: what Read returns
	left int64      // bytes of a Content-Length body not read yet; -1: no length
}

func (b *h1Body) headNames() []string { return b.names }

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readLocked(p)
}

func (b *h1Body) readLocked(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.body.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	if err != nil {
		b.err = err
		b.c.end(err == io.EOF && b.reusable, b.done)
	}
	return n, err
}

// Close ends the exchange. A body whose rest has all arrived is read from
// the connection's buffer, without a wait, and the connection kept (a
// small page left unread: a block being retried); any other body not read
// to its end closes the connection, at once, even under a Read in another
// goroutine: reading the rest to find the response's end, as net/http's
// body does, could take without bound.
func (b *h1Body) Close() error {
	if !b.mu.TryLock() {
		// A Read waits on the connection: closing it ends the wait.
		b.c.abort(b.exchange)
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	if b.err == nil && b.left >= 0 && b.left <= int64(b.c.br.Buffered()) {
		io.Copy(io.Discard, readerFunc(b.readLocked)) // all of it is here: no wait; it ends the exchange
	}
	if b.err == nil {
		b.c.end(false, b.done)
	}
	b.err = http.ErrBodyReadAfterClose
	return nil
}

// readerFunc is a function as an io.Reader.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// upgraded is a 101 response's body: the connection, read through what was
// already buffered.
type upgraded struct {
	net.Conn
	br    *bufio.Reader
	done  func(bool)
	once  sync.Once
	names []string // the head's header names (ResponseNames); immutable
}

func (u *upgraded) headNames() []string { return u.names }

func (u *upgraded) Read(p []byte) (int, error) { return u.br.Read(p) }

func (u *upgraded) Close() error {
	u.once.Do(func() {
		if u.done != nil {
			u.done(false)
		}
	})
	return u.Conn.Close()
}
