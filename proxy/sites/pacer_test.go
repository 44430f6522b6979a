package sites

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func newPacer(t *testing.T, opts Options) *Pacer {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wait calls p.Wait and fails the test on an error.
func wait(t *testing.T, p *Pacer, host, session string) func() {
	t.Helper()
	release, err := p.Wait(t.Context(), host, session)
	if err != nil {
		t.Fatalf("Wait(%s, %s): %v", host, session, err)
	}
	return release
}

func TestPacerDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{Rules: []Rule{{Host: "*.example.com", Delay: time.Second}}})
		start := time.Now()
		wait(t, p, "a.example.com", "s1")()
		if d := time.Since(start); d != 0 {
			t.Fatalf("first request waited %v", d)
		}
		wait(t, p, "b.example.com:443", "s2")() // another session: not delayed
		wait(t, p, "other.org", "s1")()         // another site: not delayed
		if d := time.Since(start); d != 0 {
			t.Fatalf("other session or site waited %v", d)
		}
		wait(t, p, "B.example.com", "s1")() // same session, same site (another host)
		if d := time.Since(start); d != time.Second {
			t.Fatalf("second request of s1 went after %v, want 1s", d)
		}
		wait(t, p, "a.example.com", "s1")()
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("third request of s1 went after %v, want 2s", d)
		}
		time.Sleep(5 * time.Second) // the delay has passed: no wait
		at := time.Now()
		wait(t, p, "a.example.com", "s1")()
		if d := time.Since(at); d != 0 {
			t.Fatalf("request after the delay waited %v", d)
		}
	})
}

// TestPacerDelayQueued: two requests of one session waiting together go a
// delay apart, in arrival order, while another session goes at once.
func TestPacerDelayQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{Rules: []Rule{{Host: "example.com", Delay: time.Second, Concurrency: 10}}})
		start := time.Now()
		wait(t, p, "example.com", "s1")()
		var mu sync.Mutex
		var got []string
		var wg sync.WaitGroup
		for _, name := range []string{"s1#1", "s1#2", "s2"} {
			wg.Go(func() {
				wait(t, p, "example.com", name[:2])()
				mu.Lock()
				got = append(got, name+"@"+time.Since(start).String())
				mu.Unlock()
			})
			synctest.Wait()
		}
		wg.Wait()
		want := []string{"s2@0s", "s1#1@1s", "s1#2@2s"}
		if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Fatalf("went %v, want %v", got, want)
		}
	})
}

// TestPacerQueuedGoesWhenSessionTurnMoves: a request that waits for a slot
// before its session has a turn, and whose session's turn then moves,
// goes at that turn, not at max_wait: when the slot frees, the request of
// its session ahead of it goes and starts the delay (delay), or a
// Retry-After pauses its session meanwhile (pause).
func TestPacerQueuedGoesWhenSessionTurnMoves(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
		pause time.Duration // paused while waiting, before the slot frees
		ahead bool          // a request of the same session waits ahead of it
		want  time.Duration // when the request goes
	}{
		{name: "delay", delay: time.Second, ahead: true, want: time.Second},
		{name: "pause", pause: 2 * time.Second, want: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPacer(t, Options{MaxWait: 60 * time.Second,
					Rules: []Rule{{Host: "example.com", Delay: tt.delay, Concurrency: 1}}})
				hold := wait(t, p, "example.com", "holder")
				start := time.Now()
				var wg sync.WaitGroup
				if tt.ahead {
					wg.Go(func() {
						release, err := p.Wait(t.Context(), "example.com", "s1")
						if err != nil {
							t.Errorf("request of s1 ahead: %v", err)
							return
						}
						release() // a quick response: the slot is free at once
					})
					synctest.Wait() // queued before the next arrives
				}
				type result struct {
					err error
					at  time.Duration
				}
				done := make(chan result, 1)
				go func() {
					release, err := p.Wait(t.Context(), "example.com", "s1")
					if err == nil {
						release()
					}
					done <- result{err, time.Since(start)}
				}()
				synctest.Wait()
				if tt.pause > 0 {
					p.Pause("example.com", "s1", start.Add(tt.pause)) // Retry-After
				}
				hold()
				wg.Wait()
				if r := <-done; r.err != nil || r.at != tt.want {
					t.Fatalf("queued request of s1: err %v after %v, want to go after %v", r.err, r.at, tt.want)
				}
			})
		})
	}
}

func TestPacerConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{Rules: []Rule{{Host: "*", Concurrency: 2}}})
		var inFlight, most atomic.Int32
		var wg sync.WaitGroup
		start := time.Now()
		for i := range 7 {
			wg.Go(func() {
				release := wait(t, p, "www.example.com", string(rune('a'+i)))
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(100 * time.Millisecond)
				inFlight.Add(-1)
				release()
				release() // a second release does nothing
			})
		}
		wg.Wait()
		if most.Load() != 2 {
			t.Errorf("at most %d in flight, want 2", most.Load())
		}
		if d := time.Since(start); d != 400*time.Millisecond {
			t.Errorf("7 requests of 100ms two at a time took %v, want 400ms", d)
		}
		if n := len(p.sites); n != 0 {
			t.Errorf("%d sites kept after every request ended", n)
		}
	})
}

func TestPacerFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{Rules: []Rule{{Host: "example.com", Concurrency: 1}}})
		hold := wait(t, p, "example.com", "holder")
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				release := wait(t, p, "example.com", "s")
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				release()
			})
			synctest.Wait() // i is queued before i+1 arrives
		}
		hold()
		wg.Wait()
		for i, got := range order {
			if got != i {
				t.Fatalf("served in order %v, want arrival order", order)
			}
		}
	})
}

func TestPacerCancelLeavesQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{Rules: []Rule{{Host: "example.com", Concurrency: 1}}})
		hold := wait(t, p, "example.com", "holder")
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error)
		go func() {
			_, err := p.Wait(ctx, "example.com", "gone")
			errc <- err
		}()
		synctest.Wait()
		var next atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() {
			wait(t, p, "example.com", "next")()
			next.Store(true)
		})
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v, want context.Canceled", err)
		}
		synctest.Wait()
		if next.Load() {
			t.Fatal("the next request went in while the slot was held")
		}
		if n := len(p.sites["example.com"].queue); n != 1 {
			t.Fatalf("%d in the queue after the cancel, want 1", n)
		}
		hold()
		wg.Wait()
		if !next.Load() {
			t.Fatal("the request behind the cancelled one did not go")
		}
		if _, err := p.Wait(ctx, "example.com", "late"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait with a done context: %v", err)
		}
	})
}

// TestPacerCancelUnblocks: a cancelled head of the queue that held up a
// request with a larger cap lets it go.
func TestPacerCancelUnblocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{Rules: []Rule{{Host: "one.example.com", Concurrency: 1}, {Host: "*", Concurrency: 2}}})
		hold := wait(t, p, "one.example.com", "holder")
		defer hold()
		ctx, cancel := context.WithCancel(t.Context())
		go p.Wait(ctx, "one.example.com", "head") //nolint:errcheck // cancelled below
		synctest.Wait()
		var went atomic.Bool
		go func() {
			wait(t, p, "two.example.com", "behind")()
			went.Store(true)
		}()
		synctest.Wait()
		if went.Load() {
			t.Fatal("a request passed the head of the queue")
		}
		cancel()
		synctest.Wait()
		if !went.Load() {
			t.Fatal("the request behind the cancelled head did not go")
		}
	})
}

// TestPacerUncappedNotHeldBySlots: a request under no Concurrency (here a
// host no rule matches) takes no slot, so it does not wait behind another
// host's request of the same site that waits for one.
func TestPacerUncappedNotHeldBySlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{MaxWait: 5 * time.Second,
			Rules: []Rule{{Host: "api.example.com", Concurrency: 1}}})
		hold := wait(t, p, "api.example.com", "holder") // a long download
		defer hold()
		go p.Wait(t.Context(), "api.example.com", "queued") //nolint:errcheck // waits behind hold
		synctest.Wait()
		start := time.Now()
		release, err := p.Wait(t.Context(), "www.example.com", "s3")
		if err != nil || time.Since(start) != 0 {
			t.Fatalf("unpaced request to www.example.com: err %v after %v, want to go at once", err, time.Since(start))
		}
		release()
	})
}

func TestPacerMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{MaxWait: 5 * time.Second, Rules: []Rule{
			{Host: "slow.example", Delay: 10 * time.Second},
			{Host: "one.example", Concurrency: 1},
		}})
		check := func(err error, wantWait time.Duration, start time.Time, wantAfter time.Duration) {
			t.Helper()
			var we *WaitError
			if !errors.Is(err, ErrWaitTooLong) || !errors.As(err, &we) {
				t.Fatalf("err = %v, want a WaitError", err)
			}
			if we.Wait != wantWait || we.MaxWait != 5*time.Second {
				t.Errorf("WaitError %+v, want Wait %v", we, wantWait)
			}
			if d := time.Since(start); d != wantAfter {
				t.Errorf("refused after %v, want %v", d, wantAfter)
			}
		}

		// A pause longer than max_wait: refused at once.
		start := time.Now()
		p.Pause("a.example.org", "s1", start.Add(30*time.Second))
		_, err := p.Wait(t.Context(), "b.example.org", "s1")
		check(err, 30*time.Second, start, 0)

		// A delay longer than max_wait: refused at once.
		wait(t, p, "slow.example", "s1")()
		_, err = p.Wait(t.Context(), "slow.example", "s1")
		check(err, 10*time.Second, start, 0)

		// A slot that does not come free: refused at max_wait.
		hold := wait(t, p, "one.example", "s1")
		_, err = p.Wait(t.Context(), "one.example", "s2")
		check(err, 5*time.Second, start, 5*time.Second)
		hold()
		wait(t, p, "one.example", "s2")()
	})
}

