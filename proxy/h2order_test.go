package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sessionproxy/sessionproxy/proxy/config"
)

// h2ServerWrites is what an HTTP/2 server writes on a connection, encoded
// as x/net's server does (a dynamic table): SETTINGS, a response head in
// sorted order naming the origin's in marker, DATA, a head without the
// field, one too large for one frame (CONTINUATION), trailers ending the
// stream, and a PING.
func h2ServerWrites(t *testing.T, marker string) []byte {
	var b, block bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	enc := hpack.NewEncoder(&block)
	head := func(id uint32, end bool, kv ...string) {
		block.Reset()
		for i := 0; i < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		frag := block.Bytes()
		first := true
		for first || len(frag) > 0 {
			k := min(len(frag), 1000) // small frames: CONTINUATION in the input too
			if first {
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag[:k], EndStream: end, EndHeaders: k == len(frag)})
			} else {
				fr.WriteContinuation(id, k == len(frag), frag[:k])
			}
			frag, first = frag[k:], false
		}
	}
	fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	head(1, false, ":status", "200", "content-type", "text/plain", marker, "x-b,set-cookie,content-type,x-a,set-cookie",
		"set-cookie", "a=1", "set-cookie", "b=2", "x-a", "2", "x-b", "1", "x-session-id", "s1")
	fr.WriteData(1, false, []byte("hello"))
	head(3, true, ":status", "404", "content-length", "0", "x-b", "1", "x-a", "2")
	big := strings.Repeat("v", 20000)
	head(5, false, ":status", "200", "x-big", big, "content-length", "2", marker, "x-big,x-z,content-length", "x-z", "z")
	fr.WriteData(5, false, []byte("ok"))
	head(1, true, "grpc-status", "0")
	fr.WritePing(false, [8]byte{1})
	return b.Bytes()
}

// h2Read reads frames as a client does: each header block's fields in
// order ("name: value" lines, a head's stream first) and the other frames'
// types with their payload.
func h2Read(t *testing.T, wire []byte) (heads [][]string, others []string) {
	t.Helper()
	fr := http2.NewFramer(nil, bytes.NewReader(wire))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return heads, others
		}
		if err != nil {
			t.Fatalf("the client reads: %v", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			lines := []string{strconv.Itoa(int(f.StreamID)) + " end=" + strconv.FormatBool(f.StreamEnded())}
			for _, hf := range f.Fields {
				v := hf.Value
				if len(v) > 100 && v == strings.Repeat(v[:1], len(v)) {
					v = v[:1] + "×" + strconv.Itoa(len(v)) // readable when it fails
				}
				lines = append(lines, hf.Name+": "+v)
			}
			heads = append(heads, lines)
		case *http2.DataFrame:
			others = append(others, "DATA "+string(f.Data()))
		default:
			others = append(others, f.Header().Type.String())
		}
	}
}

