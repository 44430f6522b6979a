package record

import (
	"sync"
	"testing"
	"time"
)

// historyAt is one observation of a history test: an outcome at an offset
// from the test's base time.
type historyAt struct {
	at      time.Duration
	outcome Outcome
}

// TestHistoryRing drives the ring with a fake clock: events across bucket
// boundaries, a wrap onto a slot that still counts an older interval, events
// too old for the window, and the snapshot's order and extent.
func TestHistoryRing(t *testing.T) {
	base := time.Date(2025, 3, 4, 5, 6, 0, 0, time.UTC) // a bucket's start
	window := time.Duration(historyBuckets) * historyInterval
	tests := []struct {
		name   string
		base   time.Time // zero: base
		events []historyAt
		at     time.Duration // when the snapshot is taken
		// want maps a bucket's start (as an offset from the base) to its
		// non-zero counts; every other bucket must count nothing.
		want map[time.Duration]map[string]int64
	}{
		{
			name: "empty",
			at:   0,
			want: nil,
		},
		{
			name:   "one bucket holds its whole interval",
			events: []historyAt{{0, "good"}, {5 * time.Second, "good"}, {9*time.Second + 999*time.Millisecond, "bad"}},
			at:     9 * time.Second,
			want:   map[time.Duration]map[string]int64{0: {"good": 2, "bad": 1}},
		},
		{
			name:   "a bucket boundary starts the next bucket",
			events: []historyAt{{9 * time.Second, "good"}, {10 * time.Second, "good"}, {25 * time.Second, "retire"}},
			at:     25 * time.Second,
			want: map[time.Duration]map[string]int64{
				0:                {"good": 1},
				10 * time.Second: {"good": 1},
				20 * time.Second: {"retire": 1},
			},
		},
		{
			name: "every outcome has its own count",
			events: []historyAt{
				{0, "good"}, {0, "bad"}, {0, "retire"}, {0, "none"},
				{0, "error"}, {0, "rejected"}, {0, "canceled"}, {0, "tunnel"}, {0, "tunnel"},
			},
			at: 0,
			want: map[time.Duration]map[string]int64{0: {
				"good": 1, "bad": 1, "retire": 1, "none": 1,
				"error": 1, "rejected": 1, "canceled": 1, "tunnel": 2,
			}},
		},
		{
			name:   "an unknown outcome is not counted",
			events: []historyAt{{0, "good"}, {0, "exploded"}, {0, ""}},
			at:     0,
			want:   map[time.Duration]map[string]int64{0: {"good": 1}},
		},
		{
			name:   "the oldest bucket of the window is still shown",
			events: []historyAt{{0, "bad"}, {window - historyInterval, "good"}},
			at:     window - historyInterval,
			want: map[time.Duration]map[string]int64{
				0:                        {"bad": 1},
				window - historyInterval: {"good": 1},
			},
		},
		{
			name:   "a bucket that left the window is not shown",
			events: []historyAt{{0, "bad"}},
			at:     window,
			want:   nil,
		},
		{
			name: "wrapping onto a slot zeroes its old counts",
			// base and base+window share a slot of the ring.
			events: []historyAt{{0, "bad"}, {0, "bad"}, {window, "good"}},
			at:     window,
			want:   map[time.Duration]map[string]int64{window: {"good": 1}},
		},
		{
			name: "wrapping twice",
			events: []historyAt{
				{0, "bad"}, {window, "retire"}, {2 * window, "good"}, {2*window + 3*time.Second, "good"},
			},
			at:   2*window + 5*time.Second,
			want: map[time.Duration]map[string]int64{2 * window: {"good": 2}},
		},
		{
			name:   "an event older than the window (a clock stepping back) is dropped",
			events: []historyAt{{window, "good"}, {0, "bad"}},
			at:     window,
			want:   map[time.Duration]map[string]int64{window: {"good": 1}},
		},
		{
			name:   "an event inside the window but out of order still counts",
			events: []historyAt{{30 * time.Second, "good"}, {10 * time.Second, "bad"}},
			at:     30 * time.Second,
			want: map[time.Duration]map[string]int64{
				10 * time.Second: {"bad": 1},
				30 * time.Second: {"good": 1},
			},
		},
		{
			name:   "a snapshot ahead of the events keeps them in the window",
			events: []historyAt{{0, "none"}},
			at:     7 * time.Minute,
			want:   map[time.Duration]map[string]int64{0: {"none": 1}},
		},
		{
			name:   "times before 1970 fall into the right bucket",
			base:   time.Date(1969, 12, 31, 23, 59, 30, 0, time.UTC),
			events: []historyAt{{0, "good"}, {9 * time.Second, "good"}, {10 * time.Second, "bad"}, {30 * time.Second, "retire"}},
			at:     30 * time.Second,
			want: map[time.Duration]map[string]int64{
				0:                {"good": 2},
				10 * time.Second: {"bad": 1},
				30 * time.Second: {"retire": 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base
			if !tt.base.IsZero() {
				b = tt.base
			}
			h := newHistory()
			for _, ev := range tt.events {
				h.observe(ev.outcome, b.Add(ev.at))
			}
			now := b.Add(tt.at)
			snap := h.snapshot(now)

			if len(snap.Buckets) != historyBuckets {
				t.Fatalf("snapshot has %d buckets, want %d", len(snap.Buckets), historyBuckets)
			}
			if !snap.Now.Equal(now) {
				t.Errorf("snapshot's now = %v, want %v", snap.Now, now)
			}
			if snap.IntervalSeconds != 10 {
				t.Errorf("intervalSeconds = %d, want 10", snap.IntervalSeconds)
			}
			last := snap.Buckets[len(snap.Buckets)-1].Start
			if now.Before(last) || !now.Before(last.Add(historyInterval)) {
				t.Errorf("newest bucket starts %v: it does not hold now (%v)", last, now)
			}
			seen := make(map[time.Duration]bool)
			for i, bk := range snap.Buckets {
				if i > 0 {
					if d := bk.Start.Sub(snap.Buckets[i-1].Start); d != historyInterval {
						t.Fatalf("bucket %d starts %v after the previous one, want %v (oldest first)", i, d, historyInterval)
					}
				}
				if len(bk.Counts) != len(outcomes) {
					t.Errorf("bucket %d has %d outcomes, want all %d: %v", i, len(bk.Counts), len(outcomes), bk.Counts)
				}
				off := bk.Start.Sub(b)
				want := tt.want[off]
				seen[off] = true
				for _, o := range outcomes {
					if got, ok := bk.Counts[string(o)]; !ok || got != want[string(o)] {
						t.Errorf("bucket at %v: %s = %d (present %v), want %d", off, o, got, ok, want[string(o)])
					}
				}
			}
			for off := range tt.want {
				if !seen[off] {
					t.Errorf("no bucket starts at %v in the snapshot", off)
				}
			}
		})
	}
}

// TestHistoryObserveConcurrent: observations from many goroutines are all
// counted (run with -race).
func TestHistoryObserveConcurrent(t *testing.T) {
	h := newHistory()
	now := time.Date(2025, 3, 4, 5, 6, 1, 0, time.UTC)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				h.observe(outcomes[(w+i)%len(outcomes)], now)
			}
		}()
	}
	wg.Wait()
	var total int64
	for _, c := range h.snapshot(now).Buckets[historyBuckets-1].Counts {
		total += c
	}
	if total != workers*each {
		t.Errorf("counted %d observations, want %d", total, workers*each)
	}
}

