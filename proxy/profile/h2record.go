package profile

import (
	"encoding/binary"
	"strings"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// H2Recorder follows the cleartext stream an HTTP/2 client sends and keeps
// what identifies it: its preface (the first SETTINGS with their order, the
// connection WINDOW_UPDATE and PRIORITY frames before its first request,
// the priority of that request's HEADERS) and, for each request, the order
// of its pseudo-headers and headers. It decodes every header block (HPACK
// state runs across them) and skips DATA without keeping it; a stream it
// cannot follow (a frame over maxRecordedFrame, a bad block) stops it.
// Write is for one goroutine; the other methods are safe for concurrent
// use. The zero value is ready.
type H2Recorder struct {
	buf     []byte // an incomplete frame (or the magic)
	skip    int    // payload bytes of a frame being passed over
	magic   bool   // the client magic has passed
	block   []byte // a header block awaiting its CONTINUATIONs
	blockID uint32
	dec     *hpack.Decoder
	stopped bool

	mu       sync.Mutex // guards the fields below
	preface  wire.Preface
	settings bool // the first SETTINGS has come
	started  bool // the first HEADERS has come: the preface is complete
	requests []H2Request
}

// H2Request is the order of one request's header fields.
type H2Request struct {
	Method, Path string
	Order        wire.Order // Names lowercase, as sent
}

// maxRecordedFrame bounds the frames an H2Recorder holds to read; larger
// ones (but DATA, which it skips) stop it.
const maxRecordedFrame = 1 << 20

// maxH2Requests bounds the requests kept for takers.
const maxH2Requests = 64

// maxOrderedFields bounds the fields of a request whose order is kept: a
// block of one-byte indexed fields would otherwise keep a name (16 bytes
// and more) for each byte sent.
const maxOrderedFields = 1024

// Write follows p, the next bytes the client sent. It never fails.
func (r *H2Recorder) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && !r.stopped {
		if r.skip > 0 {
			k := min(r.skip, len(p))
			r.skip -= k
			p = p[k:]
			continue
		}
		r.buf = append(r.buf, p...)
		p = nil
		r.frames()
	}
	return n, nil
}

// frames takes the whole frames in buf.
func (r *H2Recorder) frames() {
	if !r.magic {
		if len(r.buf) < len(http2.ClientPreface) {
			return
		}
		if string(r.buf[:len(http2.ClientPreface)]) != http2.ClientPreface {
			r.stop()
			return
		}
		r.buf = r.buf[len(http2.ClientPreface):]
		r.magic = true
	}
	for len(r.buf) >= 9 && !r.stopped {
		length := int(r.buf[0])<<16 | int(r.buf[1])<<8 | int(r.buf[2])
		typ, flags := http2.FrameType(r.buf[3]), http2.Flags(r.buf[4])
		id := binary.BigEndian.Uint32(r.buf[5:9]) & (1<<31 - 1)
		if typ == http2.FrameData {
			r.skip = length
			r.buf = r.buf[9:]
			if k := min(r.skip, len(r.buf)); k > 0 {
				r.skip -= k
				r.buf = r.buf[k:]
			}
			continue
		}
		if length > maxRecordedFrame {
			r.stop()
			return
		}
		if len(r.buf) < 9+length {
			return
		}
		r.frame(typ, flags, id, r.buf[9:9+length])
		if r.stopped {
			return
		}
		r.buf = r.buf[9+length:]
	}
	if len(r.buf) == 0 {
		r.buf = nil // let a large frame's buffer go
	}
}

func (r *H2Recorder) stop() {
	r.stopped = true
	r.buf, r.block = nil, nil
}

