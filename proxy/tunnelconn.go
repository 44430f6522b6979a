package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"golang.org/x/net/http2"

	"github.com/sessionproxy/sessionproxy/proxy/profile"
	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// mitmConn is the client side of an intercepted tunnel as goproxy sees it:
// the proxy, not goproxy, terminates TLS (bounded by the handshake timeout)
// and checks every HTTP/1.x request head before goproxy parses it, which it
// would otherwise do on an unbounded reader and drop with no answer when it
// is malformed. goproxy then sees cleartext HTTP/1.x or HTTP/2 (the tunnel
// tells the request handler the scheme was https).
//
// The first Read does the handshake; a client that sends nothing is closed
// after the shorter of the idle and handshake timeouts. Writes before it
// (goproxy's 200) go to the raw connection. Once set up, the tunnel is closed
// after lim.idle with no request in flight and nothing read or written. Reads come from one goroutine at a time, writes may
// come from another, as with tls.Conn. Close is safe to call at any time.
type mitmConn struct {
	net.Conn                // the hijacked client connection
	raw       *bufio.Reader // over what the server had buffered, then Conn
	tlsConfig func() (*tls.Config, error)
	lim       connLimits
	tls       atomic.Bool // set once the client spoke TLS

	setup sync.Once
	err   error                    // of the setup, returned by every Read after it
	plain atomic.Pointer[net.Conn] // the cleartext side once set up
	h1    *h1Reader                // nil for HTTP/2
	hello []byte                   // the client's ClientHello records, as sent; nil without TLS
	h2rec *profile.H2Recorder      // follows an HTTP/2 client's stream; nil for HTTP/1.x
	who   *profile.Client          // the client's identity, for mirrored sessions
	// serveH2, when set, serves an HTTP/2 client itself (the proxy's own
	// HTTP/2 server, with its limits) on the conn it is given; goproxy then
	// reads the end of the stream.
	serveH2 func(net.Conn)
	h2done  sync.Once
	// order puts an HTTP/1.x response's header lines in the origin's
	// order; used by goproxy's goroutine, which writes the responses.
	respHeads headOrderer

	idleWatch // set up with plain
}

// newMitmConn wraps the hijacked conn; buffered holds what the server read
// past the CONNECT's head.
func newMitmConn(conn net.Conn, buffered *bufio.Reader, tlsConfig func() (*tls.Config, error), lim connLimits) *mitmConn {
	var src io.Reader = conn
	if buffered != nil && buffered.Buffered() > 0 {
		head, _ := buffered.Peek(buffered.Buffered())
		src = io.MultiReader(strings.NewReader(string(head)), conn)
	}
	return &mitmConn{Conn: conn, raw: bufio.NewReader(src), tlsConfig: tlsConfig, lim: lim}
}

// rawConn reads the raw side through c.raw.
type rawConn struct {
	net.Conn
	r io.Reader
}

func (c rawConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *mitmConn) Read(p []byte) (int, error) {
	c.setup.Do(func() { c.err = c.handshake() })
	if c.err != nil {
		return 0, c.err
	}
	if c.h1 == nil && c.serveH2 != nil {
		c.h2done.Do(func() { c.serveH2(h2Conn{c}) }) // until the client's connection ends
		return 0, io.EOF
	}
	var n int
	var err error
	if c.h1 != nil {
		n, err = c.h1.Read(p)
	} else {
		n, err = c.readH2(p)
	}
	c.used()
	return n, err
}

// readH2 reads the cleartext of an HTTP/2 client, for its recorder too.
func (c *mitmConn) readH2(p []byte) (int, error) {
	n, err := (*c.plain.Load()).Read(p)
	c.h2rec.Write(p[:n])
	return n, err
}

// h2Conn is an HTTP/2 client's connection as the proxy's own HTTP/2
// server sees it: the tunnel's cleartext, its reads recorded and its use
// noted for the idle watch.
type h2Conn struct{ c *mitmConn }

func (h h2Conn) Read(p []byte) (int, error) {
	n, err := h.c.readH2(p)
	h.c.used()
	return n, err
}

func (h h2Conn) Write(p []byte) (int, error)        { return h.c.Write(p) }
func (h h2Conn) Close() error                       { return h.c.Close() }
func (h h2Conn) LocalAddr() net.Addr                { return h.c.Conn.LocalAddr() }
func (h h2Conn) RemoteAddr() net.Addr               { return h.c.Conn.RemoteAddr() }
func (h h2Conn) SetDeadline(t time.Time) error      { return h.c.Conn.SetDeadline(t) }
func (h h2Conn) SetReadDeadline(t time.Time) error  { return h.c.Conn.SetReadDeadline(t) }
func (h h2Conn) SetWriteDeadline(t time.Time) error { return h.c.Conn.SetWriteDeadline(t) }

