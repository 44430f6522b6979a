package wire

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestDataBuffer: writes and reads of every size, across chunk edges, give
// the bytes back in order, as bytes.Buffer does; a drained or reset buffer
// holds no chunk.
func TestDataBuffer(t *testing.T) {
	d := dataBuffer{pool: &sync.Pool{New: func() any { return new(chunk) }}}
	var want bytes.Buffer
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 7, len(chunk{}) - 1, len(chunk{}), len(chunk{}) + 1, 3*len(chunk{}) + 5}
	var next byte
	for i := range 2000 {
		if rng.IntN(2) == 0 {
			p := make([]byte, sizes[rng.IntN(len(sizes))])
			for j := range p {
				p[j] = next
				next++
			}
			d.Write(p)
			want.Write(p)
		} else {
			n := sizes[rng.IntN(len(sizes))]
			got, exp := make([]byte, n), make([]byte, n)
			gn := d.Read(got)
			en, _ := want.Read(exp)
			if gn != en || !bytes.Equal(got[:gn], exp[:en]) {
				t.Fatalf("step %d: read %d bytes, want %d (the same bytes: %v)", i, gn, en, bytes.Equal(got[:gn], exp[:en]))
			}
		}
		if d.Len() != want.Len() {
			t.Fatalf("step %d: Len %d, want %d", i, d.Len(), want.Len())
		}
	}
	rest := make([]byte, d.Len())
	d.Read(rest)
	if !bytes.Equal(rest, want.Bytes()) {
		t.Fatal("the rest differs")
	}
	if len(d.chunks) != 0 {
		t.Errorf("drained, it holds %d chunks", len(d.chunks))
	}

	d.Write(make([]byte, 3*len(chunk{})))
	d.Reset()
	if d.Len() != 0 || len(d.chunks) != 0 {
		t.Errorf("after Reset: Len %d, %d chunks", d.Len(), len(d.chunks))
	}
}