// TestH2Orderer: the header blocks an HTTP/2 server writes reach the client
// with their fields in the order the field named marker gives, that field
// gone, pseudo-headers first and the fields it does not name after, in the
// server's order; a block without it keeps its order; the other frames and
// the stream's ends are as written. However the server's writes are cut.
func TestH2Orderer(t *testing.T) {
	const marker = "x-order-test"
	in := h2ServerWrites(t, marker)
	wantHeads := [][]string{
		{"1 end=false", ":status: 200", "x-b: 1", "set-cookie: a=1", "content-type: text/plain", "x-a: 2", "set-cookie: b=2", "x-session-id: s1"},
		{"3 end=true", ":status: 404", "content-length: 0", "x-b: 1", "x-a: 2"},
		{"5 end=false", ":status: 200", "x-big: v×20000", "x-z: z", "content-length: 2"},
		{"1 end=true", "grpc-status: 0"},
	}
	wantOthers := []string{"SETTINGS", "DATA hello", "DATA ok", "PING"}
	for _, cut := range []int{1, 7, 9, 100, 4096, len(in)} {
		t.Run(strconv.Itoa(cut), func(t *testing.T) {
			o := newH2Orderer(marker, 1<<20)
			var out bytes.Buffer
			for p := in; len(p) > 0; p = p[min(cut, len(p)):] {
				piece := p[:min(cut, len(p))]
				if n, err := o.write(piece, out.Write); n != len(piece) || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			heads, others := h2Read(t, out.Bytes())
			if !slices.EqualFunc(heads, wantHeads, slices.Equal) {
				t.Errorf("heads\n%q\nwant\n%q", heads, wantHeads)
			}
			if !slices.Equal(others, wantOthers) {
				t.Errorf("other frames %q, want %q", others, wantOthers)
			}
		})
	}

	t.Run("frames without a header block go as they are", func(t *testing.T) {
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		fr.WriteData(1, false, []byte("part"))
		fr.WriteData(1, true, []byte("end"))
		o := newH2Orderer(marker, 1<<20)
		var writes [][]byte
		w := func(p []byte) (int, error) { writes = append(writes, p); return len(p), nil }
		o.write(b.Bytes()[:12], w) // a frame's header and part of its payload
		o.write(b.Bytes()[12:], w)
		if len(writes) != 2 || &writes[1][0] != &b.Bytes()[12] {
			t.Errorf("data frames copied or held: %d writes", len(writes))
		}
	})
}

// TestH2OrdererBadBlocks: a header block the orderer cannot read fails the
// write and every later one, never a panic or a block passed on that the
// client's decoder would then misread.
func TestH2OrdererBadBlocks(t *testing.T) {
	frame := func(typ http2.FrameType, flags http2.Flags, id uint32, payload []byte) []byte {
		var b bytes.Buffer
		http2.NewFramer(&b, nil).WriteRawFrame(typ, flags, id, payload)
		return b.Bytes()
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"bad HPACK", frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, []byte{0xff, 0xff, 0xff, 0xff})},
		{"padding beyond the frame", frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersPadded, 1, []byte{9, 0x88})},
		{"CONTINUATION alone", frame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 1, []byte{0x88})},
		{"a DATA inside a block", append(frame(http2.FrameHeaders, 0, 1, []byte{0x88}), frame(http2.FrameData, 0, 1, []byte("x"))...)},
		{"CONTINUATION of another stream", append(frame(http2.FrameHeaders, 0, 1, []byte{0x88}), frame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 3, nil)...)},
		{"a PUSH_PROMISE", frame(http2.FramePushPromise, http2.FlagPushPromiseEndHeaders, 1, []byte{0, 0, 0, 2, 0x82})},
		{"a large entry named over and over", frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, largeEntryBlock())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newH2Orderer("x-order-test", 1<<16)
			_, err := o.write(tc.in, func(p []byte) (int, error) { return len(p), nil })
			if !errors.Is(err, errH2Block) {
				t.Fatalf("write: %v, want errH2Block", err)
			}
			if _, err := o.write([]byte{0}, func(p []byte) (int, error) { return len(p), nil }); !errors.Is(err, errH2Block) {
				t.Errorf("the next write: %v", err)
			}
		})
	}
}

// largeEntryBlock is a header block of 3 KB that names one 3 KB entry of
// the dynamic table a thousand times: 3 MB once encoded as literals.
func largeEntryBlock() []byte {
	var b bytes.Buffer
	hpack.NewEncoder(&b).WriteField(hpack.HeaderField{Name: "x-big", Value: strings.Repeat("v", 3000)})
	return append(b.Bytes(), bytes.Repeat([]byte{0x80 | 62}, 1000)...) // indexed: the newest entry
}

