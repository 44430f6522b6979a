package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"unsafe"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2FrameHeader is the length of an HTTP/2 frame's header.
const h2FrameHeader = 9

// h2MinFrame is the frame size every HTTP/2 peer takes
// (SETTINGS_MAX_FRAME_SIZE is at least this): rewritten header blocks are
// cut to it.
const h2MinFrame = 16384

// h2ServerTable is the largest dynamic table x/net's server encodes with
// (its MaxEncoderHeaderTableSize, left at the default), whatever table the
// client allows.
const h2ServerTable = 4096

// h2KeptBuffer is the largest buffer an h2Orderer keeps from one use to
// the next: one that a large block grew beyond it goes back to the GC.
const h2KeptBuffer = 64 << 10

// kept returns b emptied for reuse, or nil when it grew beyond
// h2KeptBuffer.
func kept[T any](b []T) []T {
	if cap(b)*int(unsafe.Sizeof(*new(T))) > h2KeptBuffer {
		return nil
	}
	return b[:0]
}

// newOrderMarker returns the name of the field through which an HTTP/2
// client stream's handler tells the connection's h2Orderer the origin's
// order: random, so that no origin sends one.
func newOrderMarker() string {
	return "x-sessionproxy-order-" + strings.ToLower(rand.Text())
}

// orderValue is the value of the order field for the origin's names.
func orderValue(names []string) string {
	return strings.ToLower(strings.Join(names, ","))
}

// h2OrderedConn is an HTTP/2 client's connection with what the server
// writes to it going through an h2Orderer.
type h2OrderedConn struct {
	net.Conn
	o *h2Orderer
}

func (c h2OrderedConn) Write(p []byte) (int, error) { return c.o.write(p, c.Conn.Write) }

// h2Orderer gives an HTTP/2 client a response's header fields in the order
// in which the origin sent them. x/net's server, which serves HTTP/2
// clients in tunnels, writes a response's fields sorted by name and has no
// hook to change that; the orderer sits under it, on the client's
// connection, and rewrites the header blocks the server writes.
//
// The stream's handler gives the order in the block itself: a field named
// marker (newOrderMarker) whose value is the origin's names, lower case,
// separated by commas (orderValue; field names hold none). The orderer
// takes that field out and puts the others in that order (orderFields); a
// block without one keeps the server's order. As the client's HPACK
// decoder follows the orderer's encoder from the first block on, every
// block is decoded and encoded again; the encoder keeps no dynamic table
// (every field a literal), which any client's SETTINGS_HEADER_TABLE_SIZE
// allows. Other frames pass through as written, whole writes of them
// without a copy.
//
// It is used by the server's writes, one at a time.
type h2Orderer struct {
	marker   string
	maxBlock int // the largest block it encodes; beyond, an error
	dec      *hpack.Decoder
	enc      *hpack.Encoder
	err      error // a block that could not be rewritten: every later write fails

	head    [h2FrameHeader]byte // the current frame's header
	nhead   int                 // bytes of it seen
	left    int                 // bytes of its payload still to come
	gather  bool                // it is part of a header block: its payload is held
	frame   []byte              // the payload held
	block   []byte              // the header block's fragments so far
	blockID uint32              // its stream
	endStr  bool                // its HEADERS ended the stream
	inBlock bool                // a HEADERS without END_HEADERS came: CONTINUATION follows

	fields  []hpack.HeaderField // the block decoded
	ordered []hpack.HeaderField // and put in order
	placed  []bool
	enced   []byte // the block encoded again
	out     []byte // what one write sends on
}

// newH2Orderer returns an orderer that reads the field named marker and
// encodes no block larger than maxBlock bytes (a block of indexed fields
// can name a large entry many times over).
func newH2Orderer(marker string, maxBlock int) *h2Orderer {
	o := &h2Orderer{marker: marker, maxBlock: maxBlock}
	o.dec = hpack.NewDecoder(h2ServerTable, func(f hpack.HeaderField) { o.fields = append(o.fields, f) })
	o.enc = hpack.NewEncoder(sliceWriter{&o.enced})
	o.enc.SetMaxDynamicTableSizeLimit(0)
	return o
}

// sliceWriter appends what is written to a slice.
type sliceWriter struct{ b *[]byte }

