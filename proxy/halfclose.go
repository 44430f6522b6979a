package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// eofConn keeps a client's clean end of sending (a half-close,
// shutdown(SHUT_WR), after its request) from cancelling the request.
// While a handler runs, net/http reads one byte of the connection in the
// background and cancels the request's context on any end of the read
// side, a clean EOF included: the client would get "client closed the
// request" although it still reads. eofConn holds such a read, one byte
// that met io.EOF, until net/http takes it back when the handler is done (a
// read deadline in the past: the read then fails with a timeout, which
// net/http expects from that) or the connection closes; every later read
// meets the EOF again, and net/http closes the connection after the
// response. Any other end of the connection (a reset, a read error) still
// cancels the request. A client that closes both sides with a FIN looks the
// same as one that half-closes: its request runs on until writing the
// response to it fails.
//
// Only net/http's background read asks for one byte: its request parser
// and body readers read through a 4 KiB buffer. A body read could ask for
// one byte only with 4,095 bytes of one line unread, and would then wait
// for the end of the handler as a client that stops sending mid-body makes
// it wait anyway. A hijacked connection (a CONNECT, a WebSocket) holds no
// read: its new owner reads it with no handler to end. Safe for concurrent
// use.
type eofConn struct {
	net.Conn

	mu       sync.Mutex
	deadline time.Time     // the read deadline last set
	closed   bool          // Close was called
	hijacked bool          // reads are a tunnel's: none is held
	held     chan struct{} // closed to end the held read; nil when none is held
	heldErr  error         // what the held read returns
}

func (c *eofConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 || len(p) != 1 || !errors.Is(err, io.EOF) {
		return n, err
	}
	c.mu.Lock()
	if c.hijacked {
		c.mu.Unlock()
		return n, err
	}
	if err := c.endedLocked(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	held := make(chan struct{})
	c.held = held
	c.armLocked()
	c.mu.Unlock()
	<-held
	c.mu.Lock()
	defer c.mu.Unlock()
	return 0, c.heldErr
}

// endedLocked is the error of a read now: the connection's closing or its
// deadline having passed; nil when a read may wait.
func (c *eofConn) endedLocked() error {
	switch {
	case c.closed:
		return net.ErrClosed
	case !c.deadline.IsZero() && !time.Now().Before(c.deadline):
		return os.ErrDeadlineExceeded
	}
	return nil
}

// armLocked ends the held read when it may wait no more, at once or when
// its deadline passes.
func (c *eofConn) armLocked() {
	if c.held == nil {
		return
	}
	if err := c.endedLocked(); err != nil {
		c.heldErr = err
		close(c.held)
		c.held = nil
		return
	}
	if !c.deadline.IsZero() {
		held := c.held
		time.AfterFunc(time.Until(c.deadline), func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.held == held {
				c.armLocked()
			}
		})
	}
}

// SetReadDeadline also applies to a held read.
func (c *eofConn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	c.mu.Lock()
	c.deadline = t
	c.armLocked()
	c.mu.Unlock()
	return err
}

// SetDeadline is SetReadDeadline and the connection's SetWriteDeadline.
func (c *eofConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.Conn.SetWriteDeadline(t))
}

// Close ends a held read too.
func (c *eofConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.armLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

// hijacked makes conn's eofConn, when it has one, hold no read from now on.
func hijacked(conn net.Conn) {
	for {
		switch c := conn.(type) {
		case *trackedConn:
			conn = c.Conn
		case *coalescingConn:
			conn = c.Conn
		case *eofConn:
			c.mu.Lock()
			c.hijacked = true
			c.mu.Unlock()
			return
		default:
			return
		}
	}
}

// eofListener hands out its connections as eofConns.
type eofListener struct{ net.Listener }

func (l eofListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &eofConn{Conn: c}, nil
}