// TestHistorySnapshotIsACopy: a snapshot does not change when the history
// goes on counting.
func TestHistorySnapshotIsACopy(t *testing.T) {
	h := newHistory()
	now := time.Date(2025, 3, 4, 5, 6, 1, 0, time.UTC)
	h.observe(OutcomeGood, now)
	snap := h.snapshot(now)
	h.observe(OutcomeGood, now)
	snap.Outcomes[0] = "changed"
	if got := snap.Buckets[historyBuckets-1].Counts["good"]; got != 1 {
		t.Errorf("the snapshot's count moved to %d with a later observation", got)
	}
	if outcomes[0] != "good" {
		t.Errorf("changing a snapshot's outcomes changed the history's: %q", outcomes[0])
	}
	if got := h.snapshot(now).Buckets[historyBuckets-1].Counts["good"]; got != 2 {
		t.Errorf("a new snapshot counts %d, want 2", got)
	}
}

func BenchmarkHistoryObserve(b *testing.B) {
	h := newHistory()
	start := time.Date(2025, 3, 4, 5, 6, 0, 0, time.UTC)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// a new bucket every 1000 events: mostly hits, some wraps
		h.observe(outcomes[i%len(outcomes)], start.Add(time.Duration(i/1000)*historyInterval))
		i++
	}
}

func BenchmarkHistorySnapshot(b *testing.B) {
	h := newHistory()
	start := time.Date(2025, 3, 4, 5, 6, 0, 0, time.UTC)
	for i := range historyBuckets * 10 {
		h.observe(outcomes[i%len(outcomes)], start.Add(time.Duration(i)*time.Second))
	}
	now := start.Add(time.Duration(historyBuckets) * historyInterval)
	b.ReportAllocs()
	for b.Loop() {
		_ = h.snapshot(now)
	}
}
