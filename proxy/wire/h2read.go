package wire

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// readLoop reads the server's frames until the connection ends.
func (c *H2Conn) readLoop() {
	defer close(c.done)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.fail(fmt.Errorf("wire: read frame: %w", err))
			return
		}
		if err := c.handle(f); err != nil {
			c.fail(err)
			return
		}
	}
}

// handle acts on one frame from the server.
func (c *H2Conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := c.applySettings(f); err != nil {
			return err
		}
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.fr.WriteSettingsAck()
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.fr.WritePing(true, f.Data)
	case *http2.WindowUpdateFrame:
		c.mu.Lock()
		var over *h2Stream // a stream whose window the update overflows
		if f.StreamID == 0 {
			if int64(c.sendWin)+int64(f.Increment) > maxWindow {
				c.mu.Unlock()
				return fmt.Errorf("wire: WINDOW_UPDATE of %d overflows the connection's send window of %d: %w",
					f.Increment, c.sendWin, http2.ConnectionError(http2.ErrCodeFlowControl))
			}
			c.sendWin += int32(f.Increment)
		} else if s := c.streams[f.StreamID]; s != nil {
			if int64(s.sendWin)+int64(f.Increment) > maxWindow {
				over = s
			} else {
				s.sendWin += int32(f.Increment)
			}
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if over != nil {
			over.cancel(http2.ErrCodeFlowControl, fmt.Errorf("wire: WINDOW_UPDATE of %d overflows stream %d's send window: %w",
				f.Increment, over.id, http2.StreamError{StreamID: over.id, Code: http2.ErrCodeFlowControl}))
		}
	case *http2.MetaHeadersFrame:
		c.onHeaders(f)
	case *http2.PushPromiseFrame:
		return c.onPushPromise(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		if s := c.streams[f.StreamID]; s != nil {
			s.reset = true
			if s.err == nil {
				s.err = http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode}
				if f.ErrCode == http2.ErrCodeRefusedStream {
					s.err = fmt.Errorf("%w: %w", ErrRetryable, s.err)
				}
			}
			c.forgetIfDone(s)
		}
		c.mu.Unlock()
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.goAway, c.lastStream = true, f.LastStreamID
		for id, s := range c.streams {
			if id > f.LastStreamID {
				s.reset = true
				s.err = fmt.Errorf("%w: GOAWAY above stream %d", ErrRetryable, f.LastStreamID)
				c.forgetIfDone(s)
			}
		}
		c.mu.Unlock()
	}
	return nil
}

// applySettings takes the server's SETTINGS. A value out of its range,
// or a new initial window size that would overflow a stream's send window,
// is a connection error.
func (c *H2Conn) applySettings(f *http2.SettingsFrame) error {
	table := int64(-1)
	defer func() {
		if table >= 0 {
			c.wmu.Lock()
			c.henc.SetMaxDynamicTableSizeLimit(uint32(table))
			c.wmu.Unlock()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.cond.Broadcast()
	return f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil { // a zero frame size would stall every write
			return fmt.Errorf("wire: server's %v: %w", s, err)
		}
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			c.maxStreams = s.Val
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(c.peerWin) // the framer bounds s.Val to maxWindow
			for _, st := range c.streams {
				if int64(st.sendWin)+delta > maxWindow {
					return fmt.Errorf("wire: SETTINGS_INITIAL_WINDOW_SIZE of %d overflows stream %d's send window: %w",
						s.Val, st.id, http2.ConnectionError(http2.ErrCodeFlowControl))
				}
			}
			for _, st := range c.streams {
				st.sendWin += int32(delta)
			}
			c.peerWin = int32(s.Val)
		case http2.SettingMaxFrameSize:
			c.maxFrame = s.Val
		case http2.SettingHeaderTableSize:
			table = int64(s.Val)
		}
		return nil
	})
}

