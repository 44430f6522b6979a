package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
)

const mib = 1 << 20

func TestPercentFor(t *testing.T) {
	for _, tc := range []struct {
		name          string
		base          int
		live, scanned uint64
		floor         int64
		want          int
	}{
		// goal = live + scanned×p/100 = live+floor: p = 100×floor/scanned ...
		{"live 8 MiB", 100, 8 * mib, 8 * mib, 32 * mib, 400},
		{"live 16 MiB", 100, 16 * mib, 16 * mib, 32 * mib, 200},
		{"live 8 MiB, stacks and globals 8 MiB", 100, 8 * mib, 16 * mib, 32 * mib, 200},
		// ... unless the runtime's minimum, 4 MiB×p/100, would exceed
		// live+floor: then p = 100×(live+floor)/4 MiB.
		{"live 3 MiB", 100, 3 * mib, 3 * mib, 32 * mib, 875},
		{"nothing live yet", 100, 0, 0, 32 * mib, 800},
		{"live 1 byte", 100, 1, 1, 32 * mib, 800},
		// Never below the base.
		{"live above the floor", 100, 64 * mib, 64 * mib, 32 * mib, 100},
		{"live equal to the floor", 100, 32 * mib, 32 * mib, 32 * mib, 100},
		{"stacks above the floor", 100, 2 * mib, 40 * mib, 32 * mib, 100},
		{"base above", 1000, 8 * mib, 8 * mib, 32 * mib, 1000},
		{"base 50", 50, 128 * mib, 128 * mib, 32 * mib, 50},
		// A floor the size of memory stays an int32.
		{"huge floor", 100, 1, 1, 1 << 62, 1<<31 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentFor(tc.base, tc.live, tc.scanned, tc.floor); got != tc.want {
				t.Errorf("percentFor(%d, %d, %d, %d) = %d, want %d", tc.base, tc.live, tc.scanned, tc.floor, got, tc.want)
			}
		})
	}
}

// fakeRuntime stands for the runtime's live heap and GC percent.
type fakeRuntime struct {
	live atomic.Uint64
	sets chan int
}

func newFake(live uint64) *fakeRuntime {
	r := &fakeRuntime{sets: make(chan int, 16)}
	r.live.Store(live)
	return r
}

func (r *fakeRuntime) options(bytes int64) Options {
	return Options{Bytes: bytes, Percent: 100, Heap: r.heap, SetPercent: func(p int) int { r.sets <- p; return 0 }}
}

// heap is the fake's live heap, with nothing else scanned.
func (r *fakeRuntime) heap() (live, scanned uint64) {
	v := r.live.Load()
	return v, v
}

// next runs collections until the floor sets a percent, and returns it.
// The cleanup it retunes from runs after the collection that frees its
// sentinel: the first, or the next if the sentinel was allocated while one
// was marking.
func (r *fakeRuntime) next(t *testing.T) int {
	t.Helper()
	for range 100 {
		runtime.GC()
		select {
		case p := <-r.sets:
			return p
		default:
			runtime.Gosched()
		}
	}
	t.Fatal("100 collections and the floor did not retune")
	return 0
}

func TestFloorRetunesAfterCollections(t *testing.T) {
	r := newFake(0)
	f := Start(r.options(32 * mib))
	defer f.Close()
	if p := <-r.sets; p != 800 {
		t.Fatalf("at start: percent %d, want 800", p)
	}
	r.live.Store(8 * mib)
	if p := r.next(t); p != 400 {
		t.Fatalf("live 8 MiB: percent %d, want 400", p)
	}
	r.live.Store(64 * mib)
	if p := r.next(t); p != 100 {
		t.Fatalf("live 64 MiB: percent %d, want 100", p)
	}
}

func TestFloorCloseRestoresAndStops(t *testing.T) {
	r := newFake(8 * mib)
	f := Start(r.options(32 * mib))
	if p := <-r.sets; p != 400 {
		t.Fatalf("at start: percent %d, want 400", p)
	}
	f.Close()
	if p := <-r.sets; p != 100 {
		t.Fatalf("Close set percent %d, want the base 100", p)
	}
	f.Close()
	r.live.Store(1 * mib)
	f.tune() // what a cleanup armed before Close does when it runs
	select {
	case p := <-r.sets:
		t.Fatalf("closed floor set percent %d", p)
	default:
	}
}

func TestFloorOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no bytes", Options{Bytes: 0, Percent: 100}},
		{"negative bytes", Options{Bytes: -1, Percent: 100}},
		{"collector off", Options{Bytes: 32 * mib, Percent: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFake(1 * mib)
			o := tc.o
			o.Heap, o.SetPercent = r.heap, func(p int) int { r.sets <- p; return 0 }
			f := Start(o)
			f.tune()
			f.Close()
			select {
			case p := <-r.sets:
				t.Fatalf("set percent %d", p)
			default:
			}
		})
	}
}

// TestFloorRuntime runs the floor on the real runtime: the GC percent in
// force is raised while the live heap is below the floor, and restored.
func TestFloorRuntime(t *testing.T) {
	before := currentPercent()
	f := Start(Options{Bytes: 256 * mib})
	runtime.GC()
	during := currentPercent()
	f.Close()
	after := currentPercent()
	live, scanned := heapNow()
	if want := percentFor(before, live, scanned, 256*mib); during < before+100 || during > want*2 {
		t.Errorf("GC percent with a 256 MiB floor: %d (before %d; for the live heap now %d)", during, before, want)
	}
	if after != before {
		t.Errorf("GC percent after Close: %d, want %d", after, before)
	}
}

// TestFloorUnderMemoryLimit: the floor raises the heap goal, and a memory
// limit (GOMEMLIMIT) still bounds it.
func TestFloorUnderMemoryLimit(t *testing.T) {
	goal := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	f := Start(Options{Bytes: 1 << 30})
	defer f.Close()
	runtime.GC()
	if g := goal(); g < 512*mib {
		t.Fatalf("heap goal with a 1 GiB floor: %d MiB, want at least 512", g/mib)
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(64 * mib))
	runtime.GC()
	if g := goal(); g > 64*mib {
		t.Errorf("heap goal with a 1 GiB floor under a 64 MiB memory limit: %d MiB", g/mib)
	}
}
