package proxy

import (
	"io"
	"net"
	"sync"
)

// The server's bookkeeping of its connections and requests, for a
// graceful shutdown: requests in flight (drain), open connections
// (connTracker), and response bodies whose end a request waits for
// (doneBody).

// drain counts requests in flight and tells when the last one is done after
// it was closed. Unlike a WaitGroup, entering and closing may race: a
// request that enters after close is refused instead. Safe for concurrent
// use; the zero value is open.
type drain struct {
	mu     sync.Mutex // guards the fields below
	n      int
	closed bool
	zero   chan struct{} // closed when n reaches 0 after close
}

// enter counts a request in, or reports false once the drain is closed.
func (d *drain) enter() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.n++
	return true
}

// leave counts a request out.
func (d *drain) leave() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n--
	if d.n == 0 && d.zero != nil {
		close(d.zero)
		d.zero = nil
	}
}

// close refuses new requests and returns a channel closed once none is in
// flight.
func (d *drain) close() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	ch := make(chan struct{})
	if d.n == 0 {
		close(ch)
	} else {
		d.zero = ch
	}
	return ch
}

// connTracker remembers every open proxy connection so that Shutdown can
// close hijacked ones (tunnels), which http.Server forgets about, and the
// connections plain tunnels relay to, which closing their clients does not
// end.
type connTracker struct {
	mu      sync.Mutex // guards the fields below
	conns   map[*trackedConn]struct{}
	relayed map[net.Conn]struct{}
	closed  bool // closeAll has run: no more relayed connections are held
}

// hold adds c, a connection a plain tunnel relays to, to those closeAll
// closes. A tunnel holds its connection before it leaves the drain, so
// that closeAll, which comes after the drain, finds it; one whose dial
// outlived a drain that timed out finds closeAll done: hold closes c and
// reports false.
func (t *connTracker) hold(c net.Conn) bool {
	t.mu.Lock()
	closed := t.closed
	if !closed {
		if t.relayed == nil {
			t.relayed = make(map[net.Conn]struct{})
		}
		t.relayed[c] = struct{}{}
	}
	t.mu.Unlock()
	if closed {
		c.Close() // outside the lock, as closeAll's
	}
	return !closed
}

// release forgets c, held by hold.
func (t *connTracker) release(c net.Conn) {
	t.mu.Lock()
	delete(t.relayed, c)
	t.mu.Unlock()
}

func (t *connTracker) wrap(ln net.Listener) net.Listener {
	return &trackingListener{Listener: ln, t: t}
}

func (t *connTracker) add(c *trackedConn) {
	t.mu.Lock()
	if t.conns == nil {
		t.conns = make(map[*trackedConn]struct{})
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
}

func (t *connTracker) remove(c *trackedConn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	t.closed = true
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	relayed := make([]net.Conn, 0, len(t.relayed))
	for c := range t.relayed {
		relayed = append(relayed, c)
	}
	t.mu.Unlock()
	for _, c := range relayed {
		c.Close()
	}
	// At once: each Close may first write what its connection held back,
	// for at most closeFlushMax when the client does not read.
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
}

type trackingListener struct {
	net.Listener
	t *connTracker
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t}
	l.t.add(tc)
	return tc, nil
}

// trackedConn is an accepted connection that leaves its tracker on Close.
type trackedConn struct {
	net.Conn
	t    *connTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.t.remove(c) })
	return c.Conn.Close()
}

// doneBody calls done once, when the body is closed.
type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}