// onHeaders takes a response head, an interim one (kept for the caller, up
// to maxInterim) or trailers.
func (c *H2Conn) onHeaders(f *http2.MetaHeadersFrame) {
	var malformed string // a stream error, sent once mu is let go
	c.mu.Lock()
	s := c.streams[f.StreamID]
	defer func() {
		c.mu.Unlock()
		if malformed != "" {
			s.cancel(http2.ErrCodeProtocol, fmt.Errorf("wire: stream %d: %s: %w", s.id, malformed, http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol}))
		}
	}()
	if s == nil {
		return
	}
	if s.gotResp { // trailers: one block, which ends the stream (RFC 9113 8.1)
		if !f.StreamEnded() || s.body.trailer != nil {
			malformed = "HEADERS after the response head that are no trailers ending the stream"
			return
		}
		s.body.trailer = http.Header{}
		for _, hf := range f.RegularFields() {
			s.body.trailer.Add(http.CanonicalHeaderKey(hf.Name), hf.Value)
		}
	} else {
		status, err := strconv.Atoi(f.PseudoValue("status"))
		if err != nil || status < 100 || status > 999 {
			s.reset, s.err = true, fmt.Errorf("wire: response with bad :status %q", f.PseudoValue("status"))
			c.forgetIfDone(s)
			return
		}
		if status < 200 {
			if f.StreamEnded() { // no final response can follow
				malformed = fmt.Sprintf("ended with an interim response (%d)", status)
				return
			}
			if status != http.StatusContinue && len(s.resp) < maxInterim {
				s.resp <- responseHead(s.req, f, status)
			}
			return
		}
		head := responseHead(s.req, f, status)
		resp := head.resp
		if cl := resp.Header.Get("Content-Length"); cl != "" {
			// Digits only, as x/net/http2's transport reads it; anything
			// else leaves the length unknown (DATA frames frame the body).
			if n, err := strconv.ParseUint(cl, 10, 63); err == nil {
				resp.ContentLength = int64(n)
			}
		}
		if f.StreamEnded() || s.req.Method == http.MethodHead {
			resp.ContentLength = max(resp.ContentLength, 0)
		}
		s.body.resp = resp // its Trailer filled by the body's reader at io.EOF
		s.gotResp = true
		s.resp <- head
	}
	if f.StreamEnded() {
		s.recvDone = true
		s.body.closeLocked(io.EOF)
		c.forgetIfDone(s)
	}
}

// onPushPromise takes a PUSH_PROMISE. With push disabled in the preface
// it is a connection error (RFC 9113 8.4; the ack of the SETTINGS need not
// be awaited: the promise rides on a stream opened after them, as x/net's
// Transport has it). Else its header block is decoded, as every header
// block must be to keep the connection's HPACK state (RFC 9113 4.3), and
// the promised stream is refused, as a client that wants no pushes does.
func (c *H2Conn) onPushPromise(f *http2.PushPromiseFrame) error {
	if !c.push {
		return fmt.Errorf("wire: PUSH_PROMISE on stream %d with push disabled: %w", f.StreamID, http2.ConnectionError(http2.ErrCodeProtocol))
	}
	c.mu.Lock()
	opened := f.StreamID%2 == 1 && f.StreamID < c.nextID
	c.mu.Unlock()
	if !opened || f.PromiseID%2 != 0 || f.PromiseID <= c.lastPromised {
		return fmt.Errorf("wire: PUSH_PROMISE of stream %d on stream %d: %w", f.PromiseID, f.StreamID, http2.ConnectionError(http2.ErrCodeProtocol))
	}
	c.lastPromised = f.PromiseID
	if err := c.decodePromise(f); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.fr.WriteRSTStream(f.PromiseID, http2.ErrCodeRefusedStream)
}

// decodePromise feeds a PUSH_PROMISE's header block, and the CONTINUATIONs
// that carry the rest of it, through the connection's HPACK decoder, its
// fields dropped; it is bounded as the Framer bounds a HEADERS block
// (readMetaFrame): past the head's bound, a fragment larger than twice
// what is left is a connection error. The Framer assembles only HEADERS
// blocks, and its check of the frame order knows no PUSH_PROMISE: it
// would take the promise's CONTINUATIONs for stray ones. So they are read
// here with AllowIllegalReads on (never while a HEADERS frame is read:
// the two are incompatible), and the order is checked here.
func (c *H2Conn) decodePromise(f *http2.PushPromiseFrame) error {
	d, remain := c.hdec, c.fr.MaxHeaderListSize
	d.SetEmitEnabled(true)
	d.SetMaxStringLength(int(min(remain, math.MaxInt32)))
	d.SetEmitFunc(func(hf hpack.HeaderField) {
		if hf.Size() > remain {
			remain = 0
			d.SetEmitEnabled(false)
			return
		}
		remain -= hf.Size()
	})
	defer d.SetEmitFunc(func(hpack.HeaderField) {})
	if !f.HeadersEnded() {
		c.fr.AllowIllegalReads = true
		defer func() { c.fr.AllowIllegalReads = false }()
	}
	var hc interface {
		HeaderBlockFragment() []byte
		HeadersEnded() bool
	} = f
	for {
		frag := hc.HeaderBlockFragment()
		if int64(len(frag)) > 2*int64(remain) {
			return fmt.Errorf("wire: PUSH_PROMISE of stream %d: header block beyond %d bytes: %w",
				f.PromiseID, c.fr.MaxHeaderListSize, http2.ConnectionError(http2.ErrCodeProtocol))
		}
		if _, err := d.Write(frag); err != nil {
			return fmt.Errorf("wire: PUSH_PROMISE of stream %d: %v: %w", f.PromiseID, err, http2.ConnectionError(http2.ErrCodeCompression))
		}
		if hc.HeadersEnded() {
			break
		}
		fh, err := c.fr.ReadFrameHeader()
		if err != nil {
			return fmt.Errorf("wire: read frame: %w", err)
		}
		if fh.Type != http2.FrameContinuation || fh.StreamID != f.StreamID {
			return fmt.Errorf("wire: %v on stream %d within the header block of a PUSH_PROMISE on stream %d: %w",
				fh.Type, fh.StreamID, f.StreamID, http2.ConnectionError(http2.ErrCodeProtocol))
		}
		next, err := c.fr.ReadFrameForHeader(fh)
		if err != nil {
			return fmt.Errorf("wire: read frame: %w", err)
		}
		hc = next.(*http2.ContinuationFrame)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("wire: PUSH_PROMISE of stream %d: %v: %w", f.PromiseID, err, http2.ConnectionError(http2.ErrCodeCompression))
	}
	return nil
}

