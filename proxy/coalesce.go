package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// What a coalescingConn holds back, and for how long at most.
const (
	coalesceLimit = heldSize         // bytes held before they go out regardless
	coalesceDelay = time.Millisecond // longest a held write waits for company
	closeFlushMax = time.Second      // bound on the last flush of a closing conn
)

// coalescingConn gathers the small writes of an intercepted HTTP/1.x
// exchange into fewer writes to the client's socket. Inside a tunnel goproxy
// writes each response's head and body as separate TLS records, each its own
// system call and, on the client's side, its own wake-up; together they cost
// more than the rest of a small response. Held back for a moment, they leave
// in one write.
//
// It passes every call straight through until enable. Once enabled, a Write
// that fits in coalesceLimit bytes is held; held bytes are written when a
// Read begins (an HTTP/1.x exchange turns round only when the client has
// been sent everything), when more would be held than coalesceLimit (then
// together with the write that would overflow, in one writev), after
// coalesceDelay at most (a body streamed slowly still flows), on disable and
// on Close. A held write that fails makes every later Write and Read fail
// with its error.
//
// Reads and writes may come from different goroutines, as tls.Conn allows;
// enable and disable must come from the goroutine that writes.
type coalescingConn struct {
	net.Conn
	buffers *sync.Pool  // of *[heldSize]byte (newHeldBuffers), shared with the listener's other conns
	on      atomic.Bool // holding writes back; read without mu on every call
	heads   headScanner // what the client sends, for its requests' header order
	// order puts a plain-HTTP response's header lines in the origin's
	// order; used by the goroutine that writes (the server's).
	respHeads headOrderer

	// mu orders the writes to Conn. It is held across them, as the
	// connection's own write lock would be: bytes held back must leave
	// before any written after them. It guards the fields below.
	mu    sync.Mutex
	held  []byte      // written by the caller, not yet to Conn; from buffers
	err   error       // the failure of a held write, returned from then on
	timer *time.Timer // flushes held bytes after coalesceDelay; made on first use
}

// enable starts holding writes back. Calling it again does nothing.
func (c *coalescingConn) enable() { c.on.Store(true) }

// disable writes what is held and passes every later call straight through
// (a WebSocket, whose messages must not wait). A failure of that write
// shows in the next call, as it would have without holding.
func (c *coalescingConn) disable() {
	if !c.on.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on.Store(false)
	c.flushLocked()
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	if string(p) != continueHead && c.respHeads.armed() {
		return c.respHeads.write(p, c.write)
	}
	return c.write(p)
}

// write is Write below the head orderer.
func (c *coalescingConn) write(p []byte) (int, error) {
	if !c.on.Load() {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.held)+len(p) <= coalesceLimit {
		if c.held == nil { // the first write held since the last flush
			c.held = c.buffers.Get().(*[heldSize]byte)[:0]
			if c.timer == nil {
				c.timer = time.AfterFunc(coalesceDelay, func() { c.flush() })
			} else {
				c.timer.Reset(coalesceDelay)
			}
		}
		c.held = append(c.held, p...)
		return len(p), nil
	}
	if c.held == nil {
		return c.Conn.Write(p)
	}
	// What is held and p together, in one writev where Conn allows it.
	c.timer.Stop()
	held := len(c.held)
	bufs := net.Buffers{c.held, p}
	n, err := bufs.WriteTo(c.Conn)
	c.release()
	if err != nil {
		c.err = err
	}
	return max(0, int(n)-held), err
}

func (c *coalescingConn) Read(p []byte) (int, error) {
	if c.on.Load() {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	c.heads.feed(p[:n])
	return n, err
}

// Close writes what is held and closes the connection. Writing, its own and
// any already under way, gets closeFlushMax at most: a client that stopped
// reading cannot hold the close up.
func (c *coalescingConn) Close() error {
	c.Conn.SetWriteDeadline(time.Now().Add(closeFlushMax)) // before waiting for mu, which a blocked write holds
	c.mu.Lock()
	c.flushLocked()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.err = net.ErrClosed
	c.release()
	c.mu.Unlock()
	return c.Conn.Close()
}

// SetWriteDeadline writes what is held first when the deadline has passed
// already: held bytes were written before, under the deadline in force then.
// tls.Conn.Close sets a deadline of now after its close_notify alert; a held
// response that the timer flushed after that was lost, and its client saw
// the tunnel close without a response. A deadline still to come passes
// straight through: it may be what unblocks a write stuck on a client that
// does not read.
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	c.flushBefore(t)
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline is SetWriteDeadline for both directions.
func (c *coalescingConn) SetDeadline(t time.Time) error {
	c.flushBefore(t)
	return c.Conn.SetDeadline(t)
}

// flushBefore writes what is held if the deadline t has passed.
func (c *coalescingConn) flushBefore(t time.Time) {
	if c.on.Load() && !t.IsZero() && !t.After(time.Now()) {
		c.flush() // a failure shows in the next call, as for the timer's
	}
}

// flush writes what is held; the timer calls it too.
func (c *coalescingConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *coalescingConn) flushLocked() error {
	if c.err != nil {
		return c.err
	}
	if c.held == nil {
		return nil
	}
	c.timer.Stop()
	_, err := c.Conn.Write(c.held)
	if err != nil {
		c.err = err
	}
	c.release()
	return err
}

// release returns the held buffer to the pool.
func (c *coalescingConn) release() {
	if c.held != nil {
		c.buffers.Put((*[heldSize]byte)(c.held[:heldSize]))
		c.held = nil
	}
}

// coalescingListener hands out its connections as coalescingConns, passing
// everything through until the proxy enables one for an intercepted tunnel.
// Make one with newCoalescingListener.
type coalescingListener struct {
	net.Listener
	buffers *sync.Pool // a conn takes a buffer only while it holds something
	maxHead int        // longest request head a conn's headScanner follows
}

// newCoalescingListener wraps ln; maxHeaderBytes is the server's limit on
// request heads.
func newCoalescingListener(ln net.Listener, maxHeaderBytes int) coalescingListener {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	return coalescingListener{Listener: ln, buffers: newHeldBuffers(), maxHead: maxHeaderBytes + headSlop}
}

func (l coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &coalescingConn{Conn: c, buffers: l.buffers, heads: headScanner{limit: l.maxHead}, respHeads: headOrderer{buffers: l.buffers}}, nil
}

// connKey is the request-context key of the client's *coalescingConn.
type connKey struct{}

// withConn is an http.Server ConnContext: it makes the client's
// coalescingConn reachable from its requests.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*trackedConn); ok {
		c = tc.Conn
	}
	if cc, ok := c.(*coalescingConn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

// connOf returns the client connection of r, or nil when it was not
// accepted by Serve.
func connOf(r *http.Request) *coalescingConn {
	c, _ := r.Context().Value(connKey{}).(*coalescingConn)
	return c
}
