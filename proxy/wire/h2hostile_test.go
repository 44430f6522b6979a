package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// hostileH2 serves one HTTP/2 connection on loopback: it sends settings,
// and on the first request's HEADERS runs act with its framer and the
// stream's ID, then a PING; it reads the client's frames until the PING's
// ack or the connection's end and sends what it saw: the RST_STREAM codes
// and whether the ack came (the client's read loop had taken every frame
// before the PING by then). A connection that lived stays open until the
// test ends.
func hostileH2(t *testing.T, settings []http2.Setting, act func(fr *http2.Framer, id uint32)) (addr string, seen <-chan hostileSeen) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold); ln.Close() })
	out := make(chan hostileSeen, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			out <- hostileSeen{}
			return
		}
		defer c.Close()
		s := serveHostile(c, settings, act)
		out <- s
		if s.acked {
			<-hold
		}
	}()
	return ln.Addr().String(), out
}

// serveHostile is hostileH2's side of the connection c.
func serveHostile(c net.Conn, settings []http2.Setting, act func(fr *http2.Framer, id uint32)) (s hostileSeen) {
	fr, err := proxytest.H2ServerFramer(c, settings...)
	if err != nil {
		return s
	}
	acted := false
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return s
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if !acted {
				acted = true
				act(fr, f.StreamID)
				fr.WritePing(false, [8]byte{'h', 'o', 's', 't', 'i', 'l', 'e'})
			}
		case *http2.RSTStreamFrame:
			s.resets = append(s.resets, f.ErrCode)
		case *http2.PingFrame:
			if f.IsAck() {
				s.acked = true
				return s
			}
		}
	}
}

type hostileSeen struct {
	resets []http2.ErrCode // RST_STREAM codes the client sent
	acked  bool            // the client acked the PING: the connection lived
}

func writeStatus(fr *http2.Framer, id uint32, endStream bool) {
	writeFields(fr, id, endStream, ":status", "200")
}

// dialH2 opens an H2Conn with the default preface to the server at addr,
// closed when the test ends.
func dialH2(t *testing.T, addr string) *H2Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewH2Conn(nc, Preface{}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeFields sends a HEADERS frame of the fields kv (name, value, ...) on
// id.
func writeFields(fr *http2.Framer, id uint32, endStream bool, kv ...string) {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for i := 0; i+1 < len(kv); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: endStream})
}

// TestH2TrailersAtEOF: a response's trailers reach resp.Trailer when its
// body is read to its end, by the reader, and not before: the connection's
// read loop never writes a map the caller may be reading (as an HTTP/2
// client's stream does, announcing them).
func TestH2TrailersAtEOF(t *testing.T) {
	addr, seen := hostileH2(t, nil, func(fr *http2.Framer, id uint32) {
		writeStatus(fr, id, false)
		fr.WriteData(id, false, []byte("ok"))
		writeFields(fr, id, true, "x-sum", "42")
	})
	c := dialH2(t, addr)
	req, _ := http.NewRequest("GET", "https://origin.test/", nil)
	resp, err := c.RoundTrip(req, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := <-seen; !got.acked { // the read loop has taken the trailers
		t.Fatal("the connection did not live")
	}
	if len(resp.Trailer) != 0 {
		t.Errorf("trailers before the body was read: %v", resp.Trailer)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "ok" {
		t.Fatalf("body %q, %v", body, err)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Errorf("trailers after the body: %v, want X-Sum: 42", resp.Trailer)
	}
}

// TestH2AdvertisedHeaderTable: a preface that advertises
// SETTINGS_HEADER_TABLE_SIZE 65536 (Chrome's and Firefox's profiles, and
// every mirrored browser) lets the origin's HPACK encoder use a dynamic
// table of up to 65536 bytes (RFC 7541 4.2, RFC 9113 6.5.2). An origin
// that does so (Netty's encoder follows the peer's setting) starts its
// first header block with a table size update to 65536; the client must
// decode it. A preface that advertises none allows the default 4096, and
// the same update is a COMPRESSION_ERROR.
func TestH2AdvertisedHeaderTable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings []http2.Setting
		used     uint32 // the table the origin's encoder takes
		ok       bool
	}{
		{name: "advertised", settings: []http2.Setting{
			{ID: http2.SettingHeaderTableSize, Val: 65536},
			{ID: http2.SettingEnablePush, Val: 0},
		}, used: 65536, ok: true},
		{name: "not advertised", used: 65536},
		// A client's 1 GiB is not kept: the origin would hold that much.
		{name: "beyond the cap", settings: []http2.Setting{{ID: http2.SettingHeaderTableSize, Val: 1 << 30}}, used: 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := hostileH2(t, nil, func(fr *http2.Framer, id uint32) {
				var block bytes.Buffer
				enc := hpack.NewEncoder(&block)
				enc.SetMaxDynamicTableSizeLimit(tc.used)
				enc.SetMaxDynamicTableSize(tc.used)
				enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				enc.WriteField(hpack.HeaderField{Name: "x-big-table", Value: "yes"})
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: true})
			})
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewH2Conn(nc, Preface{Settings: tc.settings}, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req, _ := http.NewRequest(http.MethodGet, "https://origin.test/", nil)
			resp, err := c.RoundTrip(req, 5*time.Second)
			if !tc.ok {
				var ce http2.ConnectionError
				if !errors.As(err, &ce) || http2.ErrCode(ce) != http2.ErrCodeCompression {
					t.Fatalf("a table beyond what the client's decoder allows: error %v, want a COMPRESSION_ERROR", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("the client advertised a 65536-byte table, the origin used it: %v", err)
			}
			resp.Body.Close()
			if resp.Header.Get("X-Big-Table") != "yes" {
				t.Errorf("header = %v", resp.Header)
			}
		})
	}
}

