package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Preface is how an HTTP/2 client connection opens, after the client
// magic: a SETTINGS frame with Settings in this order, a connection
// WINDOW_UPDATE of WindowUpdate (0: none), then the PRIORITY frames; and
// the priority every HEADERS frame carries (nil: none). The zero Preface
// sends an empty SETTINGS frame and nothing else.
type Preface struct {
	Settings       []http2.Setting
	WindowUpdate   uint32
	Priorities     []PriorityFrame
	HeaderPriority *http2.PriorityParam
}

// PriorityFrame is a PRIORITY frame of a preface.
type PriorityFrame struct {
	StreamID uint32
	http2.PriorityParam
}

// ErrRetryable is a request the server did not process: refused before
// it started, or above the last stream of a GOAWAY. It can be sent again on
// another connection.
var ErrRetryable = errors.New("wire: request not processed")

// errStreamsFull is a connection at the server's stream limit.
var errStreamsFull = fmt.Errorf("%w: connection at its stream limit", ErrConnUnusable)

const (
	defaultWindow      = 65535
	defaultMaxFrame    = 16384
	maxHeaderList      = 1 << 20 // a response head's bound when not told
	initialHeaderTable = 4096    // SETTINGS_HEADER_TABLE_SIZE when not sent
	maxHeaderTable     = 1 << 16 // the decoder's table at most (browsers advertise 65536): a larger one a client advertised would let an origin keep that much per connection
	maxWindow          = 1<<31 - 1
	windowUpdateSize   = 1 << 15 // received bytes worth a WINDOW_UPDATE
)

// H2Conn is an HTTP/2 client connection. Make one with NewH2Conn; it is
// safe for concurrent use, streams run at once, and Close stops its read
// loop.
type H2Conn struct {
	conn    net.Conn
	bufs    *Buffers
	fr      *http2.Framer
	preface Preface
	ourWin  int32 // our initial stream window (from the preface's SETTINGS)
	push    bool  // the preface left SETTINGS_ENABLE_PUSH on

	// The read loop's own: the connection's HPACK decoder (the Framer's
	// ReadMetaHeaders) and the last stream a PUSH_PROMISE reserved.
	hdec         *hpack.Decoder
	lastPromised uint32

	wmu  sync.Mutex // the connection's write lock: held across frame writes, as a conn's own is
	henc *hpack.Encoder
	hbuf bytes.Buffer

	mu         sync.Mutex // guards the fields below
	cond       *sync.Cond // on mu: a send window grew, or a stream or the connection ended
	streams    map[uint32]*h2Stream
	nextID     uint32
	maxStreams uint32 // the server's SETTINGS_MAX_CONCURRENT_STREAMS
	peerWin    int32  // the server's initial stream window
	maxFrame   uint32 // the server's SETTINGS_MAX_FRAME_SIZE
	sendWin    int32  // the connection's send window
	recvWin    int32  // the connection's receive window: DATA the server may still send
	recvUnack  int32  // connection-level bytes consumed, not yet given back
	goAway     bool
	lastStream uint32 // of the GOAWAY
	idleSince  time.Time
	closeIdle  bool  // close once no stream is open
	err        error // set when the connection ended
	done       chan struct{}
}

