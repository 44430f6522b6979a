package wire

import (
	"bufio"
	"sync"
)

// Buffers are the buffers of exchanges, lent while they are needed: the
// read and write buffers of an HTTP/1.1 exchange while it is under way, so
// that an idle connection holds none, and the chunks of an HTTP/2 stream's
// body while they hold bytes not yet read. Shared by many connections (a
// proxy's sessions each have their own), only those busy at once hold
// any. Make one with NewBuffers; it is safe for concurrent use.
type Buffers struct {
	readers sync.Pool // of *bufio.Reader
	writers sync.Pool // of *bufio.Writer
	chunks  sync.Pool // of *chunk
}

// NewBuffers returns an empty Buffers.
func NewBuffers() *Buffers {
	return &Buffers{
		readers: sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }},
		writers: sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }},
		chunks:  sync.Pool{New: func() any { return new(chunk) }},
	}
}

// chunk is a piece of an HTTP/2 stream's body (see dataBuffer).
type chunk [16 << 10]byte
