package wire

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"golang.org/x/net/http2"
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
		c.applySettings(f)
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
		if f.StreamID == 0 {
			c.sendWin += int32(f.Increment)
		} else if s := c.streams[f.StreamID]; s != nil {
			s.sendWin += int32(f.Increment)
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	case *http2.MetaHeadersFrame:
		c.onHeaders(f)
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

// applySettings takes the server's SETTINGS.
func (c *H2Conn) applySettings(f *http2.SettingsFrame) {
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
	f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			c.maxStreams = s.Val
		case http2.SettingInitialWindowSize:
			delta := int32(s.Val) - c.peerWin
			for _, st := range c.streams {
				st.sendWin += delta
			}
			c.peerWin = int32(s.Val)
		case http2.SettingMaxFrameSize:
			c.maxFrame = s.Val
		case http2.SettingHeaderTableSize:
			table = int64(s.Val)
		}
		return nil
	})
	c.cond.Broadcast()
}

// onHeaders takes a response head (interim ones dropped) or trailers.
func (c *H2Conn) onHeaders(f *http2.MetaHeadersFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[f.StreamID]
	if s == nil {
		return
	}
	if s.gotResp { // trailers
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
			return
		}
		resp := &http.Response{
			Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
			Proto: "HTTP/2.0", ProtoMajor: 2, Header: make(http.Header, len(f.Fields)),
			ContentLength: -1, Request: s.req,
		}
		for _, hf := range f.RegularFields() {
			resp.Header.Add(http.CanonicalHeaderKey(hf.Name), hf.Value)
		}
		if cl := resp.Header.Get("Content-Length"); cl != "" {
			if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
				resp.ContentLength = n
			}
		}
		if f.StreamEnded() || s.req.Method == http.MethodHead {
			resp.ContentLength = max(resp.ContentLength, 0)
		}
		resp.Trailer = s.body.trailer
		s.gotResp = true
		s.resp <- resp
	}
	if f.StreamEnded() {
		s.recvDone = true
		s.body.closeLocked(io.EOF)
		c.forgetIfDone(s)
	}
}

// onData takes a DATA frame: into its stream's body, flow-controlled.
func (c *H2Conn) onData(f *http2.DataFrame) error {
	n := int32(f.Header().Length)
	c.mu.Lock()
	s := c.streams[f.StreamID]
	if s == nil || s.reset {
		c.recvUnack += n // nobody reads it: give it back now
		c.mu.Unlock()
		return c.giveBack(0, 0)
	}
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
