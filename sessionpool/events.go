package sessionpool

import (
	"slices"
	"sync"
)

type subscriber struct {
	id uint64
	fn func(SessionState)
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
	if fn == nil {
		return func() {}
	}
	p.subsMu.Lock()
	p.subsNext++
	id := p.subsNext
	var next []subscriber
	if cur := p.subs.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, subscriber{id: id, fn: fn})
	p.subs.Store(&next)
	p.subsMu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() {
			p.subsMu.Lock()
			defer p.subsMu.Unlock()
			cur := p.subs.Load()
			next := slices.DeleteFunc(slices.Clone(*cur), func(s subscriber) bool { return s.id == id })
			p.subs.Store(&next)
		})
	}
}

// fireRetired runs the subscribers for s. The state is built only when
// there is a subscriber.
func (p *Pool) fireRetired(s *Session) {
	subs := p.subs.Load()
	if subs == nil || len(*subs) == 0 {
		return
	}
	st := s.State()
	for _, sub := range *subs {
		sub.fn(st)
	}
}

// fireState runs the subscribers for a retirement another process
// published.
func (p *Pool) fireState(st SessionState) {
	subs := p.subs.Load()
	if subs == nil {
		return
	}
	st.Site = p.site
	for _, sub := range *subs {
		sub.fn(st)
	}
}