// FuzzH2Orderer: any bytes, cut anywhere, give errH2Block or frames whose
// header blocks the client decodes, each in turn with one decoder (its
// state in step with the orderer's encoder); never a panic.
func FuzzH2Orderer(f *testing.F) {
	f.Add(h2ServerWrites(&testing.T{}, "x-order-test"), 5)
	f.Add([]byte{0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88}, 3)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		cut = max(1, cut%64)
		o := newH2Orderer("x-order-test", 1<<16)
		var out bytes.Buffer
		for p := in; len(p) > 0; p = p[min(cut, len(p)):] {
			if _, err := o.write(p[:min(cut, len(p))], out.Write); err != nil {
				if !errors.Is(err, errH2Block) {
					t.Fatalf("error %v", err)
				}
				return
			}
		}
		client := hpack.NewDecoder(4096, nil)
		var block []byte
		for b := out.Bytes(); len(b) >= h2FrameHeader; {
			n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
			typ, flags := http2.FrameType(b[3]), http2.Flags(b[4])
			if len(b) < h2FrameHeader+n {
				break // a frame that passed through as it is, cut short by the input's end
			}
			if typ == http2.FrameHeaders || typ == http2.FrameContinuation {
				block = append(block, b[h2FrameHeader:h2FrameHeader+n]...)
				if flags.Has(http2.FlagHeadersEndHeaders) {
					if _, err := client.DecodeFull(block); err != nil {
						t.Fatalf("the client cannot decode a block the orderer wrote: %v", err)
					}
					block = block[:0]
				}
			}
			b = b[h2FrameHeader+n:]
		}
	})
}

// h2Client speaks HTTP/2 to the proxy in an intercepted tunnel, frame by
// frame.
type h2Client struct {
	fr    *http2.Framer
	enc   *hpack.Encoder // the connection's HPACK state, into block
	block bytes.Buffer
}

// newH2Client opens an intercepted tunnel of h's proxy to target and
// speaks HTTP/2 in it.
func newH2Client(t *testing.T, h *harness, target string) *h2Client {
	t.Helper()
	tc, fr := h2Tunnel(t, h, target)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &h2Client{fr: fr}
	c.enc = hpack.NewEncoder(&c.block)
	return c
}

// get sends GET path to target on stream id and returns the stream's
// header blocks in the order they came, a "name: value" line a field,
// once the stream has ended.
func (c *h2Client) get(t *testing.T, target, path string, id uint32) [][]string {
	t.Helper()
	c.block.Reset()
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", target}, {":path", path}} {
		c.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block.Bytes(), EndStream: true, EndHeaders: true})
	var heads [][]string
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading stream %d: %v (after %q)", id, err, heads)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		case *http2.MetaHeadersFrame:
			lines := []string{}
			for _, hf := range f.Fields {
				lines = append(lines, hf.Name+": "+hf.Value)
			}
			heads = append(heads, lines)
		}
		if f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream) {
			return heads
		}
	}
}

// TestResponseHeadOrderToHTTP2Client: an HTTP/2 client in a tunnel gets
// the origin's header fields in the origin's order (lower case, as HTTP/2
// has them), an interim response's too, with the proxy's X-Session-*
// fields and what the server adds after them, from an HTTP/1.1 origin and
// from an HTTP/2 one.
func TestResponseHeadOrderToHTTP2Client(t *testing.T) {
	h1 := httptest.NewUnstartedServer(rawOriginOf(hintsOriginOrdered))
	h1.StartTLS()
	t.Cleanup(h1.Close)
	h2 := rawH2Origin(t, "x-b", "1", "set-cookie", "a=1; Path=/", "content-type", "text/plain", "x-a", "2", "set-cookie", "b=2; Path=/")
	cfg := testConfig(t)
	cfg.Fingerprint = config.FingerprintChrome // offers h2 to the origin
	trustOrigin(t, cfg, h1)
	trustOrigin(t, cfg, h2)
	h := startProxy(t, cfg)
	want := []string{"x-b: 1", "set-cookie: a=1; Path=/", "content-type: text/plain", "x-a: 2", "set-cookie: b=2; Path=/"}
	for name, origin := range map[string]*httptest.Server{"HTTP/1.1 origin": h1, "HTTP/2 origin": h2} {
		t.Run(name, func(t *testing.T) {
			target := origin.Listener.Addr().String()
			heads := newH2Client(t, h, target).get(t, target, "/x", 1)
			if len(heads) != 2 {
				t.Fatalf("header blocks %q, want a 103's and the response's", heads)
			}
			if hint := heads[0]; !slices.Equal(hint, []string{":status: 103", "x-hint: 1", "link: </a.css>; rel=preload"}) {
				t.Errorf("interim head %q", hint)
			}
			final := heads[1]
			if len(final) < len(want)+1 || final[0] != ":status: 200" || !slices.Equal(final[1:len(want)+1], want) {
				t.Fatalf("head\n%q\nwant :status, then the origin's fields in its order: %q", final, want)
			}
			for _, line := range final[len(want)+1:] {
				if !strings.HasPrefix(line, "x-session-") && !strings.HasPrefix(line, "content-length: ") && !strings.HasPrefix(line, "date: ") {
					t.Errorf("field %q after the origin's", line)
				}
			}
		})
	}
}