// TestPacerFarPauseRefusedAtOnce: a pause too far off for a Duration (a
// pausedUntil kept with a session, centuries ahead) with a request of the
// session already waiting is still a wait longer than max_wait, refused at
// once: the wait does not wrap around to a negative one.
func TestPacerFarPauseRefusedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{MaxWait: 5 * time.Second,
			Rules: []Rule{{Host: "example.com", Delay: time.Second}}})
		wait(t, p, "example.com", "s1")()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go p.Wait(ctx, "example.com", "s1") //nolint:errcheck // waits for the delay, then the pause
		synctest.Wait()
		start := time.Now()
		p.Pause("example.com", "s1", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		_, err := p.Wait(t.Context(), "example.com", "s1")
		var we *WaitError
		if !errors.As(err, &we) || we.Wait < 5*time.Second || time.Since(start) != 0 {
			t.Fatalf("Wait of a session paused for centuries: %v after %v, want a WaitError at once", err, time.Since(start))
		}
	})
}

func TestPacerPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{})
		start := time.Now()
		until := start.Add(2 * time.Second)
		p.Pause("www.example.com", "s1", until)
		p.Pause("www.example.com", "s1", start.Add(time.Second)) // shorter: kept at 2s
		if got := p.PausedUntil("example.com:443", "s1"); !got.Equal(until) {
			t.Fatalf("PausedUntil = %v, want %v", got, until)
		}
		if got := p.PausedUntil("example.com", "s2"); !got.IsZero() {
			t.Fatalf("PausedUntil of another session = %v", got)
		}
		wait(t, p, "api.example.com", "s2")() // another session goes at once
		wait(t, p, "example.org", "s1")()     // so does s1 on another site
		if d := time.Since(start); d != 0 {
			t.Fatalf("unpaused requests waited %v", d)
		}
		wait(t, p, "api.example.com", "s1")()
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("paused session went after %v, want 2s", d)
		}
		if got := p.PausedUntil("example.com", "s1"); !got.IsZero() {
			t.Fatalf("PausedUntil after the pause = %v", got)
		}
	})
}

func TestPacerIdleSitesDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, Options{Rules: []Rule{{Host: "*", Delay: time.Second}}})
		for i := range 1000 {
			wait(t, p, string(rune('a'+i%26))+".example"+string(rune('a'+i/26)), "s")()
		}
		if len(p.sites) == 0 {
			t.Fatal("no site state while the delays run")
		}
		time.Sleep(2 * time.Second)
		for range 2000 {
			wait(t, p, "x.unpaced", "s")()
		}
		if n := len(p.sites); n > 1 {
			t.Fatalf("%d sites kept after every delay ended", n)
		}
	})
}

func TestPacerRules(t *testing.T) {
	p := newPacer(t, Options{Rules: []Rule{
		{Host: "API.example.com", Concurrency: 1},
		{Host: "*.example.com", Delay: time.Second},
		{Host: "shop-?.example.org", Delay: 2 * time.Second},
	}})
	tests := []struct {
		host string
		want Rule
	}{
		{"api.example.com:443", Rule{Host: "api.example.com", Concurrency: 1}},
		{"www.Example.com", Rule{Host: "*.example.com", Delay: time.Second}},
		{"a.b.example.com", Rule{Host: "*.example.com", Delay: time.Second}},
		{"example.com", Rule{}},
		{"shop-1.example.org", Rule{Host: "shop-?.example.org", Delay: 2 * time.Second}},
		{"shop-12.example.org", Rule{}},
	}
	for _, tt := range tests {
		if got := p.Match(tt.host); got != tt.want {
			t.Errorf("Match(%q) = %+v, want %+v", tt.host, got, tt.want)
		}
	}
	for _, bad := range []Rule{{Host: "[a-"}, {Host: ""}, {Host: "."}, {Host: "x", Delay: -1}, {Host: "x", Concurrency: -1}} {
		if _, err := New(Options{Rules: []Rule{bad}}); !errors.Is(err, ErrBadRule) {
			t.Errorf("New(%+v): %v, want ErrBadRule", bad, err)
		}
	}
}

// TestPacerRuleHostAsWritten: a rule's host written the way the host
// appears in a URL, an IPv6 literal in brackets or a fully qualified name
// with its trailing dot, matches that host (HostGlob gives the glob the
// form Host gives the host).
func TestPacerRuleHostAsWritten(t *testing.T) {
	tests := []struct{ glob, host, want string }{
		{"[::1]", "[::1]:8443", "::1"},
		{"[2001:DB8::1]", "[2001:db8::1]", "2001:db8::1"},
		{"example.com.", "example.com.:443", "example.com"},
		{"example.com.", "Example.com", "example.com"},
		{"*.example.com.", "www.example.com.", "*.example.com"},
		{"*.example.com.", "www.example.com", "*.example.com"},
		{"[ab]c.example", "bc.example", "[ab]c.example"}, // a glob's class, not an IP literal
	}
	for _, tt := range tests {
		p := newPacer(t, Options{Rules: []Rule{{Host: tt.glob, Concurrency: 1}}})
		if got := p.Match(tt.host); got.Host != tt.want {
			t.Errorf("rule %q: Match(%q) = %+v, want the rule as %q", tt.glob, tt.host, got, tt.want)
		}
	}
}