// TestH2PushPromiseRefused: a preface without SETTINGS_ENABLE_PUSH 0 (a
// mirrored client that leaves push on, as Node's http2 client does; the
// zero Preface) lets the origin push. A PUSH_PROMISE carries a header
// block that changes the HPACK dynamic table (RFC 9113 4.3: every header
// block must be decoded, or the connection's compression state is lost);
// the response that follows refers to an entry the promise added. The
// client must read it right, whether the promise's block comes in one
// frame or with CONTINUATIONs, and refuse the promised stream.
func TestH2PushPromiseRefused(t *testing.T) {
	for _, split := range []int{0, 7} { // the bytes of the block in the PUSH_PROMISE itself; 0: all of it
		t.Run(fmt.Sprintf("split %d", split), func(t *testing.T) {
			addr, seen := hostileH2(t, nil, func(fr *http2.Framer, id uint32) {
				var block bytes.Buffer
				enc := hpack.NewEncoder(&block) // the server's one encoder for the connection
				for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
					{Name: ":authority", Value: "origin.test"}, {Name: ":path", Value: "/pushed.css"},
					{Name: "x-shared", Value: "added-by-the-promise"}} {
					enc.WriteField(f)
				}
				writePromise(fr, id, 2, block.Bytes(), split)
				block.Reset()
				enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				enc.WriteField(hpack.HeaderField{Name: "x-shared", Value: "added-by-the-promise"}) // indexed: one byte
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: true})
			})
			c := dialH2(t, addr) // the zero Preface: push not disabled
			req, _ := http.NewRequest(http.MethodGet, "https://origin.test/", nil)
			resp, err := c.RoundTrip(req, 5*time.Second)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("X-Shared"); got != "added-by-the-promise" {
				t.Errorf("x-shared = %q (header %v): the promise's header block was not decoded", got, resp.Header)
			}
			if got := <-seen; !got.acked || len(got.resets) != 1 || got.resets[0] != http2.ErrCodeRefusedStream {
				t.Errorf("the server saw resets %v, ping acked %v; want the promised stream refused on a live connection", got.resets, got.acked)
			}
		})
	}
}

// writePromise sends a PUSH_PROMISE of stream promised on id with the
// header block block: its first split bytes in the PUSH_PROMISE, the rest
// in CONTINUATIONs of up to split bytes (split 0: all in the PUSH_PROMISE).
func writePromise(fr *http2.Framer, id, promised uint32, block []byte, split int) {
	if split <= 0 {
		split = len(block)
	}
	first := block[:min(split, len(block))]
	block = block[len(first):]
	fr.WritePushPromise(http2.PushPromiseParam{StreamID: id, PromiseID: promised, BlockFragment: first, EndHeaders: len(block) == 0})
	for len(block) > 0 {
		frag := block[:min(split, len(block))]
		block = block[len(frag):]
		fr.WriteContinuation(id, len(block) == 0, frag)
	}
}

// promiseBlock is the header block of a PUSH_PROMISE of a request for
// path, its own encoder's.
func promiseBlock(path string) []byte {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "origin.test"}, {Name: ":path", Value: path}} {
		enc.WriteField(f)
	}
	return block.Bytes()
}

