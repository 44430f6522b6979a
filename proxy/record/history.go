package record

import (
	"sync"
	"time"
)

// The history's shape: historyBuckets buckets of historyInterval each, so
// the dashboard's chart covers the last 15 minutes in 10-second steps.
const (
	historyInterval = 10 * time.Second
	historyBuckets  = int(15 * time.Minute / historyInterval)
)

// historyCounts is one bucket's count per outcome, indexed like outcomes.
type historyCounts [len(outcomes)]int64

// historySlot is one bucket of the ring: the interval it counts (its start
// in Unix time divided by historyInterval) and its counts.
type historySlot struct {
	epoch    int64
	counts   historyCounts
	attempts historyCounts // attempts by outcome (see Recorder.Attempt)
}

// history keeps outcome counts per 10-second bucket over the last 15
// minutes, for the dashboard's chart: a fixed ring whose slots are reused
// (and zeroed) as time moves on, so observe is O(1) and the memory is fixed.
// Its zero value is not usable; use newHistory. Safe for concurrent use.
type history struct {
	mu   sync.Mutex // guards the fields below
	ring [historyBuckets]historySlot
}

// newHistory returns an empty history.
func newHistory() *history {
	h := &history{}
	for i := range h.ring {
		h.ring[i].epoch = -1 << 63 // no interval: never matches a real one
	}
	return h
}

// historyEpoch is the number of the interval holding t.
func historyEpoch(t time.Time) int64 {
	sec := t.Unix()
	n := int64(historyInterval / time.Second)
	e := sec / n
	if sec%n < 0 { // floor, for times before 1970
		e--
	}
	return e
}

// historySlotOf is the ring index of an interval.
func historySlotOf(epoch int64) int {
	i := int(epoch % int64(historyBuckets))
	if i < 0 {
		i += historyBuckets
	}
	return i
}

// observe counts outcome o in the bucket of now. An outcome the history
// does not know, and an event older than the window (a clock stepping
// back), are not counted.
func (h *history) observe(o Outcome, now time.Time) {
	h.bump(o, now, false)
}

// observeAttempt counts an attempt with outcome o in the bucket of now, as
// observe counts a request.
func (h *history) observeAttempt(o Outcome, now time.Time) {
	h.bump(o, now, true)
}

// bump adds one to o's request count (attempt false) or attempt count in
// the bucket of now.
func (h *history) bump(o Outcome, now time.Time, attempt bool) {
	i := outcomeIndex(o)
	if i < 0 {
		return
	}
	epoch := historyEpoch(now)
	slot := historySlotOf(epoch)
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &h.ring[slot]
	switch {
	case s.epoch == epoch:
	case s.epoch < epoch: // the ring wrapped onto an older interval: start afresh
		s.epoch = epoch
		s.counts = historyCounts{}
		s.attempts = historyCounts{}
	default: // the slot already counts a newer interval: now is out of the window
		return
	}
	if attempt {
		s.attempts[i]++
		return
	}
	s.counts[i]++
}

// HistoryBucket is one interval of the history: when it starts, how many
// requests ended with each outcome in it, and how many attempts (retried
// ones included) had each of the attempt outcomes (good, bad, retire, none,
// error) in it.
type HistoryBucket struct {
	Start    time.Time        `json:"start"`
	Counts   map[string]int64 `json:"counts"`
	Attempts map[string]int64 `json:"attempts"`
}

// History is the history as GET /stats/history serves it: the buckets of
// the last 15 minutes up to the one holding Now, oldest first, every
// outcome present in every bucket (zero when none).
type History struct {
	Now             time.Time       `json:"now"`
	IntervalSeconds int             `json:"intervalSeconds"`
	Outcomes        []string        `json:"outcomes"`
	Buckets         []HistoryBucket `json:"buckets"`
}

// snapshot returns the historyBuckets buckets that end with the one holding
// now, oldest first. Intervals nothing was observed in count zero.
func (h *history) snapshot(now time.Time) History {
	end := historyEpoch(now)
	start := end - int64(historyBuckets) + 1
	var counts, attempts [historyBuckets]historyCounts
	h.mu.Lock()
	for k := range historyBuckets {
		if s := &h.ring[historySlotOf(start+int64(k))]; s.epoch == start+int64(k) {
			counts[k] = s.counts
			attempts[k] = s.attempts
		}
	}
	h.mu.Unlock()

	out := History{
		Now:             now,
		IntervalSeconds: int(historyInterval / time.Second),
		Outcomes:        make([]string, len(outcomes)),
		Buckets:         make([]HistoryBucket, historyBuckets),
	}
	for i, o := range outcomes {
		out.Outcomes[i] = string(o)
	}
	for k := range out.Buckets {
		m := make(map[string]int64, len(outcomes))
		for i, o := range outcomes {
			m[string(o)] = counts[k][i]
		}
		a := make(map[string]int64, len(attemptOutcomes))
		for _, o := range attemptOutcomes {
			a[string(o)] = attempts[k][outcomeIndex(o)]
		}
		out.Buckets[k] = HistoryBucket{
			Start:    time.Unix((start+int64(k))*int64(historyInterval/time.Second), 0).UTC(),
			Counts:   m,
			Attempts: a,
		}
	}
	return out
}