// NewH2Conn writes the client preface on conn (whose TLS handshake, if
// any, is done and chose h2) and starts the connection's read loop.
// maxHead bounds a response's header list; zero means 1 MiB. bufs lends
// the streams' bodies their chunks (nil: the connection's own).
func NewH2Conn(conn net.Conn, p Preface, maxHead uint32, bufs *Buffers) (*H2Conn, error) {
	if maxHead == 0 {
		maxHead = maxHeaderList
	}
	if bufs == nil {
		bufs = NewBuffers()
	}
	c := &H2Conn{
		conn: conn, bufs: bufs, preface: p, ourWin: defaultWindow, push: true,
		streams: make(map[uint32]*h2Stream), nextID: 1,
		maxStreams: 100, peerWin: defaultWindow, maxFrame: defaultMaxFrame, sendWin: defaultWindow,
		recvWin:   int32(min(defaultWindow+int64(p.WindowUpdate), maxWindow)),
		idleSince: time.Now(), done: make(chan struct{}),
	}
	c.cond = sync.NewCond(&c.mu)
	table := uint32(initialHeaderTable)
	for _, s := range p.Settings {
		switch {
		case s.ID == http2.SettingInitialWindowSize && s.Val <= maxWindow:
			c.ourWin = int32(s.Val)
		case s.ID == http2.SettingHeaderTableSize:
			table = min(s.Val, maxHeaderTable)
		case s.ID == http2.SettingEnablePush:
			c.push = s.Val != 0
		}
	}
	c.fr = http2.NewFramer(conn, conn)
	// The server's encoder may grow its dynamic table up to what the
	// preface advertised (RFC 7541 4.2), from its first header block on:
	// the decoder allows it before the read loop starts, as x/net's
	// Transport does with its own setting.
	c.hdec = hpack.NewDecoder(table, nil)
	c.fr.ReadMetaHeaders = c.hdec
	c.fr.MaxHeaderListSize = maxHead
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.wmu.Lock()
	_, err := io.WriteString(conn, http2.ClientPreface)
	if err == nil {
		err = c.fr.WriteSettings(p.Settings...)
	}
	if err == nil && p.WindowUpdate > 0 {
		err = c.fr.WriteWindowUpdate(0, p.WindowUpdate)
	}
	for _, pf := range p.Priorities {
		if err == nil {
			err = c.fr.WritePriority(pf.StreamID, pf.PriorityParam)
		}
	}
	c.wmu.Unlock()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("wire: write HTTP/2 preface: %w", err)
	}
	go c.readLoop()
	return c, nil
}

// CanTakeRequest reports whether a new request may start on the
// connection now.
func (c *H2Conn) CanTakeRequest() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil && !c.goAway && uint32(len(c.streams)) < c.maxStreams && c.nextID < 1<<31-1
}

// Closed reports whether the connection has ended.
func (c *H2Conn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// Close closes the connection; its streams fail.
func (c *H2Conn) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// h2Stream is one request's stream.
type h2Stream struct {
	id       uint32
	c        *H2Conn
	req      *http.Request
	resp     chan h2Head   // interim heads (at most maxInterim), then the response head
	gotResp  bool          // guarded by c.mu
	sendWin  int32         // guarded by c.mu
	recvWin  int32         // DATA the server may still send on it; guarded by c.mu
	body     pipe          // the response body
	recvDone bool          // END_STREAM received; guarded by c.mu
	sendDone bool          // END_STREAM sent; guarded by c.mu
	reset    bool          // reset by either side; guarded by c.mu
	err      error         // why it ended early; guarded by c.mu
	ended    chan struct{} // closed when the stream is forgotten
}

// RoundTrip sends req on a new stream, its headers in the Order its
// context carries, and returns the response; headTimeout, when positive,
// bounds the wait for the response head (the stream is then reset). It
// fails with an error wrapping ErrConnUnusable when the connection cannot
// take a stream, and with one wrapping ErrRetryable when the server did not
// process it.
func (c *H2Conn) RoundTrip(req *http.Request, headTimeout time.Duration) (*http.Response, error) {
	hasBody := req.Body != nil && req.Body != http.NoBody
	// Lock order: wmu, then mu; never wmu while holding mu. Streams are
	// numbered under wmu, so that they open in the order of their IDs.
	c.wmu.Lock()
	c.mu.Lock()
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		c.wmu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrConnUnusable, err) // why it ended
	case c.goAway || c.nextID >= 1<<31-1:
		c.mu.Unlock()
		c.wmu.Unlock()
		return nil, ErrConnUnusable
	case uint32(len(c.streams)) >= c.maxStreams:
		c.mu.Unlock()
		c.wmu.Unlock()
		return nil, errStreamsFull
	}
	s := &h2Stream{id: c.nextID, c: c, req: req, resp: make(chan h2Head, maxInterim+1), sendWin: c.peerWin,
		recvWin: c.ourWin, ended: make(chan struct{}), sendDone: !hasBody}
	s.body = pipe{c: c, s: s, buf: dataBuffer{pool: &c.bufs.chunks}}
	c.nextID += 2
	c.streams[s.id] = s
	maxFrame := int(c.maxFrame)
	c.mu.Unlock()
	err := c.writeHeaders(s, req, !hasBody, maxFrame)
	c.wmu.Unlock()
	if err != nil {
		err = fmt.Errorf("wire: write headers: %w", err)
		c.fail(err)
		c.mu.Lock()
		if s.err != nil {
			err = s.err // the connection's first failure: the read loop's, when it closed the connection under the write
		}
		c.mu.Unlock()
		return nil, err // s.err is nil when the stream had ended before: a server may answer before the request
	}
	if hasBody {
		// The body as it is now: a retry of the request on another
		// stream may give req another while this one still writes.
		go s.writeBody(req.Body) // ends with the body, or with the stream
	}
	stop := context.AfterFunc(req.Context(), func() { s.cancel(http2.ErrCodeCancel, req.Context().Err()) })
	var timeout <-chan time.Time
	if headTimeout > 0 {
		timer := time.NewTimer(headTimeout)
		defer timer.Stop()
		timeout = timer.C
	}
	var resp h2Head
