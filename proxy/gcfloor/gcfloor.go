// Package gcfloor lets a Go program's heap grow to a fixed number of bytes
// above its live heap before the garbage collector runs, however small the
// live heap is.
//
// With GOGC=100 the runtime collects once the heap has grown by as much as
// was live after the last collection (4 MiB at least). A proxy's live heap
// is small (a few MiB for a thousand sessions) while it allocates a few KiB
// a request, so it collects every few hundred requests, and each collection
// has costs that do not shrink with the heap (stacks, sweeping, starting and
// stopping the marking): about a tenth of the proxy's CPU. A floor of F
// bytes lets the heap grow by max(live×GOGC/100, F) instead: the collector
// runs F/live times less often while the live heap is below F, and as it
// did once it is above; the price is up to F bytes of garbage held between
// collections.
//
// The floor is kept with the runtime's own knob: after every collection the
// GC percent is set to the value whose goal is the live heap plus F (never
// below the percent in force when it started). The runtime applies the
// percent to the live heap plus the stacks and globals it scanned, so those
// count too: a program with many goroutines gets a smaller percent. A
// memory limit (GOMEMLIMIT, debug.SetMemoryLimit) still bounds the goal.
package gcfloor

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// runtimeHeapMinimum is the heap size below which the runtime does not
// collect at GOGC=100; it scales with the GC percent (the runtime's
// defaultHeapMinimum).
const runtimeHeapMinimum = 4 << 20

// Options configures a Floor. The zero value of each field means its
// default.
type Options struct {
	// Bytes is how far above the live heap the heap may grow before a
	// collection. Zero or less: the Floor does nothing.
	Bytes int64
	// Percent is the GC percent the floor never goes below, and the one it
	// restores on Close; zero: the one in force when Start is called.
	Percent int
	// Heap returns, as of the latest collection, the live heap and what
	// the GC percent applies to: the live heap plus the stacks and
	// globals scanned; nil: runtime/metrics (/gc/heap/live:bytes,
	// /gc/scan/stack:bytes, /gc/scan/globals:bytes).
	Heap func() (live, scanned uint64)
	// SetPercent sets the GC percent; nil: debug.SetGCPercent.
	SetPercent func(int) int
}

// A Floor keeps the heap's growth between collections at least Options.Bytes
// until Close. It starts no goroutine of its own: it retunes from a cleanup
// that the runtime runs after each collection. Its methods are safe for use
// by multiple goroutines.
type Floor struct {
	bytes      int64
	base       int
	heap       func() (live, scanned uint64)
	setPercent func(int) int

	mu      sync.Mutex // guards the fields below, and orders tune against Close
	closed  bool
	percent int // the GC percent set last
}

// Start keeps the floor o describes until Close.
func Start(o Options) *Floor {
	f := &Floor{bytes: o.Bytes, base: o.Percent, heap: o.Heap, setPercent: o.SetPercent}
	if f.heap == nil {
		f.heap = heapNow
	}
	if f.setPercent == nil {
		f.setPercent = debug.SetGCPercent
	}
	if f.base == 0 {
		f.base = currentPercent()
	}
	if f.bytes <= 0 || f.base < 0 { // no floor asked, or the collector is off
		f.closed = true
		return f
	}
	f.tune()
	return f
}

// Close stops retuning and restores the GC percent the floor started from.
// It is safe to call more than once.
func (f *Floor) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	if f.percent != 0 && f.percent != f.base {
		f.setPercent(f.base)
	}
	f.percent = 0
}

// tune sets the GC percent for the live heap now and arms the next tune,
// unless the floor is closed.
func (f *Floor) tune() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	live, scanned := f.heap()
	if p := percentFor(f.base, live, scanned, f.bytes); p != f.percent {
		f.setPercent(p)
		f.percent = p
	}
	// The sentinel becomes garbage at once: its cleanup runs after the
	// next collection, and arms the one after.
	runtime.AddCleanup(&new(sentinel).p, (*Floor).tune, f)
}

// sentinel is allocated to learn when a collection has happened. It holds
// a pointer so that it is never batched with other objects by the tiny
// allocator (whose batches may never be freed whole).
type sentinel struct{ p *byte }

// percentFor returns the GC percent whose heap goal is live plus floor
// bytes, never below base. The runtime's goal is the larger of
// live + scanned×percent/100 (scanned: the live heap, stacks and globals)
// and its heap minimum, 4 MiB×percent/100: the percent is bounded so that
// the minimum does not exceed live plus floor either (a tiny live heap
// would otherwise get a goal many times floor).
func percentFor(base int, live, scanned uint64, floor int64) int {
	want := float64(floor) + float64(live)
	p := math.Ceil(100 * float64(floor) / float64(max(scanned, live, 1)))
	p = min(p, math.Floor(100*want/runtimeHeapMinimum), math.MaxInt32)
	return max(base, int(p))
}

// heapNow reads the live heap and the scanned bytes from runtime/metrics.
func heapNow() (live, scanned uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	metrics.Read(s)
	var v [3]uint64
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	return v[0], v[0] + v[1] + v[2]
}

func currentPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	v := s[0].Value.Uint64()
	if v == math.MaxUint64 { // GOGC=off: how the metric says it
		return -1
	}
	return int(v)
}