// responseHead is the response to req that a HEADERS frame with this status
// carries, its length not yet known, with the frame's field names.
func responseHead(req *http.Request, f *http2.MetaHeadersFrame, status int) h2Head {
	fields := f.RegularFields()
	resp := &http.Response{
		Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
		Proto: "HTTP/2.0", ProtoMajor: 2, Header: make(http.Header, len(fields)),
		ContentLength: -1, Request: req,
	}
	names := make([]string, len(fields))
	for i, hf := range fields {
		resp.Header.Add(http.CanonicalHeaderKey(hf.Name), hf.Value)
		names[i] = hf.Name
	}
	return h2Head{resp: resp, names: names}
}

// onData takes a DATA frame: into its stream's body, flow-controlled. A
// frame beyond the connection's receive window is a connection error; one
// beyond its stream's, or before its response head, resets the stream: what
// the server sends is never held beyond the windows the client gave it.
func (c *H2Conn) onData(f *http2.DataFrame) error {
	n := int32(f.Header().Length) // at most the frame size limit, 2^24-1
	c.mu.Lock()
	if n > c.recvWin {
		win := c.recvWin
		c.mu.Unlock()
		return fmt.Errorf("wire: DATA of %d bytes beyond the connection's receive window of %d: %w",
			n, win, http2.ConnectionError(http2.ErrCodeFlowControl))
	}
	c.recvWin -= n
	s := c.streams[f.StreamID]
	var code http2.ErrCode // of the stream error that drops the frame
	var why string
	switch {
	case s == nil || s.reset: // nobody reads it
	case !s.gotResp:
		code, why = http2.ErrCodeProtocol, "before its response head"
	case n > s.recvWin:
		code, why = http2.ErrCodeFlowControl, fmt.Sprintf("beyond its receive window of %d", s.recvWin)
	}
	if s == nil || s.reset || why != "" {
		c.recvUnack += n // dropped: the connection's share goes back now
		c.mu.Unlock()
		if why != "" {
			s.cancel(code, fmt.Errorf("wire: DATA of %d bytes on stream %d %s: %w", n, s.id, why, http2.StreamError{StreamID: s.id, Code: code}))
		}
		return c.giveBack(0, 0)
	}
	s.recvWin -= n
	data := f.Data()
	s.body.writeLocked(data)
	pad := n - int32(len(data)) // consumed at once
	c.recvUnack += pad
	s.body.unacked += pad
	if f.StreamEnded() {
		s.recvDone = true
		s.body.closeLocked(io.EOF)
		c.forgetIfDone(s)
	}
	c.mu.Unlock()
	return nil
}

// giveBack sends WINDOW_UPDATEs for what was consumed once it is worth it:
// the connection's, and stream id's of n.
func (c *H2Conn) giveBack(id uint32, n int32) error {
	c.mu.Lock()
	connInc := int32(0)
	if c.recvUnack >= windowUpdateSize {
		connInc, c.recvUnack = c.recvUnack, 0
		c.recvWin += connInc
	}
	closed := c.err != nil
	c.mu.Unlock()
	if closed || connInc == 0 && n == 0 {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if connInc > 0 {
		if err := c.fr.WriteWindowUpdate(0, uint32(connInc)); err != nil {
			return err
		}
	}
	if n > 0 {
		return c.fr.WriteWindowUpdate(id, uint32(n))
	}
	return nil
}
