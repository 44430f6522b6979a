package sites

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultMaxWait is the longest a request waits for its turn when
// Options.MaxWait is not set.
const DefaultMaxWait = 60 * time.Second

var (
	// ErrWaitTooLong: a request would wait, or has waited, longer than
	// the max wait for its turn at a site. The error is a *WaitError.
	ErrWaitTooLong = errors.New("sites: wait longer than max_wait")
	// ErrBadRule: a rule of Options.Rules is invalid.
	ErrBadRule = errors.New("sites: invalid rule")
)

// WaitError is the error of a request refused for waiting too long; it
// wraps ErrWaitTooLong.
type WaitError struct {
	Site string // the site (Of) waited for
	// Wait is how long the wait would have been when it was known at once
	// (a pause, a session's delay); for a slot that did not come free in
	// time, how long the request waited (at least MaxWait).
	Wait    time.Duration
	MaxWait time.Duration
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("sites: wait of %v for %s is longer than max_wait %v", e.Wait, e.Site, e.MaxWait)
}

// Unwrap returns ErrWaitTooLong.
func (e *WaitError) Unwrap() error { return ErrWaitTooLong }

// Rule is the pacing of the hosts its glob matches. The zero Delay and
// Concurrency mean no delay and no cap.
type Rule struct {
	// Host is a path.Match glob on the request host (see Host), matched
	// case-insensitively: "*.example.com" matches a.example.com and
	// a.b.example.com, not example.com. It may be written the way the host
	// appears in a URL ("[::1]", "example.com."): see HostGlob.
	Host string
	// Delay is the least time between the starts of two requests of one
	// session to the site.
	Delay time.Duration
	// Concurrency is the most requests in flight to the site, all
	// sessions together; only requests let in under a rule with a
	// Concurrency are counted.
	Concurrency int
}

// Options configures a Pacer. The zero value paces nothing but pauses and
// waits at most DefaultMaxWait.
type Options struct {
	Rules   []Rule           // the first whose Host matches the request host applies; nil = none
	MaxWait time.Duration    // longest wait for a turn; <= 0 = DefaultMaxWait
	Now     func() time.Time // the clock; nil = time.Now. Waits use timers: tests run in a testing/synctest bubble
}

// A Pacer lets requests go to a site in their turn: it spaces the requests
// of one session to a site by the Delay of the site's rule, caps the
// requests in flight to a site by its Concurrency, and holds a session
// back from a site while it is paused there. Waiting requests go in the
// order in which they arrived (per site); one whose session is not due yet
// lets those behind it pass, and one waiting for a slot holds up only
// those behind it that take a slot too (a request under a rule without a
// Concurrency, or no rule, takes none). A Pacer is safe for concurrent use
// and runs no goroutines of its own; the state of a site is dropped once
// nothing is in flight, waiting, paused or delayed there.
type Pacer struct {
	rules   []rule
	maxWait time.Duration
	now     func() time.Time

	mu    sync.Mutex
	sites map[string]*site // by Of(host)
	ops   int              // Waits since the last sweep
}

// rule is a Rule with its glob's fast paths.
type rule struct {
	Rule
	literal bool   // Host has no glob characters
	suffix  string // Host is "*" + suffix, suffix without glob characters
}

// site is the state of one site.
type site struct {
	inFlight int              // counted requests in flight
	queue    []*waiter        // in arrival order
	sessions map[string]*pace // sessions delayed or paused here
	pruneAt  int              // len(sessions) at which expired ones are dropped
}

// pace is when a session may next start a request to a site.
type pace struct {
	next   time.Time // the end of the session's delay
	paused time.Time // the end of the session's pause
}

// waiter is a request waiting for its turn.
type waiter struct {
	session string
	delay   time.Duration
	cap     int           // 0 = not counted
	granted bool          // set with ch closed, under the Pacer's lock
	ch      chan struct{} // closed when the request may go
	// wakeAt is when the waiter's timer wakes it to look again, the zero
	// time when it is not set; under the Pacer's lock.
	wakeAt time.Time
	moved  chan struct{} // (1 buffered) its session's turn moved: set the timer again
}