wait:
	for {
		select {
		case r := <-s.resp:
			if r.resp.StatusCode < 200 {
				passInterim(req, r.resp, r.names)
				continue
			}
			resp = r
		case <-timeout:
			s.cancel(http2.ErrCodeCancel, fmt.Errorf("wire: no response head within %v: %w", headTimeout, os.ErrDeadlineExceeded))
			<-s.ended
			resp = s.finalHead()
		case <-s.ended:
			resp = s.finalHead()
		}
		break wait
	}
	if resp.resp == nil {
		stop()
		c.mu.Lock()
		err := s.err
		c.mu.Unlock()
		if err == nil {
			err = errors.New("wire: the stream ended without a response")
		}
		return nil, err
	}
	resp.resp.Body = &h2Body{s: s, stop: stop, names: resp.names}
	return resp.resp, nil
}

// h2Head is a response head a stream received: the response, its body
// not yet set, and its header field names as the server sent them, in
// order (lower case, as HTTP/2 has them).
type h2Head struct {
	resp  *http.Response
	names []string
}

// maxInterim bounds the interim heads a stream keeps for its caller; the
// server's further ones are dropped.
const maxInterim = 4

// finalHead returns the response head the stream has received, none (a
// nil resp) once it has ended; interim heads before it are passed on.
func (s *h2Stream) finalHead() h2Head {
	for {
		select {
		case r := <-s.resp:
			if r.resp.StatusCode >= 200 {
				return r
			}
			passInterim(s.req, r.resp, r.names)
		default:
			return h2Head{}
		}
	}
}