// writeData sends n bytes of DATA on id in frames of the default size.
func writeData(fr *http2.Framer, id uint32, n int) {
	chunk := make([]byte, defaultMaxFrame)
	for n > 0 {
		k := min(n, len(chunk))
		fr.WriteData(id, false, chunk[:k])
		n -= k
	}
}

// TestH2HostileServer: what a server sends beyond the limits the client
// set (flow-control windows, setting ranges, the order of a stream's
// frames) ends the stream or the connection with a FLOW_CONTROL_ERROR or
// PROTOCOL_ERROR the caller can match, never a buffer that grows without
// bound, a write loop that cannot end or a stream with neither a response
// nor an error; a stream error leaves the connection to the others.
func TestH2HostileServer(t *testing.T) {
	over := defaultWindow + defaultMaxFrame // one frame more than a default window
	cases := []struct {
		name     string
		preface  Preface
		settings []http2.Setting
		act      func(fr *http2.Framer, id uint32)
		code     http2.ErrCode // of the error the request gets
		stream   bool          // a stream error: the connection lives on
	}{
		{
			name:    "DATA beyond the stream's window",
			preface: Preface{WindowUpdate: 1 << 20}, // the connection's window is not the limit
			act:     func(fr *http2.Framer, id uint32) { writeStatus(fr, id, false); writeData(fr, id, over) },
			code:    http2.ErrCodeFlowControl, stream: true,
		},
		{
			name:    "DATA beyond the connection's window",
			preface: Preface{Settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 20}}},
			act:     func(fr *http2.Framer, id uint32) { writeStatus(fr, id, false); writeData(fr, id, over) },
			code:    http2.ErrCodeFlowControl,
		},
		{
			name: "WINDOW_UPDATE overflowing the connection's send window",
			act:  func(fr *http2.Framer, id uint32) { fr.WriteWindowUpdate(0, maxWindow) },
			code: http2.ErrCodeFlowControl,
		},
		{
			name: "WINDOW_UPDATE overflowing a stream's send window",
			act:  func(fr *http2.Framer, id uint32) { fr.WriteWindowUpdate(id, maxWindow) },
			code: http2.ErrCodeFlowControl, stream: true,
		},
		{
			name: "SETTINGS_INITIAL_WINDOW_SIZE overflowing a stream's send window",
			act: func(fr *http2.Framer, id uint32) {
				fr.WriteWindowUpdate(id, maxWindow-defaultWindow) // the stream's window at the maximum
				fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: defaultWindow + 1})
			},
			code: http2.ErrCodeFlowControl,
		},
		{
			name: "DATA before the response head",
			act:  func(fr *http2.Framer, id uint32) { fr.WriteData(id, true, []byte("early")) },
			code: http2.ErrCodeProtocol, stream: true,
		},
		{
			name: "HEADERS after the head that do not end the stream",
			act: func(fr *http2.Framer, id uint32) {
				writeStatus(fr, id, false)
				writeFields(fr, id, false, "x-sum", "42")
			},
			code: http2.ErrCodeProtocol, stream: true,
		},
		{
			name: "an interim response that ends the stream",
			act:  func(fr *http2.Framer, id uint32) { writeFields(fr, id, true, ":status", "103", "link", "</a.css>") },
			code: http2.ErrCodeProtocol, stream: true,
		},
		{
			name:    "PUSH_PROMISE with push disabled",
			preface: Preface{Settings: []http2.Setting{{ID: http2.SettingEnablePush, Val: 0}}},
			act:     func(fr *http2.Framer, id uint32) { writePromise(fr, id, 2, promiseBlock("/a.css"), 0) },
			code:    http2.ErrCodeProtocol,
		},
		{
			name: "PUSH_PROMISE on a stream the client did not open",
			act:  func(fr *http2.Framer, id uint32) { writePromise(fr, id+2, 2, promiseBlock("/a.css"), 0) },
			code: http2.ErrCodeProtocol,
		},
		{
			name: "another frame within a PUSH_PROMISE's header block",
			act: func(fr *http2.Framer, id uint32) {
				block := promiseBlock("/a.css")
				fr.WritePushPromise(http2.PushPromiseParam{StreamID: id, PromiseID: 2, BlockFragment: block[:3]})
				writeStatus(fr, id, true)
			},
			code: http2.ErrCodeProtocol,
		},
		{
			name: "PUSH_PROMISE header block beyond the head's bound",
			act: func(fr *http2.Framer, id uint32) {
				var block bytes.Buffer
				enc := hpack.NewEncoder(&block)
				big := hpack.HeaderField{Name: "x-big", Value: string(make([]byte, defaultMaxFrame-100))}
				fr.WritePushPromise(http2.PushPromiseParam{StreamID: id, PromiseID: 2, BlockFragment: promiseBlock("/a.css")})
				last := maxHeaderList/int(big.Size()) + 1 // the CONTINUATION past the bound
				for n := 0; n <= last; n++ {
					block.Reset()
					enc.WriteField(big)
					if fr.WriteContinuation(id, n == last, block.Bytes()) != nil {
						return // the client hung up
					}
				}
				writeStatus(fr, id, true) // a client that took it all would have its answer
			},
			code: http2.ErrCodeProtocol,
		},
		{
			name:     "SETTINGS_MAX_FRAME_SIZE of zero",
			settings: []http2.Setting{{ID: http2.SettingMaxFrameSize, Val: 0}},
			act:      func(fr *http2.Framer, id uint32) { writeStatus(fr, id, true) },
			code:     http2.ErrCodeProtocol,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, seen := hostileH2(t, tc.settings, tc.act)
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			// A client that stalls (a window it waits on forever, a write
			// loop that cannot end) fails here instead of hanging the test.
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			c, err := NewH2Conn(nc, tc.preface, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req, _ := http.NewRequest("GET", "https://origin.test/", nil)
			resp, err := c.RoundTrip(req, 0)
			got := <-seen // every frame taken before the body is read: no window given back
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatal("the request succeeded")
			}
			var se http2.StreamError
			var ce http2.ConnectionError
			switch {
			case tc.stream && errors.As(err, &se) && se.Code == tc.code:
			case !tc.stream && errors.As(err, &ce) && http2.ErrCode(ce) == tc.code:
			default:
				t.Fatalf("error %v, want a %s error of code %v", err, map[bool]string{true: "stream", false: "connection"}[tc.stream], tc.code)
			}
			if tc.stream {
				if !got.acked || len(got.resets) != 1 || got.resets[0] != tc.code {
					t.Errorf("the server saw resets %v, ping acked %v; want one RST_STREAM %v on a live connection", got.resets, got.acked, tc.code)
				}
				if c.Closed() {
					t.Error("a stream error closed the connection")
				}
			} else if got.acked || !c.Closed() {
				t.Errorf("connection error: ping acked %v, closed %v; want the connection ended", got.acked, c.Closed())
			}
		})
	}
}