func (w sliceWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// errH2Block is the error of a header block the server wrote that could
// not be rewritten.
var errH2Block = errors.New("proxy: bad HTTP/2 header block")

// write passes p, bytes the server writes, on through w with the header
// blocks in it rewritten, in one write. It reports all of p written unless
// w fails; a frame's start that p ends in goes with the next write.
func (o *h2Orderer) write(p []byte, w func([]byte) (int, error)) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.passes(p) {
		return w(p)
	}
	n := len(p)
	o.out = o.out[:0]
	for len(p) > 0 {
		if o.nhead < h2FrameHeader {
			k := copy(o.head[o.nhead:], p)
			o.nhead += k
			p = p[k:]
			if o.nhead < h2FrameHeader {
				break
			}
			o.left = int(o.head[0])<<16 | int(o.head[1])<<8 | int(o.head[2])
			typ := http2.FrameType(o.head[3])
			o.gather = carriesBlock(typ) || o.inBlock
			if o.gather {
				o.frame = o.frame[:0]
			} else {
				o.out = append(o.out, o.head[:]...)
			}
		} else {
			k := min(o.left, len(p))
			if o.gather {
				o.frame = append(o.frame, p[:k]...)
			} else {
				o.out = append(o.out, p[:k]...)
			}
			o.left -= k
			p = p[k:]
		}
		if o.nhead == h2FrameHeader && o.left == 0 {
			if err := o.frameDone(); err != nil {
				o.err = err
				return 0, err
			}
		}
	}
	if len(o.out) > 0 {
		_, err := w(o.out)
		o.out = kept(o.out)
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// passes reports whether p holds no header frame and ends no frame header
// part way, so that it goes on as it is; it then takes p as seen.
func (o *h2Orderer) passes(p []byte) bool {
	if o.gather || o.inBlock || o.nhead != 0 && o.nhead != h2FrameHeader {
		return false
	}
	end := 0 // where the frame that p is in ends, from p's start
	if o.nhead == h2FrameHeader {
		end = o.left
	}
	for end < len(p) {
		h := p[end:]
		if len(h) < h2FrameHeader {
			return false
		}
		if carriesBlock(http2.FrameType(h[3])) {
			return false
		}
		end += h2FrameHeader + (int(h[0])<<16 | int(h[1])<<8 | int(h[2]))
	}
	o.nhead, o.left = 0, 0
	if end > len(p) {
		o.nhead, o.left = h2FrameHeader, end-len(p)
	}
	return true
}

// carriesBlock reports whether frames of type t carry a header block, which
// the client decodes with the state of the blocks before it. The server
// never pushes: a PUSH_PROMISE fails the write.
func carriesBlock(t http2.FrameType) bool {
	return t == http2.FrameHeaders || t == http2.FrameContinuation || t == http2.FramePushPromise
}

// frameDone ends the current frame; a header block's last is rewritten
// into o.out.
func (o *h2Orderer) frameDone() error {
	o.nhead = 0
	if !o.gather {
		return nil
	}
	o.gather = false
	typ, flags := http2.FrameType(o.head[3]), http2.Flags(o.head[4])
	id := binary.BigEndian.Uint32(o.head[5:]) & (1<<31 - 1)
	frag := o.frame
	switch {
	case typ == http2.FrameHeaders && !o.inBlock:
		if flags.Has(http2.FlagHeadersPadded) {
			if len(frag) == 0 || int(frag[0]) > len(frag)-1 {
				return fmt.Errorf("%w: padding beyond the frame", errH2Block)
			}
			frag = frag[1 : len(frag)-int(frag[0])]
		}
		if flags.Has(http2.FlagHeadersPriority) {
			if len(frag) < 5 {
				return fmt.Errorf("%w: priority beyond the frame", errH2Block)
			}
			frag = frag[5:]
		}
		o.block = append(kept(o.block), frag...)
		o.blockID, o.endStr, o.inBlock = id, flags.Has(http2.FlagHeadersEndStream), true
	case typ == http2.FrameContinuation && o.inBlock && id == o.blockID:
		o.block = append(o.block, frag...)
	default:
		return fmt.Errorf("%w: %v frame on stream %d inside a block of stream %d", errH2Block, typ, id, o.blockID)
	}
	o.frame = kept(o.frame)
	if !flags.Has(http2.FlagHeadersEndHeaders) { // the same bit as CONTINUATION's
		return nil
	}
	o.inBlock = false
	return o.rewrite()
}

// rewrite decodes the gathered block, puts its fields in order and appends
// it to o.out, encoded again, in HEADERS and CONTINUATION frames.
func (o *h2Orderer) rewrite() error {
	block, err := o.takeSizeUpdates(o.block)
	if err != nil {
		return err
	}
	if _, err := o.dec.Write(block); err != nil {
		return fmt.Errorf("%w: %w", errH2Block, err)
	}
	if err := o.dec.Close(); err != nil {
		return fmt.Errorf("%w: %w", errH2Block, err)
	}
	for _, f := range o.orderFields() {
		o.enc.WriteField(f)
		if len(o.enced) > o.maxBlock {
			return fmt.Errorf("%w: over %d bytes", errH2Block, o.maxBlock)
		}
	}
	// The fields hold the block's values: cleared, so that they go.
	clear(o.fields)
	clear(o.ordered)
	o.fields, o.ordered, o.block = kept(o.fields), kept(o.ordered), kept(o.block)
	b, typ := o.enced, http2.FrameHeaders
	for {
		k := min(len(b), h2MinFrame)
		var flags http2.Flags
		if typ == http2.FrameHeaders && o.endStr {
			flags |= http2.FlagHeadersEndStream
		}
		if k == len(b) {
			flags |= http2.FlagHeadersEndHeaders
		}
		o.out = append(o.out, byte(k>>16), byte(k>>8), byte(k), byte(typ), byte(flags))
		o.out = binary.BigEndian.AppendUint32(o.out, o.blockID)
		o.out = append(o.out, b[:k]...)
		if b = b[k:]; len(b) == 0 {
			o.enced = kept(o.enced)
			return nil
		}
		typ = http2.FrameContinuation
	}
}

// takeSizeUpdates applies the dynamic table size updates at the start of
// block to the decoder and returns the rest. RFC 7541 allows two there
// (x/net's server sends the smallest size the client set since the last
// block, then the newest); Go's decoder takes a second only when the first
// emptied the table.
func (o *h2Orderer) takeSizeUpdates(block []byte) ([]byte, error) {
	for len(block) > 0 && block[0]&0xe0 == 0x20 { // 001xxxxx: a size update, a 5-bit prefix
		v, n := uint64(block[0]&0x1f), 1
		if v == 0x1f {
			for shift := uint(0); ; shift += 7 {
				if n == len(block) || shift > 28 {
					return nil, fmt.Errorf("%w: a table size update cut short or too long", errH2Block)
				}
				c := block[n]
				n++
				v += uint64(c&0x7f) << shift
				if c&0x80 == 0 {
					break
				}
			}
		}
		if v > h2ServerTable {
			return nil, fmt.Errorf("%w: a table size update to %d, over %d", errH2Block, v, h2ServerTable)
		}
		o.dec.SetMaxDynamicTableSize(uint32(v))
		block = block[n:]
	}
	return block, nil
}

// orderFields returns the decoded block's fields in the order its marker
// field gives, without that field: pseudo-headers first, as written; then
// for each name the next field of that name not yet placed; then the rest
// (the proxy's own X-Session-* fields, the framing the server added) in
// the order written. A block without the field, or with more than
// maxReordered fields, keeps its order.
func (o *h2Orderer) orderFields() []hpack.HeaderField {
	at := -1
	for i, f := range o.fields {
		if f.Name == o.marker {
			at = i
			break
		}
	}
	if at < 0 {
		return o.fields
	}
	names := o.fields[at].Value
	fields := append(o.fields[:at], o.fields[at+1:]...)
	if len(fields) > maxReordered {
		return fields
	}
	if cap(o.placed) < len(fields) {
		o.placed = make([]bool, len(fields))
	}
	o.placed = o.placed[:len(fields)]
	clear(o.placed)
	o.ordered = o.ordered[:0]
	for i, f := range fields {
		if f.IsPseudo() {
			o.placed[i] = true
			o.ordered = append(o.ordered, f)
		}
	}
	for names != "" {
		var name string
		name, names, _ = strings.Cut(names, ",")
		for i, f := range fields {
			if !o.placed[i] && f.Name == name {
				o.placed[i] = true
				o.ordered = append(o.ordered, f)
				break
			}
		}
	}
	for i, f := range fields {
		if !o.placed[i] {
			o.ordered = append(o.ordered, f)
		}
	}
	return o.ordered
}