// frame takes one frame other than DATA.
func (r *H2Recorder) frame(typ http2.FrameType, flags http2.Flags, id uint32, payload []byte) {
	switch typ {
	case http2.FrameSettings:
		if flags&http2.FlagSettingsAck != 0 || len(payload)%6 != 0 {
			return
		}
		r.mu.Lock()
		if !r.settings {
			r.settings = true
			for i := 0; i < len(payload); i += 6 {
				r.preface.Settings = append(r.preface.Settings, http2.Setting{
					ID: http2.SettingID(binary.BigEndian.Uint16(payload[i:])), Val: binary.BigEndian.Uint32(payload[i+2:])})
			}
		}
		r.mu.Unlock()
	case http2.FrameWindowUpdate:
		if id == 0 && len(payload) == 4 {
			r.mu.Lock()
			if !r.started && r.preface.WindowUpdate == 0 {
				r.preface.WindowUpdate = binary.BigEndian.Uint32(payload) & (1<<31 - 1)
			}
			r.mu.Unlock()
		}
	case http2.FramePriority:
		if len(payload) == 5 {
			r.mu.Lock()
			if !r.started && len(r.preface.Priorities) < 16 {
				r.preface.Priorities = append(r.preface.Priorities, wire.PriorityFrame{StreamID: id, PriorityParam: priorityOf(payload)})
			}
			r.mu.Unlock()
		}
	case http2.FrameHeaders:
		if flags&http2.FlagHeadersPadded != 0 {
			if len(payload) < 1 || int(payload[0]) >= len(payload) {
				r.stop()
				return
			}
			payload = payload[1 : len(payload)-int(payload[0])]
		}
		if flags&http2.FlagHeadersPriority != 0 {
			if len(payload) < 5 {
				r.stop()
				return
			}
			if r.first() {
				p := priorityOf(payload)
				r.mu.Lock()
				r.preface.HeaderPriority = &p
				r.mu.Unlock()
			}
			payload = payload[5:]
		}
		r.first()
		r.block, r.blockID = append(r.block[:0], payload...), id
		if flags&http2.FlagHeadersEndHeaders != 0 {
			r.decode()
		}
	case http2.FrameContinuation:
		if r.block == nil || id != r.blockID || len(r.block)+len(payload) > maxRecordedFrame {
			r.stop()
			return
		}
		r.block = append(r.block, payload...)
		if flags&http2.FlagContinuationEndHeaders != 0 {
			r.decode()
		}
	}
}

// first marks the first HEADERS: it reports whether this is it.
func (r *H2Recorder) first() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	was := r.started
	r.started = true
	return !was
}

func priorityOf(b []byte) http2.PriorityParam {
	dep := binary.BigEndian.Uint32(b)
	return http2.PriorityParam{StreamDep: dep & (1<<31 - 1), Exclusive: dep>>31 == 1, Weight: b[4]}
}

// decode decodes a whole header block into a request's order.
func (r *H2Recorder) decode() {
	if r.dec == nil {
		r.dec = hpack.NewDecoder(4096, nil)
		r.dec.SetMaxStringLength(maxRecordedFrame)
	}
	var req H2Request
	fields, err := r.dec.DecodeFull(r.block)
	r.block = r.block[:0]
	if err != nil {
		r.stop()
		return
	}
	for _, f := range fields {
		switch {
		case strings.HasPrefix(f.Name, ":"):
			req.Order.Pseudo = append(req.Order.Pseudo, f.Name)
			switch f.Name {
			case ":method":
				req.Method = f.Value
			case ":path":
				req.Path = f.Value
			}
		default:
			req.Order.Names = append(req.Order.Names, f.Name)
		}
	}
	if req.Method == "" { // trailers
		return
	}
	if len(fields) > maxOrderedFields {
		// No browser sends so many; the server likely refuses the list
		// (431), and no handler would take its order: what is kept for it
		// stays small.
		req.Order = wire.Order{}
	}
	r.mu.Lock()
	if len(r.requests) == maxH2Requests {
		r.requests = r.requests[1:]
	}
	r.requests = append(r.requests, req)
	r.mu.Unlock()
}

// Preface returns the client's preface; ok is false until its first
// request has come.
func (r *H2Recorder) Preface() (p wire.Preface, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.preface, r.started && r.settings
}

// Take returns the order of the oldest request kept with this method and
// path (the oldest of all when none matches) and forgets it; ok is false
// when none is kept.
func (r *H2Recorder) Take(method, path string) (o wire.Order, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.requests) == 0 {
		return wire.Order{}, false
	}
	i := 0
	for j, req := range r.requests {
		if req.Method == method && req.Path == path {
			i = j
			break
		}
	}
	o = r.requests[i].Order
	r.requests = append(r.requests[:i], r.requests[i+1:]...)
	return o, true
}
