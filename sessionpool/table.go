package sessionpool

import (
	"math/bits"
	"math/rand/v2"
	"unsafe"
)

// table is the memory backend's session table (memBackend, memory.go): the
// data structures that hold the sessions of a pool kept in this process.
// Every method must be called with Pool.mu held.
//
// Data structures, chosen so that every GetSession is O(1) in the pool size
// in steady state:
//
//   - all: every held session; each session remembers its index (idx), so a
//     uniform random pick is one random index (pickRandom) and removal is a
//     swap-remove.
//   - byID: ID -> session, for GetSessionByID and ID uniqueness.
//   - retired: the held sessions whose retired flag is set. A session that
//     a mark makes unusable retires itself, so apart from expiry "unusable"
//     means "in this list"; evicting every unusable session costs O(k) in the
//     number evicted, never a scan of the pool.
//   - live: the other held sessions in a min-heap by ExpiresAt (hidx is the
//     heap index), so the expired ones are found by popping the top: O(k log
//     n) for k evicted, and counted in O(k) by walking the heap's expired
//     top. ExpiresAt is immutable, so the heap needs no session lock.
//
// A min-heap beats "scan when the picked one is expired" because the seed's
// rule is to evict every unusable session, expired ones included, and the
// counts must include expired sessions without a full scan.
type table struct {
	all     []*Session
	byID    map[string]*Session
	live    []*Session // min-heap by expires
	retired []*Session

	// pending is the number of GetSession creations in flight, each holding
	// a reserved slot: len(all)+pending never exceeds MaxPoolSize because of
	// GetSession.
	pending int
	// wait, when non-nil, is closed when a pending creation finishes.
	wait chan struct{}

	rr   int      // RoundRobin cursor into all
	last *Session // UseUntilFailure: the session returned last

	// ahead holds the random numbers of the next picks, drawn in advance so
	// that pickRandom can prefetch their slots and sessions (see there).
	ahead    [pickAhead]uint64
	aheadPos int
}

// pickAhead is how many picks in advance pickRandom draws its numbers.
const pickAhead = 8

// pickRandom returns a held session chosen uniformly at random; all must
// not be empty.
//
// In a large pool each pick is two dependent cache misses (the slot, then
// the session), each costing a DRAM access plus a page walk. So the random
// numbers are drawn pickAhead picks in advance: each call prefetches the
// slot of the pick pickAhead calls ahead and the session of the pick
// pickAhead/2 calls ahead (whose slot is in cache by then), so the misses of
// later picks overlap with the work of this one. The index is computed from
// the number with the current size (Lemire's multiply-shift, bias below
// 2^-32 for any pool that fits in memory), so a pick stays uniform over the
// sessions held when it is made.
func (t *table) pickRandom() *Session {
	n := uint64(len(t.all))
	pos := t.aheadPos
	r := t.ahead[pos]
	next := rand.Uint64()
	t.ahead[pos] = next
	t.aheadPos = (pos + 1) % pickAhead
	slot, _ := bits.Mul64(next, n)
	prefetch(uintptr(unsafe.Pointer(&t.all[slot])))
	mid, _ := bits.Mul64(t.ahead[(pos+pickAhead/2)%pickAhead], n)
	sess := uintptr(unsafe.Pointer(t.all[mid]))
	prefetch(sess) // its hot fields are its first (and only) cache line
	i, _ := bits.Mul64(r, n)
	return t.all[i]
}

// uniqueID returns a fresh random ID not held in the table.
func (t *table) uniqueID() string {
	for {
		id := newID()
		if _, ok := t.byID[id]; !ok {
			return id
		}
	}
}

// add inserts s, which must not be held and whose ID must be free.
func (t *table) add(s *Session) {
	s.idx = len(t.all)
	t.all = append(t.all, s)
	t.byID[s.id] = s
	s.mu.Lock()
	retired := s.retired
	s.mu.Unlock()
	if retired {
		s.inRetired = true
		s.hidx = len(t.retired)
		t.retired = append(t.retired, s)
		return
	}
	s.inRetired = false
	s.hidx = len(t.live)
	t.live = append(t.live, s)
	t.up(s.hidx)
}

// remove takes the held session s out of the table.
func (t *table) remove(s *Session) {
	t.unlinkAll(s)
	if s.inRetired {
		t.unlinkRetired(s)
	} else {
		t.heapRemove(s.hidx)
	}
	s.inRetired = false
}

// unlinkAll removes s from all and byID only.
func (t *table) unlinkAll(s *Session) {
	i, last := s.idx, len(t.all)-1
	if i != last {
		t.all[i] = t.all[last]
		t.all[i].idx = i
	}
	t.all[last] = nil
	t.all = t.all[:last]
	delete(t.byID, s.id)
	s.idx = -1
	if t.last == s {
		t.last = nil
	}
}

func (t *table) unlinkRetired(s *Session) {
	i, last := s.hidx, len(t.retired)-1
	if i != last {
		t.retired[i] = t.retired[last]
		t.retired[i].hidx = i
	}
	t.retired[last] = nil
	t.retired = t.retired[:last]
	s.hidx = -1
}

// markRetired moves a held session from the heap to the retired list.
func (t *table) markRetired(s *Session) {
	if s.idx < 0 || s.inRetired {
		return
	}
	t.heapRemove(s.hidx)
	s.inRetired = true
	s.hidx = len(t.retired)
	t.retired = append(t.retired, s)
}

// evictUnusable removes every retired session and every session expired at
// now, and returns how many it removed.
func (t *table) evictUnusable(now int64) int {
	n := len(t.retired)
	for i, s := range t.retired {
		t.unlinkAll(s)
		s.inRetired = false
		s.hidx = -1
		t.retired[i] = nil
	}
	t.retired = t.retired[:0]
	for len(t.live) > 0 && t.live[0].expires <= now {
		s := t.live[0]
		t.heapRemove(0)
		t.unlinkAll(s)
		n++
	}
	return n
}

// unusable returns the number of held sessions that are not usable at now:
// the retired ones plus the expired ones still in the heap.
func (t *table) unusable(now int64) int {
	return len(t.retired) + t.countExpired(0, now)
}

func (t *table) countExpired(i int, now int64) int {
	if i >= len(t.live) || t.live[i].expires > now {
		return 0
	}
	return 1 + t.countExpired(2*i+1, now) + t.countExpired(2*i+2, now)
}

// wakeWaiters tells callers waiting for a free pick that a creation ended.
func (t *table) wakeWaiters() {
	if t.wait != nil {
		close(t.wait)
		t.wait = nil
	}
}

// Heap operations on live, keeping hidx current.

func (t *table) less(i, j int) bool { return t.live[i].expires < t.live[j].expires }

func (t *table) swap(i, j int) {
	h := t.live
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}

func (t *table) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !t.less(j, i) {
			break
		}
		t.swap(i, j)
		j = i
	}
}

func (t *table) down(i int) bool {
	i0, n := i, len(t.live)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && t.less(r, l) {
			j = r
		}
		if !t.less(j, i) {
			break
		}
		t.swap(i, j)
		i = j
	}
	return i > i0
}

func (t *table) heapRemove(i int) {
	n := len(t.live) - 1
	s := t.live[i]
	if i != n {
		t.swap(i, n)
	}
	t.live[n] = nil
	t.live = t.live[:n]
	if i != n && !t.down(i) {
		t.up(i)
	}
	s.hidx = -1
}