func (c *mitmConn) Write(p []byte) (int, error) {
	pc := c.plain.Load()
	if pc == nil {
		return c.Conn.Write(p)
	}
	if string(p) != continueHead && c.respHeads.armed() {
		return c.respHeads.write(p, c.writePlain)
	}
	return c.writePlain(p)
}

// Interim passes an origin's interim response (103 Early Hints) on to the
// HTTP/1.x client, ahead of the final one that goproxy writes. A failed
// write shows in the final one's. The head goes in one write: a 100
// Continue written meanwhile from the goroutine that sends the body (an
// HTTP/2 origin's) comes before or after it, never inside. So the orderer
// is armed only for a head it holds whole (one larger goes as written).
func (c *mitmConn) Interim(resp *http.Response, names []string) {
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 " + resp.Status + "\r\n")
	interimHeader(resp.Header).Write(&head)
	head.WriteString("\r\n")
	if head.Len() <= heldSize {
		c.respHeads.expect(names)
	}
	c.Write(head.Bytes())
}

// writePlain writes to the tunnel's cleartext side, once it is set up.
func (c *mitmConn) writePlain(p []byte) (int, error) {
	n, err := (*c.plain.Load()).Write(p)
	c.used()
	return n, err
}

func (c *mitmConn) Close() error {
	c.stop()
	if pc := c.plain.Load(); pc != nil {
		return (*pc).Close()
	}
	return c.Conn.Close()
}

// handshake sees what the client speaks in the tunnel and, for TLS, does
// the handshake within lim.handshake. It starts the idle watch.
func (c *mitmConn) handshake() error {
	c.Conn.SetReadDeadline(time.Now().Add(min(c.lim.idle, c.lim.handshake))) // an idle tunnel, or a slow handshake's start
	first, err := c.raw.Peek(1)
	if err != nil {
		return fmt.Errorf("proxy: read tunnel: %w", err)
	}
	var plain net.Conn = rawConn{Conn: c.Conn, r: usedReader{c.raw, &c.idleWatch}} // a head or body coming in is use
	h2 := false
	c.Conn.SetReadDeadline(time.Now().Add(c.lim.handshake))
	if first[0] == 0x16 { // a TLS handshake record
		cfg, err := c.tlsConfig()
		if err != nil {
			return fmt.Errorf("proxy: tunnel certificate: %w", err)
		}
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		rec := &helloRecorder{r: plain}
		cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c.hello = rec.stop() // crypto/tls has read the ClientHello, and the client waits for an answer
			return nil, nil
		}
		tc := tls.Server(rawConn{Conn: plain, r: rec}, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), c.lim.handshake)
		err = tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("proxy: tunnel handshake: %w", err)
		}
		c.tls.Store(true)
		plain = tc
		h2 = tc.ConnectionState().NegotiatedProtocol == "h2"
	} else if first[0] == http2.ClientPreface[0] {
		pre, _ := c.raw.Peek(len(http2.ClientPreface))
		h2 = string(pre) == http2.ClientPreface
	}
	c.Conn.SetReadDeadline(time.Time{})
	c.who = &profile.Client{Hello: c.hello}
	if h2 {
		c.h2rec = &profile.H2Recorder{}
		c.who.H2 = c.h2rec.Preface
	} else {
		c.h1 = newH1Reader(plain, c.lim)
	}
	c.plain.Store(&plain)
	c.watch(c.lim.idle, func() { c.Close() })
	return nil
}

// helloRecorder keeps what a client sends until stop: its ClientHello, for
// the session to send on as the client's own (fingerprint: mirror).
type helloRecorder struct {
	r       io.Reader
	buf     []byte
	stopped bool
}

// maxHello bounds what a helloRecorder keeps: a ClientHello in records of
// at most 16 KiB, and more than any browser sends.
const maxHello = 64 << 10

func (h *helloRecorder) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if !h.stopped && len(h.buf)+n <= maxHello {
		h.buf = append(h.buf, p[:n]...)
	}
	return n, err
}

// stop ends the recording and returns what was read.
func (h *helloRecorder) stop() []byte {
	h.stopped = true
	b := h.buf
	h.buf = nil
	return b
}

// idleWatch closes a tunnel that has had no request in flight and no read
// or write for a while. Its methods are safe for concurrent use; the zero
// value watches nothing until watch.
type idleWatch struct {
	busy     atomic.Int32 // requests whose response is not yet done
	lastUsed atomic.Int64 // unix nanoseconds of the last read or write
	mu       sync.Mutex   // guards the fields below
	timer    *time.Timer
	stopped  bool
}