// hintsOriginOrdered is rawH2Origin's answer over HTTP/1.1: a 103, then a
// head whose lines no sorting gives.
const hintsOriginOrdered = "HTTP/1.1 103 Early Hints\r\nX-Hint: 1\r\nLink: </a.css>; rel=preload\r\n\r\n" +
	"HTTP/1.1 200 OK\r\nX-B: 1\r\nSet-Cookie: a=1; Path=/\r\nContent-Type: text/plain\r\nX-A: 2\r\nSet-Cookie: b=2; Path=/\r\nContent-Length: 2\r\n\r\nok"

// BenchmarkH2Orderer: what rewriting costs a response head of the size a
// page's usually is (a dozen fields) and its DATA, against passing the same
// bytes through.
func BenchmarkH2Orderer(b *testing.B) {
	var in, block bytes.Buffer
	fr := http2.NewFramer(&in, nil)
	enc := hpack.NewEncoder(&block)
	const marker = "x-order-bench"
	fields := []string{":status", "200", "cache-control", "private", "content-type", "text/html; charset=utf-8",
		"date", "Sat, 05 Dec 2026 10:00:00 GMT", "server", "nginx", "set-cookie", "sid=abcdef0123456789; Path=/; HttpOnly",
		"strict-transport-security", "max-age=31536000", "vary", "Accept-Encoding", "x-frame-options", "SAMEORIGIN",
		"x-session-id", "session_abcdefghij", "x-session-retries", "0",
		marker, "date,content-type,vary,server,set-cookie,cache-control,strict-transport-security,x-frame-options"}
	first := 0
	for range 2 { // the second block meets the first's entries in the server's table
		first = in.Len()
		block.Reset()
		for i := 0; i < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true})
		fr.WriteData(1, false, make([]byte, 1024))
	}
	discard := func(p []byte) (int, error) { return len(p), nil }
	for _, bc := range []struct {
		name  string
		write func(o *h2Orderer, p []byte) (int, error)
	}{
		{"rewritten", func(o *h2Orderer, p []byte) (int, error) { return o.write(p, discard) }},
		{"passed through", func(_ *h2Orderer, p []byte) (int, error) { return discard(p) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			o := newH2Orderer(marker, 1<<20)
			bc.write(o, in.Bytes()[:first])
			second := in.Bytes()[first:]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.write(o, second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestH2OrdererKeepsNoLargeBuffer: after a large header block the orderer
// keeps no buffer beyond h2KeptBuffer, nor the block's values.
func TestH2OrdererKeepsNoLargeBuffer(t *testing.T) {
	var in, block bytes.Buffer
	fr := http2.NewFramer(&in, nil)
	enc := hpack.NewEncoder(&block)
	enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	for i := range 20 {
		enc.WriteField(hpack.HeaderField{Name: "x-big-" + strconv.Itoa(i), Value: strings.Repeat("v", 10000)})
	}
	frag := block.Bytes()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: frag[:16000]})
	for frag = frag[16000:]; len(frag) > 0; frag = frag[min(len(frag), 16000):] {
		fr.WriteContinuation(1, len(frag) <= 16000, frag[:min(len(frag), 16000)])
	}
	o := newH2Orderer("x-order-test", 1<<20)
	var out bytes.Buffer
	if _, err := o.write(in.Bytes(), out.Write); err != nil {
		t.Fatal(err)
	}
	if heads, _ := h2Read(t, out.Bytes()); len(heads) != 1 || len(heads[0]) != 22 {
		t.Fatalf("the block did not come through whole: %d heads", len(heads))
	}
	for name, c := range map[string]int{"out": cap(o.out), "frame": cap(o.frame), "block": cap(o.block), "enced": cap(o.enced)} {
		if c > h2KeptBuffer {
			t.Errorf("%s keeps %d bytes", name, c)
		}
	}
	for _, f := range o.fields[:cap(o.fields)] {
		if f.Value != "" {
			t.Fatalf("a field's value is kept: %.20q…", f.Value)
		}
	}
}

// TestH2OrdererTableSizeUpdates: a block that starts with two dynamic
// table size updates, as x/net's server sends when the client lowered its
// table and raised it again (RFC 7541 4.2), is read, and so is the block
// after it; updates beyond the server's table or cut short fail.
func TestH2OrdererTableSizeUpdates(t *testing.T) {
	var in, block bytes.Buffer
	fr := http2.NewFramer(&in, nil)
	enc := hpack.NewEncoder(&block) // as x/net's server's: a 4096-byte limit
	head := func(id uint32, kv ...string) {
		block.Reset()
		for i := 0; i < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
	}
	head(1, ":status", "200", "vary", "a", "x-b", "1")
	enc.SetMaxDynamicTableSize(100) // the smallest since the last block, then the newest
	enc.SetMaxDynamicTableSize(8192)
	head(3, ":status", "200", "vary", "a", "x-b", "1")
	head(5, ":status", "204", "vary", "a", "x-b", "1")
	o := newH2Orderer("x-order-test", 1<<20)
	var out bytes.Buffer
	if _, err := o.write(in.Bytes(), out.Write); err != nil {
		t.Fatalf("the orderer fails a valid block: %v", err)
	}
	heads, _ := h2Read(t, out.Bytes())
	want := [][]string{
		{"1 end=true", ":status: 200", "vary: a", "x-b: 1"},
		{"3 end=true", ":status: 200", "vary: a", "x-b: 1"},
		{"5 end=true", ":status: 204", "vary: a", "x-b: 1"},
	}
	if !slices.EqualFunc(heads, want, slices.Equal) {
		t.Errorf("heads %q, want %q", heads, want)
	}

	for _, bad := range [][]byte{
		{0x3f, 0xe1, 0x3f}, // 8192: beyond the server's table
		{0x3f, 0xe1},       // a length that does not end
	} {
		var in bytes.Buffer
		http2.NewFramer(&in, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bad, EndHeaders: true})
		o := newH2Orderer("x-order-test", 1<<20)
		if _, err := o.write(in.Bytes(), io.Discard.Write); !errors.Is(err, errH2Block) {
			t.Errorf("update % x: %v, want errH2Block", bad, err)
		}
	}
}

// TestH2ClientChangesTableSize: an HTTP/2 client that lowers its HPACK
// table and raises it again between two requests gets both answers on one
// connection.
func TestH2ClientChangesTableSize(t *testing.T) {
	origin := httptest.NewUnstartedServer(rawOriginOf("HTTP/1.1 200 OK\r\nX-B: 1\r\nX-A: 2\r\nContent-Length: 2\r\n\r\nok"))
	origin.StartTLS()
	t.Cleanup(origin.Close)
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	target := origin.Listener.Addr().String()
	c := newH2Client(t, h, target)
	c.get(t, target, "/", 1)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 1024})
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 65536})
	if heads := c.get(t, target, "/", 3); len(heads) != 1 || len(heads[0]) < 3 || heads[0][1] != "x-b: 1" || heads[0][2] != "x-a: 2" {
		t.Errorf("second answer %q, want x-b, x-a first", heads)
	}
}
