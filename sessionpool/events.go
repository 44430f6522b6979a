package sessionpool

import (
	"slices"
	"sync"
	"sync/atomic"
)

type subscriber struct {
	id uint64
	fn func(SessionState)
}

// subscribers is a list of retirement subscribers, read without a lock on
// every retirement and copied on write. The zero value is empty and ready;
// safe for concurrent use.
type subscribers struct {
	mu   sync.Mutex // serializes add and cancel
	next uint64     // guarded by mu
	list atomic.Pointer[[]subscriber]
}

// add subscribes fn and returns its idempotent cancel.
func (ss *subscribers) add(fn func(SessionState)) (cancel func()) {
	if fn == nil {
		return func() {}
	}
	ss.mu.Lock()
	ss.next++
	id := ss.next
	var next []subscriber
	if cur := ss.list.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, subscriber{id: id, fn: fn})
	ss.list.Store(&next)
	ss.mu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() {
			ss.mu.Lock()
			defer ss.mu.Unlock()
			cur := ss.list.Load()
			next := slices.DeleteFunc(slices.Clone(*cur), func(s subscriber) bool { return s.id == id })
			ss.list.Store(&next)
		})
	}
}

// any reports whether there is a subscriber.
func (ss *subscribers) any() bool {
	cur := ss.list.Load()
	return cur != nil && len(*cur) > 0
}

// fire runs every subscriber with st.
func (ss *subscribers) fire(st SessionState) {
	if cur := ss.list.Load(); cur != nil {
		for _, sub := range *cur {
			sub.fn(st)
		}
	}
}

// OnSessionRetired subscribes fn to retirements: it is called once per
// session, when its retired flag is set (Retire, RetireOnBlockedStatusCodes
// or a mark that makes it unusable), with the session's state, outside every
// lock, on the goroutine that retired it. With a Redis pool it fires in
// every process sharing the pool: on the retiring goroutine in the process
// that retired the session, on the pool's event goroutine in the others
// (Redis pub/sub: events published while a process is disconnected from the
// server do not reach it). Expired sessions that are evicted without being
// retired fire nothing. fn must not modify the state's maps and slices,
// which all subscribers share, and must not call Teardown (on the event
// goroutine, Teardown would wait for fn to return). The returned cancel unsubscribes
// (idempotent); fn may be running while cancel returns.
func (p *Pool) OnSessionRetired(fn func(SessionState)) (cancel func()) {
	return p.subs.add(fn)
}

// fireRetired runs the subscribers for s. The state is built only when
// there is a subscriber.
func (p *Pool) fireRetired(s *Session) {
	if p.subs.any() {
		p.subs.fire(s.State())
	}
}

// fireState runs the subscribers for a retirement another process
// published.
func (p *Pool) fireState(st SessionState) {
	st.Site = p.site
	p.subs.fire(st)
}