// writeHeaders encodes and writes req's HEADERS (and CONTINUATIONs). The
// caller holds wmu.
func (c *H2Conn) writeHeaders(s *h2Stream, req *http.Request, endStream bool, max int) error {
	o, _ := OrderFrom(req.Context())
	pseudo := o.Pseudo
	if pseudo == nil {
		pseudo = defaultPseudo
	}
	authority := req.Host
	if authority == "" {
		authority = req.URL.Host
	}
	c.hbuf.Reset()
	for _, p := range pseudo {
		switch p {
		case ":method":
			c.henc.WriteField(hpack.HeaderField{Name: p, Value: valueOr(req.Method, http.MethodGet)})
		case ":authority":
			c.henc.WriteField(hpack.HeaderField{Name: p, Value: authority})
		case ":scheme":
			c.henc.WriteField(hpack.HeaderField{Name: p, Value: valueOr(req.URL.Scheme, "https")})
		case ":path":
			c.henc.WriteField(hpack.HeaderField{Name: p, Value: req.URL.RequestURI()})
		}
	}
	for _, f := range fields(req, o, true) {
		c.henc.WriteField(hpack.HeaderField{Name: f.name, Value: f.value})
	}
	block := c.hbuf.Bytes()
	first := true
	for first || len(block) > 0 {
		chunk := block[:min(len(block), max)]
		block = block[len(chunk):]
		var err error
		if first {
			hp := http2.HeadersFrameParam{StreamID: s.id, BlockFragment: chunk, EndStream: endStream, EndHeaders: len(block) == 0}
			if c.preface.HeaderPriority != nil {
				hp.Priority = *c.preface.HeaderPriority
			}
			err = c.fr.WriteHeaders(hp)
			first = false
		} else {
			err = c.fr.WriteContinuation(s.id, len(block) == 0, chunk)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeBody sends the request body in DATA frames as the send windows
// allow, then END_STREAM (with trailers, when the request has them).
func (s *h2Stream) writeBody(body io.ReadCloser) {
	c, req := s.c, s.req
	defer body.Close()
	buf := make([]byte, defaultMaxFrame)
	for {
		n, rerr := body.Read(buf)
		for data := buf[:n]; len(data) > 0; {
			k, err := s.awaitWindow(len(data))
			if err != nil {
				return
			}
			c.wmu.Lock()
			err = c.fr.WriteData(s.id, false, data[:k])
			c.wmu.Unlock()
			if err != nil {
				c.fail(err)
				return
			}
			data = data[k:]
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			s.cancel(http2.ErrCodeCancel, fmt.Errorf("wire: read request body: %w", rerr))
			return
		}
	}
	c.wmu.Lock()
	var err error
	if len(req.Trailer) > 0 {
		c.hbuf.Reset()
		for k, vs := range req.Trailer {
			for _, v := range vs {
				c.henc.WriteField(hpack.HeaderField{Name: strings.ToLower(k), Value: v})
			}
		}
		err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: c.hbuf.Bytes(), EndStream: true, EndHeaders: true})
	} else {
		err = c.fr.WriteData(s.id, true, nil)
	}
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		return
	}
	c.mu.Lock()
	s.sendDone = true
	c.forgetIfDone(s)
	c.mu.Unlock()
}

// awaitWindow waits until both send windows allow some of n bytes and
// takes them: it returns how many may go now.
func (s *h2Stream) awaitWindow(n int) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if s.reset || c.err != nil {
			return 0, ErrConnUnusable
		}
		if k := min(int32(n), s.sendWin, c.sendWin, int32(c.maxFrame)); k > 0 {
			s.sendWin -= k
			c.sendWin -= k
			return int(k), nil
		}
		c.cond.Wait()
	}
}

// cancel resets the stream with code, unless it ended already; err is what
// its waiters get.
func (s *h2Stream) cancel(code http2.ErrCode, err error) {
	c := s.c
	c.mu.Lock()
	if s.reset || s.recvDone && s.sendDone {
		c.mu.Unlock()
		return
	}
	s.reset = true
	if s.err == nil {
		s.err = err
	}
	c.forgetIfDone(s)
	closed := c.err != nil
	c.mu.Unlock()
	if !closed {
		c.wmu.Lock()
		c.fr.WriteRSTStream(s.id, code)
		c.wmu.Unlock()
	}
}

// forgetIfDone drops a stream that has ended both ways, or was reset. The
// caller holds mu.
func (c *H2Conn) forgetIfDone(s *h2Stream) {
	if !(s.reset || s.recvDone && s.sendDone) {
		return
	}
	if _, ok := c.streams[s.id]; ok {
		delete(c.streams, s.id)
		close(s.ended)
		if len(c.streams) == 0 {
			c.idleSince = time.Now()
			if c.closeIdle {
				c.conn.Close() // the read loop ends the connection
			}
		}
	}
	c.cond.Broadcast()
}

// idleFor returns how long no stream has been open; zero while one is.
func (c *H2Conn) idleFor() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.streams) > 0 {
		return 0
	}
	return time.Since(c.idleSince)
}

// closeWhenIdle closes the connection now if no stream is open, else when
// the last one ends; no new stream starts on it.
func (c *H2Conn) closeWhenIdle() {
	c.mu.Lock()
	c.closeIdle, c.goAway = true, true
	idle := len(c.streams) == 0
	c.mu.Unlock()
	if idle {
		c.conn.Close()
	}
}

// fail ends the connection with err: every stream fails.
func (c *H2Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	for _, s := range c.streams {
		if s.err == nil {
			s.err = err
		}
		s.reset = true
		c.forgetIfDone(s)
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	c.conn.Close()
}
