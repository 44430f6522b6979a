package profile

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// clientStream writes what an HTTP/2 client sends: the magic, a preface,
// then requests, the first with a HEADERS priority and a large body.
func clientStream() []byte {
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	fr.WriteSettings(http2.Setting{ID: 1, Val: 65536}, http2.Setting{ID: 2, Val: 0}, http2.Setting{ID: 4, Val: 6291456})
	fr.WriteWindowUpdate(0, 15663105)
	fr.WritePriority(3, http2.PriorityParam{Weight: 200})
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":authority", "h"}, {":scheme", "https"}, {":path", "/a"}, {"user-agent", "x"}, {"cookie", "a=1"}, {"cookie", "b=2"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true,
		Priority: http2.PriorityParam{Exclusive: true, Weight: 255}})
	fr.WriteData(1, false, bytes.Repeat([]byte("d"), 16384))
	fr.WriteData(1, true, bytes.Repeat([]byte("d"), 100))
	fr.WriteWindowUpdate(0, 99) // after the first request: not the preface's
	block.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":path", "/b"}, {":authority", "h"}, {":scheme", "https"}, {"accept", "*/*"}, {"user-agent", "x"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	half := block.Len() / 2
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block.Bytes()[:half], EndStream: true})
	fr.WriteContinuation(3, true, block.Bytes()[half:])
	return b.Bytes()
}

// TestH2Recorder: whatever the chunking of the stream, the recorder has the
// preface and each request's order.
func TestH2Recorder(t *testing.T) {
	stream := clientStream()
	for _, step := range []int{1, 5, 9, 100, len(stream)} {
		var r H2Recorder
		for p := stream; len(p) > 0; p = p[min(step, len(p)):] {
			r.Write(p[:min(step, len(p))])
		}
		p, ok := r.Preface()
		if !ok {
			t.Fatalf("step %d: no preface", step)
		}
		got := fmt.Sprintf("%v|%d|%v|%v", p.Settings, p.WindowUpdate, p.Priorities, *p.HeaderPriority)
		want := "[[HEADER_TABLE_SIZE = 65536] [ENABLE_PUSH = 0] [INITIAL_WINDOW_SIZE = 6291456]]|15663105|[{3 {0 false 200 0 0}}]|{0 true 255 0 0}"
		if got != want {
			t.Errorf("step %d: preface %s, want %s", step, got, want)
		}
		b, ok := r.Take("GET", "/b")
		if !ok || !slices.Equal(b.Pseudo, []string{":method", ":path", ":authority", ":scheme"}) || !slices.Equal(b.Names, []string{"accept", "user-agent"}) {
			t.Errorf("step %d: GET /b order %v %v", step, b, ok)
		}
		a, ok := r.Take("POST", "/a")
		if !ok || strings.Join(a.Names, ",") != "user-agent,cookie,cookie" {
			t.Errorf("step %d: POST /a order %v %v", step, a, ok)
		}
		if _, ok := r.Take("GET", "/"); ok {
			t.Errorf("step %d: a third request", step)
		}
	}
}

func FuzzH2Recorder(f *testing.F) {
	f.Add(clientStream(), uint8(7))
	f.Add([]byte(http2.ClientPreface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		var r H2Recorder
		n := int(step)%32 + 1
		for p := stream; len(p) > 0; p = p[min(n, len(p)):] {
			r.Write(p[:min(n, len(p))])
		}
		if len(r.buf) > maxRecordedFrame+9+n || len(r.requests) > maxH2Requests {
			t.Fatalf("holds %d bytes, %d requests", len(r.buf), len(r.requests))
		}
		r.Preface()
		r.Take("GET", "/")
	})
}

// TestH2RecorderHugeHeaderList: a request of more fields than any browser
// sends (a block of one-byte indexed fields, which the server refuses with
// 431) keeps its place but no order: a name for each byte sent, kept until
// the recorder's bound of requests, held 17 MiB a MiB sent.
func TestH2RecorderHugeHeaderList(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "h"}, {":path", "/p"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block.Write(bytes.Repeat([]byte{0x80 | 16}, maxOrderedFields+1)) // accept-encoding, indexed, again and again
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
	var r H2Recorder
	r.Write(b.Bytes())
	o, ok := r.Take("GET", "/p")
	if !ok || len(o.Names) != 0 || len(o.Pseudo) != 0 {
		t.Errorf("a request of %d fields: kept %v, %d names; want its place, without an order", maxOrderedFields+5, ok, len(o.Names))
	}
}