// watch calls close once the tunnel has been idle for idle; stop ends it.
func (w *idleWatch) watch(idle time.Duration, close func()) {
	w.used()
	w.mu.Lock()
	defer w.mu.Unlock()
	var check func()
	check = func() {
		since := time.Since(time.Unix(0, w.lastUsed.Load()))
		if w.busy.Load() > 0 || since < idle {
			w.mu.Lock()
			if !w.stopped {
				w.timer = time.AfterFunc(max(idle-since, 10*time.Millisecond), check)
			}
			w.mu.Unlock()
			return
		}
		close()
	}
	w.timer = time.AfterFunc(idle, check)
}

// stop ends the watch.
func (w *idleWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

// used notes that the tunnel was just used.
func (w *idleWatch) used() { w.lastUsed.Store(time.Now().UnixNano()) }

// begin and end count a request of the tunnel in and out of flight.
func (w *idleWatch) begin() { w.busy.Add(1) }
func (w *idleWatch) end() {
	w.used()
	w.busy.Add(-1)
}

// usedReader notes every read on its idleWatch.
type usedReader struct {
	r io.Reader
	w *idleWatch
}

func (u usedReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	u.w.used()
	return n, err
}

// order returns the header order in which the client sent req, the next
// request of the tunnel; every request of the tunnel takes its own, in
// order.
func (c *mitmConn) order(req *http.Request) wire.Order {
	if c.h1 != nil {
		return wire.Order{Names: c.h1.heads.take()}
	}
	o, _ := c.h2rec.Take(req.Method, req.URL.RequestURI())
	return o
}

// countRequests wraps goproxy's RoundTripper so that the tunnel's idle watch
// knows of requests in flight: from the request until its response's body
// is closed. A WebSocket stays in flight as long as it lives.
func (c *mitmConn) countRequests(rt goproxy.RoundTripperFunc) goproxy.RoundTripperFunc {
	return func(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Response, error) {
		c.begin()
		resp, err := rt(req, ctx)
		switch {
		case resp == nil || resp.Body == nil:
			c.end()
		case resp.StatusCode != http.StatusSwitchingProtocols:
			resp.Body = &doneBody{ReadCloser: resp.Body, done: c.end}
		case c.h1 != nil: // in the goroutine that reads: nothing else reads now
			c.h1.passThrough()
		}
		return resp, err
	}
}

// watchClient returns a context that ends with ctx or, inside an
// intercepted HTTP/1.1 tunnel, when the client resets its connection
// (h1Reader.watch), and the stop to call before the tunnel is read or
// written again. It is for the waits of a request nothing has been sent
// of (a site's turn): goproxy's context of a request in a tunnel ends only
// with the request, and nothing else reads the tunnel meanwhile. Over
// plain HTTP, and for HTTP/2 clients, ctx ends with the client already.
func (t *tunnel) watchClient(ctx context.Context) (context.Context, func()) {
	if t == nil || t.mitm == nil || t.mitm.h1 == nil {
		return ctx, func() {}
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := t.mitm.h1.watch(cancel)
	return wctx, func() { stop(); cancel() }
}

// connectHook carries what handleConnect decided about a CONNECT to the
// hijack that follows it.
type connectHook struct {
	t *tunnel // set by handleConnect for an intercepted tunnel
}

// connectHookKey is the request-context key of a CONNECT's *connectHook.
type connectHookKey struct{}

// tunnelWriter is the ResponseWriter of a CONNECT: its Hijack hands goproxy
// a mitmConn for an intercepted tunnel, the raw connection otherwise.
type tunnelWriter struct {
	http.ResponseWriter
	s    *Server
	hook *connectHook
	host string
}

func (w tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		hijacked(conn)
	}
	if err != nil || w.hook.t == nil {
		return conn, rw, err
	}
	mc := newMitmConn(conn, rw.Reader, func() (*tls.Config, error) { return w.s.ca.TLSConfigForHost(w.host) }, w.s.limits())
	t := w.hook.t
	mc.serveH2 = func(conn net.Conn) { w.s.serveTunnelH2(conn, t) }
	if t.out != nil {
		mc.respHeads.buffers = t.out.buffers
	}
	t.mitm = mc
	return mc, bufio.NewReadWriter(bufio.NewReader(mc), rw.Writer), nil
}

func (w tunnelWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limits returns the configured limits on clients.
func (s *Server) limits() connLimits {
	cfg := s.cfg.Load()
	return connLimits{
		maxHeaderBytes: cfg.MaxHeaderBytes,
		idle:           cfg.IdleTimeout,
		readHeader:     cfg.ReadHeaderTimeout,
		handshake:      cfg.TLSHandshakeTimeout,
	}
}

// checkConnectTarget reports what is wrong with a CONNECT's host:port, or
// nil: a host checkHostName takes, and a port from 1 to 65535.
func checkConnectTarget(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return errors.New("want host:port")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return errors.New("port must be 1 to 65535")
	}
	return checkHostName(host)
}