// New returns a Pacer for opts. An invalid glob, or a negative Delay or
// Concurrency, gives an error wrapping ErrBadRule.
func New(opts Options) (*Pacer, error) {
	p := &Pacer{maxWait: opts.MaxWait, now: opts.Now, sites: map[string]*site{}}
	if p.maxWait <= 0 {
		p.maxWait = DefaultMaxWait
	}
	if p.now == nil {
		p.now = time.Now
	}
	for i, r := range opts.Rules {
		r.Host = HostGlob(r.Host)
		if _, err := path.Match(r.Host, ""); err != nil || r.Host == "" || r.Delay < 0 || r.Concurrency < 0 {
			return nil, fmt.Errorf("compile rules[%d] (host %q, delay %v, concurrency %d): %w",
				i, r.Host, r.Delay, r.Concurrency, ErrBadRule)
		}
		cr := rule{Rule: r}
		switch {
		case !strings.ContainsAny(r.Host, `*?[\`):
			cr.literal = true
		case strings.HasPrefix(r.Host, "*") && !strings.ContainsAny(r.Host[1:], `*?[\`):
			cr.suffix = r.Host[1:]
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

// Match returns the first rule whose glob matches host (a port is
// ignored), the zero Rule when none does.
func (p *Pacer) Match(host string) Rule {
	h := Host(host)
	for i := range p.rules {
		r := &p.rules[i]
		var ok bool
		switch {
		case r.literal:
			ok = h == r.Host
		case r.suffix != "":
			ok = strings.HasSuffix(h, r.suffix)
		default:
			ok, _ = path.Match(r.Host, h)
		}
		if ok {
			return r.Rule
		}
	}
	return Rule{}
}

func noRelease() {}

// Wait waits until a request of session to host may go, and returns the
// release to call once its response is done (more calls do nothing).
// host is the request host (a port is ignored): the rules are matched
// against it and the state is kept by its site, Of(host); a site works as
// host too, but then "*.example.com" does not match it. A wait that is
// known at once to be longer than the max wait (a pause, the session's
// delay) fails at once; a wait for a slot fails when the max wait has
// passed; both with a *WaitError. When ctx is done the request gives up its
// place and Wait returns ctx's error, wrapped.
func (p *Pacer) Wait(ctx context.Context, host, session string) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wait for %s: %w", host, err)
	}
	r := p.Match(host)
	if r.Delay == 0 && r.Concurrency == 0 {
		p.mu.Lock()
		none := len(p.sites) == 0
		p.mu.Unlock()
		if none { // nothing paced, nothing paused: no need to know the site
			return noRelease, nil
		}
	}
	name := Of(host)
	p.mu.Lock()
	now := p.now()
	p.sweepSometimes(now)
	s := p.sites[name]
	if s == nil {
		if r.Delay == 0 && r.Concurrency == 0 {
			p.mu.Unlock()
			return noRelease, nil
		}
		s = &site{}
		p.sites[name] = s
	}
	w := &waiter{session: session, delay: r.Delay, cap: r.Concurrency}
	if wait := s.due(session, now, w.delay); wait > p.maxWait {
		p.dropIdle(name, s)
		p.mu.Unlock()
		return nil, &WaitError{Site: name, Wait: wait, MaxWait: p.maxWait}
	}
	w.ch, w.moved = make(chan struct{}), make(chan struct{}, 1)
	s.queue = append(s.queue, w)
	s.dispatch(now)
	granted := w.granted
	p.mu.Unlock()
	if granted {
		return p.releaser(name, s, w), nil
	}
	return p.await(ctx, name, s, w, now)
}

// await waits for w's turn: it wakes when w's session is due to let
// dispatch look again (dispatch tells it when that time has moved), and
// gives up at the max wait or when ctx is done.
func (p *Pacer) await(ctx context.Context, name string, s *site, w *waiter, start time.Time) (func(), error) {
	deadline := time.NewTimer(p.maxWait)
	defer deadline.Stop()
	wake := time.NewTimer(time.Hour)
	wake.Stop()
	defer wake.Stop()
	for {
		p.mu.Lock()
		now := p.now()
		if pc := s.sessions[w.session]; pc != nil && !w.granted {
			if at := pc.at(); at.After(now) && !at.Equal(w.wakeAt) {
				w.wakeAt = at
				wake.Reset(at.Sub(now))
			}
		}
		p.mu.Unlock()
		select {
		case <-w.ch:
			return p.releaser(name, s, w), nil
		case <-w.moved: // look again at when the session is due
		case <-wake.C:
			p.mu.Lock()
			w.wakeAt = time.Time{}
			s.dispatch(p.now())
			p.mu.Unlock()
		case <-deadline.C:
			if p.leave(name, s, w) {
				return p.releaser(name, s, w), nil
			}
			return nil, &WaitError{Site: name, Wait: p.now().Sub(start), MaxWait: p.maxWait}
		case <-ctx.Done():
			if p.leave(name, s, w) {
				p.releaser(name, s, w)()
			}
			return nil, fmt.Errorf("wait for %s: %w", name, ctx.Err())
		}
	}
}

// leave takes w out of its site's queue, or reports that it was let in
// meanwhile.
func (p *Pacer) leave(name string, s *site, w *waiter) (granted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.granted {
		return true
	}
	s.queue = slices.DeleteFunc(s.queue, func(x *waiter) bool { return x == w })
	s.dispatch(p.now()) // w may have held up those behind it
	p.dropIdle(name, s)
	return false
}

// releaser returns the release of a request let in as w.
func (p *Pacer) releaser(name string, s *site, w *waiter) func() {
	if w.cap == 0 {
		return noRelease
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			s.inFlight--
			s.dispatch(p.now())
			p.dropIdle(name, s)
		})
	}
}

// Pause holds session back from host's site until until (a later pause
// is kept: a pause is only ever extended). Requests of other sessions go
// on.
func (p *Pacer) Pause(host, session string, until time.Time) {
	name := Of(host)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !until.After(p.now()) {
		return
	}
	s := p.sites[name]
	if s == nil {
		s = &site{}
		p.sites[name] = s
	}
	now := p.now()
	pc := s.pace(session, now)
	if until.After(pc.paused) {
		pc.paused = until
		s.dispatch(now) // tells the session's waiters their new turn
	}
}

// PausedUntil returns when session's pause on host's site ends, the zero
// time when it is not paused there.
func (p *Pacer) PausedUntil(host, session string) time.Time {
	p.mu.Lock()
	none := len(p.sites) == 0
	p.mu.Unlock()
	if none { // no need to know the site
		return time.Time{}
	}
	name := Of(host)
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.sites[name]; s != nil {
		if pc := s.sessions[session]; pc != nil && pc.paused.After(p.now()) {
			return pc.paused
		}
	}
	return time.Time{}
}