// TestH2EarlyResponseEndsStream: a server that answers before the request's
// body has all gone gets the stream reset when the response's body is
// closed; the connection forgets the stream and can go idle, and the body's
// writer ends.
func TestH2EarlyResponseEndsStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resets := make(chan http2.ErrCode, 1)
	go func() {
		srv, err := ln.Accept()
		if err != nil {
			return
		}
		defer srv.Close()
		fr, err := proxytest.H2ServerFramer(srv, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		if err != nil {
			return
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				writeStatus(fr, f.StreamID, true) // the whole answer, before the body
			case *http2.RSTStreamFrame:
				resets <- f.ErrCode
				return
			}
		}
	}()
	c := dialH2(t, ln.Addr().String())
	pr, pw := io.Pipe() // a client still sending its body
	body := &closeNotingBody{Reader: pr, closed: make(chan struct{})}
	req, _ := http.NewRequest("POST", "https://origin.test/", body)
	resp, err := c.RoundTrip(req, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	select {
	case code := <-resets:
		if code != http2.ErrCodeCancel {
			t.Errorf("the server got RST_STREAM %v, want CANCEL", code)
		}
	case <-time.After(10 * time.Second): // a failure's guard, not a wait
		t.Fatal("the stream was never reset")
	}
	pw.Close()    // the client's body ends...
	<-body.closed // ...and so does the writer of the reset stream
	c.mu.Lock()
	open := len(c.streams)
	c.mu.Unlock()
	if open != 0 || c.idleFor() == 0 {
		t.Errorf("after the response's body was closed: %d streams open, idle for %v; want none, and idle", open, c.idleFor())
	}
}

// closeNotingBody is a request body that closes closed when it is closed.
type closeNotingBody struct {
	io.Reader
	closed chan struct{}
}

func (b *closeNotingBody) Close() error { close(b.closed); return nil }
