package sites

import (
	"maps"
	"math"
	"time"
)

// at is when the session may start its next request.
func (pc *pace) at() time.Time {
	if pc.paused.After(pc.next) {
		return pc.paused
	}
	return pc.next
}

// due returns how long a new request of session would wait for the
// session to be due, counting the session's requests already waiting
// (each one delay after the other). Like time.Time.Sub it gives the
// largest Duration for a wait too long for one (a pause centuries ahead).
func (s *site) due(session string, now time.Time, delay time.Duration) time.Duration {
	var wait time.Duration
	if pc := s.sessions[session]; pc != nil {
		wait = max(pc.at().Sub(now), 0)
	}
	for _, w := range s.queue {
		if w.session == session {
			if wait += delay; wait < 0 { // wrapped around: both were >= 0
				return math.MaxInt64
			}
		}
	}
	return wait
}

// dispatch lets in the waiters whose session is due, in arrival order,
// while slots are free: the first counted one due that finds no free slot
// holds up the counted ones behind it, not those under no cap (cap 0),
// which take no slot. A waiter passed over because its session is not due
// is told when its session's turn has moved since it set its timer, so
// that it wakes then.
func (s *site) dispatch(now time.Time) {
	held := false // a counted waiter due found no free slot
	for i := 0; i < len(s.queue); {
		w := s.queue[i]
		if pc := s.sessions[w.session]; pc != nil {
			if at := pc.at(); at.After(now) {
				if !at.Equal(w.wakeAt) {
					select {
					case w.moved <- struct{}{}:
					default: // already told
					}
				}
				i++
				continue
			}
		}
		if w.cap > 0 && (held || s.inFlight >= w.cap) {
			held = true
			i++
			continue
		}
		s.queue = append(s.queue[:i], s.queue[i+1:]...)
		if len(s.queue) == 0 {
			s.queue = nil
		}
		if w.cap > 0 {
			s.inFlight++
		}
		if w.delay > 0 {
			s.pace(w.session, now).next = now.Add(w.delay)
		}
		w.granted = true
		close(w.ch)
	}
}

// pace returns session's pace, added if missing; adding one drops the
// expired ones when there are many.
func (s *site) pace(session string, now time.Time) *pace {
	if pc := s.sessions[session]; pc != nil {
		return pc
	}
	if len(s.sessions) >= s.pruneAt {
		s.prune(now)
		s.pruneAt = max(2*len(s.sessions), 8)
	}
	if s.sessions == nil {
		s.sessions = map[string]*pace{}
	}
	pc := &pace{}
	s.sessions[session] = pc
	return pc
}

// prune drops the paces that have ended.
func (s *site) prune(now time.Time) {
	maps.DeleteFunc(s.sessions, func(_ string, pc *pace) bool { return !pc.at().After(now) })
	if len(s.sessions) == 0 {
		s.sessions = nil
	}
}

// idle reports whether the site's state can be dropped.
func (s *site) idle() bool {
	return s.inFlight == 0 && len(s.queue) == 0 && len(s.sessions) == 0
}

// dropIdle forgets the site when it is idle. Called with p.mu held.
func (p *Pacer) dropIdle(name string, s *site) {
	if s.idle() && p.sites[name] == s {
		delete(p.sites, name)
	}
}

// sweepSometimes drops ended paces and idle sites every so many Waits, so
// that the sweep costs O(1) a Wait. Called with p.mu held.
func (p *Pacer) sweepSometimes(now time.Time) {
	p.ops++
	if p.ops < len(p.sites)+64 {
		return
	}
	p.ops = 0
	for name, s := range p.sites {
		s.prune(now)
		if s.idle() {
			delete(p.sites, name)
		}
	}
}
