package proxy

import (
	"context"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/sites"
)

// slotLife bounds how long a slot of a site shared on Redis outlives the
// process that took it (a lease: a request whose body lasts longer gives
// its slot up to the others then).
const slotLife = 5 * time.Minute

// paceShared takes, after the instance's own pacer, the turn of session id
// and a slot at site (of host) that every instance on the Redis pool shares
// (sites.delay and sites.concurrency of the entry that matches the host),
// waiting up to maxWait from start. It returns the release of the slot.
// Past maxWait the error is a *sites.WaitError; the store's errors wrap
// sessionpool.ErrStoreUnavailable.
func (s *Server) paceShared(ctx context.Context, host, site, id string, maxWait time.Duration, start time.Time) (func(), error) {
	rule := s.pacer.Match(host)
	if rule.Delay <= 0 && rule.Concurrency <= 0 {
		return func() {}, nil
	}
	deadline := start.Add(maxWait)
	tooLong := func(wait time.Duration) error {
		return &sites.WaitError{Site: site, Wait: wait, MaxWait: maxWait}
	}
	for rule.Delay > 0 {
		wait, err := s.sites.TryTurn(ctx, site, id, rule.Delay)
		if err != nil {
			return nil, err
		}
		if wait == 0 {
			break
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, tooLong(time.Since(start) + wait)
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
	}
	if rule.Concurrency <= 0 {
		return func() {}, nil
	}
	for poll := 10 * time.Millisecond; ; poll = min(2*poll, 200*time.Millisecond) {
		release, ok, err := s.sites.TrySlot(ctx, site, rule.Concurrency, slotLife)
		if err != nil || ok {
			return release, err
		}
		if !time.Now().Add(poll).Before(deadline) {
			return nil, tooLong(time.Since(start))
		}
		// Slots freed on other instances announce nothing: look again soon.
		if err := sleepCtx(ctx, poll); err != nil {
			return nil, err
		}
	}
}

// sleepCtx waits d, or until ctx is done (its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
