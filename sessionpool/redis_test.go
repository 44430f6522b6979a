package sessionpool_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessionproxy/sessionproxy/sessionpool"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// The Redis backend's own tests: several pools on one server stand for
// several processes. They use a real redis-server on loopback (the shared
// one, or their own when they stop it). Nothing sleeps: what is
// asynchronous (pub/sub events) is waited for on channels, with a generous
// timeout that fails the test.

// eventTimeout bounds every wait for a pub/sub event.
const eventTimeout = 20 * time.Second

// redisPools opens n pools sharing one key on the shared server (n
// processes, as far as the pool can tell).
func redisPools(t *testing.T, n int, opts sessionpool.Options) []*sessionpool.Pool {
	t.Helper()
	opts = redisBackend().Options(t, opts)
	out := make([]*sessionpool.Pool, n)
	for i := range out {
		out[i] = sessionpooltest.OpenPool(t, opts)
	}
	return out
}

// redisClient returns a go-redis client of its own on url, closed at the
// end of the test: the tests' view of the server, beside the pools.
func redisClient(t testing.TB, rawURL string) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// eventLog records a pool's retirement events and lets a test wait for one.
type eventLog struct {
	mu     sync.Mutex
	counts map[string]int
	states map[string]sessionpool.SessionState
	ch     chan string // every event's ID
}

func logEvents(p *sessionpool.Pool) *eventLog {
	l := &eventLog{counts: map[string]int{}, states: map[string]sessionpool.SessionState{}, ch: make(chan string, 10000)}
	p.OnSessionRetired(func(st sessionpool.SessionState) {
		l.mu.Lock()
		l.counts[st.ID]++
		l.states[st.ID] = st
		l.mu.Unlock()
		l.ch <- st.ID
	})
	return l
}

func (l *eventLog) count(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[id]
}

func (l *eventLog) state(id string) sessionpool.SessionState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.states[id]
}

// waitFor waits until the event of id has arrived (events arrive in the
// order the server published them: every event published before it has
// arrived too).
func (l *eventLog) waitFor(t *testing.T, what, id string) {
	t.Helper()
	if l.count(id) > 0 {
		return
	}
	timeout := time.After(eventTimeout)
	for {
		select {
		case got := <-l.ch:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("%s: no retirement event for %s within %v", what, id, eventTimeout)
		}
	}
}

// cookieNames returns the names of the cookies s sends to u, sorted.
func cookieNames(s *sessionpool.Session, u *url.URL) []string {
	var out []string
	for _, c := range s.Cookies(u) {
		out = append(out, c.Name+"="+c.Value)
	}
	slices.Sort(out)
	return out
}

// TestRedisPoolsShareSessions: a session one pool creates is found by ID in
// another with everything it holds, and the marks of both add up.
func TestRedisPoolsShareSessions(t *testing.T) {
	ctx := context.Background()
	clock := sessionpooltest.NewClock()
	ps := redisPools(t, 2, sessionpool.Options{MaxPoolSize: 10, Now: clock.Now})
	p, q := ps[0], ps[1]
	u, _ := url.Parse("https://shop.example.com/cart")
	upstream := "http://user:secret@10.0.0.7:3128"
	s := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{ProxyURL: upstream, UserData: map[string]any{"k": "v", "n": 3}, MaxUsageCount: 1000, MaxErrorScore: 1000, ErrorScoreDecrement: 0.25, MaxAge: time.Hour})
	if err := s.Commit(ctx, sessionpooltest.SetCookieResponse(u, "a=1; Path=/", "b=2; Domain=example.com; Path=/; Secure; HttpOnly"), sessionpool.Good); err != nil {
		t.Fatal(err)
	}
	s.MarkBad()

	got := sessionpooltest.MustGetByID(t, q, s.ID())
	if got.ProxyURL() != upstream || got.UserData()["k"] != "v" || got.UserData()["n"] != 3.0 ||
		got.UsageCount() != 2 || got.ErrorScore() != 1 || got.MaxUsageCount() != 1000 || got.MaxErrorScore() != 1000 ||
		got.State().ErrorScoreDecrement != 0.25 || !got.CreatedAt().Equal(s.CreatedAt()) || !got.ExpiresAt().Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("the other pool's copy: %+v", got.State())
	}
	if cs := got.CookieString(u); cs != "a=1; b=2" {
		t.Errorf("the other pool's cookies: %q", cs)
	}
	if cs := got.State().Cookies; len(cs) != 2 || !cs[1].Secure || !cs[1].HTTPOnly || cs[1].HostOnly || !cs[0].HostOnly {
		t.Errorf("cookie attributes: %+v", cs)
	}
	// Both pools' GetSession see it too (the pool holds one session, far
	// from full: GetSession fills first, so ask by ID and count).
	if n := sessionpooltest.HeldCount(q); n != 1 {
		t.Errorf("the other pool counts %d sessions", n)
	}

	// Marks from both pools, concurrently, add up: s1 takes only MarkBad
	// (its score and uses both count them), s2 only MarkGood.
	s2 := sessionpooltest.AddSession(t, q, sessionpool.SessionOptions{MaxUsageCount: 1000})
	const perGoroutine, goroutinesPerPool = 40, 4
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, pool := range ps {
		for range goroutinesPerPool {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, b := sessionpooltest.MustGetByID(t, pool, s.ID()), sessionpooltest.MustGetByID(t, pool, s2.ID())
				<-start
				for range perGoroutine {
					a.MarkBad()
					b.MarkGood()
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	total := 2 * goroutinesPerPool * perGoroutine
	for _, pool := range ps {
		a, b := sessionpooltest.MustGetByID(t, pool, s.ID()), sessionpooltest.MustGetByID(t, pool, s2.ID())
		if a.UsageCount() != 2+total || a.ErrorScore() != float64(1+total) || b.UsageCount() != total || b.ErrorScore() != 0 {
			t.Errorf("after %d marks from both pools: s uses %d score %v, s2 uses %d score %v", total, a.UsageCount(), a.ErrorScore(), b.UsageCount(), b.ErrorScore())
		}
	}
	// A mark brings the copy up to date with the other pool's marks.
	s.MarkGood()
	if s.UsageCount() != 3+total || s.ErrorScore() != float64(1+total)-0.25 {
		t.Errorf("the first copy after one more mark: uses %d score %v", s.UsageCount(), s.ErrorScore())
	}
	// Sessions of other keys are not shared.
	other := redisPools(t, 1, sessionpool.Options{})[0]
	if _, err := other.GetSessionByID(ctx, s.ID()); !errors.Is(err, sessionpool.ErrSessionNotFound) {
		t.Errorf("a pool with another key found the session: %v", err)
	}
}

// TestRedisMaxPoolSizeAcrossPools: GetSession from many goroutines of two
// pools never makes them hold more than MaxPoolSize sessions together.
func TestRedisMaxPoolSizeAcrossPools(t *testing.T) {
	const (
		maxSize    = 8
		goroutines = 8 // per pool
		iterations = 300
	)
	ctx := context.Background()
	ps := redisPools(t, 2, sessionpool.Options{MaxPoolSize: maxSize, SessionOptions: sessionpool.SessionOptions{MaxUsageCount: 5}})
	rc := redisClient(t, shared.Server(t).URL(0))
	heldKey := sessionpool.RedisKey(ps[0], "held")
	var (
		maxSeen  atomic.Int64
		samples  atomic.Int64
		mu       sync.Mutex
		seenBy   = [2]map[string]bool{{}, {}}
		workers  sync.WaitGroup
		sampling sync.WaitGroup
	)
	observe := func(n int64) {
		samples.Add(1)
		for {
			m := maxSeen.Load()
			if n <= m || maxSeen.CompareAndSwap(m, n) {
				return
			}
		}
	}
	stop := make(chan struct{})
	sampling.Add(1)
	go func() { // SCARD is one atomic read of what both pools hold
		defer sampling.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := rc.SCard(ctx, heldKey).Result()
			if err != nil {
				t.Errorf("SCARD: %v", err)
				return
			}
			observe(n)
		}
	}()
	for i, p := range ps {
		for g := range goroutines {
			workers.Add(1)
			go func() {
				defer workers.Done()
				r := rand.New(rand.NewPCG(uint64(i), uint64(g)))
				for range iterations {
					s, err := p.GetSession(ctx)
					if err != nil {
						t.Errorf("GetSession: %v", err)
						return
					}
					if n, err := rc.SCard(ctx, heldKey).Result(); err == nil {
						observe(n)
					}
					mu.Lock()
					seenBy[i][s.ID()] = true
					mu.Unlock()
					switch r.IntN(4) {
					case 0, 1:
						s.MarkGood()
					case 2:
						s.MarkBad()
					case 3:
						if r.IntN(4) == 0 {
							s.Retire()
						}
					}
				}
			}()
		}
	}
	workers.Wait()
	close(stop)
	sampling.Wait()
	if m := maxSeen.Load(); m > maxSize || samples.Load() < goroutines*iterations {
		t.Errorf("held at most %d sessions (MaxPoolSize %d) in %d samples", m, maxSize, samples.Load())
	}
	for _, p := range ps {
		if n := sessionpooltest.HeldCount(p); n > maxSize {
			t.Errorf("the pools hold %d sessions at the end", n)
		}
	}
	shared := 0
	for id := range seenBy[0] {
		if seenBy[1][id] {
			shared++
		}
	}
	if len(seenBy[0])+len(seenBy[1])-shared <= maxSize || shared == 0 {
		t.Errorf("no churn or no sharing: %d and %d sessions seen, %d by both", len(seenBy[0]), len(seenBy[1]), shared)
	}
}

// TestRedisRetiredEventOncePerPool: one retirement fires OnSessionRetired
// once in each pool (synchronously in the one that retired it, through
// pub/sub in the other), even when both retire the session at once.
func TestRedisRetiredEventOncePerPool(t *testing.T) {
	ctx := context.Background()
	ps := redisPools(t, 2, sessionpool.Options{MaxPoolSize: 100})
	p, q := ps[0], ps[1]
	lp, lq := logEvents(p), logEvents(q)
	u, _ := url.Parse("https://example.com/")

	// One pool retires: its event is synchronous, the other's follows.
	s := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{ProxyURL: "http://10.0.0.1:8080", UserData: map[string]any{"u": "x"}})
	s.SetCookies(u, []*http.Cookie{{Name: "sid", Value: "42"}})
	s.MarkBad()
	s.Retire()
	if lp.count(s.ID()) != 1 {
		t.Fatalf("the retiring pool fired %d events when Retire returned", lp.count(s.ID()))
	}
	lq.waitFor(t, "the other pool", s.ID())
	st := lq.state(s.ID())
	if !st.Retired || st.UsageCount != 2 || st.ErrorScore != 1 || st.ProxyURL != "http://10.0.0.1:8080" ||
		st.UserData["u"] != "x" || len(st.Cookies) != 1 || st.Cookies[0].Value != "42" {
		t.Errorf("the other pool's event: %+v", st)
	}

	// Both retire at once, many times over.
	const rounds = 25
	var ids []string
	for range rounds {
		a := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{})
		b := sessionpooltest.MustGetByID(t, q, a.ID())
		ids = append(ids, a.ID())
		start := make(chan struct{})
		var wg sync.WaitGroup
		retire := []func(){a.Retire, func() { // both ways of retiring
			if err := b.Commit(ctx, nil, sessionpool.Retire); err != nil {
				t.Error(err)
			}
		}}
		for _, f := range retire {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				f()
			}()
		}
		close(start)
		wg.Wait()
		if !a.Retired() || !b.Retired() {
			t.Errorf("after both retired it: copies retired %v %v", a.Retired(), b.Retired())
		}
	}
	// Markers: every event published before a marker reaches the other
	// pool before the marker does, so once the markers are in, a second
	// event for any session would have been counted.
	mq := sessionpooltest.AddSession(t, q, sessionpool.SessionOptions{})
	mq.Retire()
	mp := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{})
	mp.Retire()
	lp.waitFor(t, "pool p", mq.ID())
	lq.waitFor(t, "pool q", mp.ID())
	for _, id := range ids {
		if cp, cq := lp.count(id), lq.count(id); cp != 1 || cq != 1 {
			t.Errorf("session %s: %d events in p, %d in q; want 1 and 1", id, cp, cq)
		}
		if st := sessionpooltest.StateOf(t, p, id); st.UsageCount != 1 || !st.Retired {
			t.Errorf("session %s retired twice at once: uses %d retired %v", id, st.UsageCount, st.Retired)
		}
	}
	if lp.count(s.ID()) != 1 || lq.count(s.ID()) != 1 || lp.count(mp.ID()) != 1 || lq.count(mq.ID()) != 1 {
		t.Errorf("duplicate events: %d %d %d %d", lp.count(s.ID()), lq.count(s.ID()), lp.count(mp.ID()), lq.count(mq.ID()))
	}
}

// TestRedisStaleCopyLeavesSuccessor: a spent session's name is free again,
// and what a copy of the spent session does afterwards (a second Retire,
// a mark, SetUserData) changes nothing on the server and fires nothing:
// the new session under that name is another session.
func TestRedisStaleCopyLeavesSuccessor(t *testing.T) {
	ctx := context.Background()
	ps := redisPools(t, 2, sessionpool.Options{MaxPoolSize: 10})
	p, q := ps[0], ps[1]
	events := logEvents(p)
	old := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{ID: "acct-1"})
	old.Retire()
	if !old.Retired() || events.count("acct-1") != 1 {
		t.Fatalf("old copy: retired %v, %d events, want true and 1", old.Retired(), events.count("acct-1"))
	}
	sessionpooltest.AddSession(t, q, sessionpool.SessionOptions{ID: "acct-1", UserData: map[string]any{"k": "fresh"}})
	old.MarkBad()
	old.Retire()
	if err := old.SetUserData(map[string]any{"k": "old"}); err != nil {
		t.Fatal(err)
	}
	if n := events.count("acct-1"); n != 1 {
		t.Errorf("the old copy fired %d events, want 1", n)
	}
	got, err := q.GetSessionByID(ctx, "acct-1")
	if err != nil {
		t.Fatalf("the new acct-1 was retired by the old copy: %v", err)
	}
	if got.UsageCount() != 0 || got.ErrorScore() != 0 || got.UserData()["k"] != "fresh" {
		t.Errorf("the new acct-1 took the old copy's changes: uses %d, error score %v, user data %v", got.UsageCount(), got.ErrorScore(), got.UserData())
	}
}

// TestRedisCookiesMerged: copies of one session commit different cookies at
// once; the server keeps every one of them (merged per cookie, not per
// jar), and deletes what any copy deletes.
func TestRedisCookiesMerged(t *testing.T) {
	ctx := context.Background()
	ps := redisPools(t, 2, sessionpool.Options{})
	p, q := ps[0], ps[1]
	u, _ := url.Parse("https://example.com/")
	s := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{MaxUsageCount: 1000})
	const rounds = 20
	var want []string
	for i := range rounds {
		c1, c2 := sessionpooltest.MustGetByID(t, p, s.ID()), sessionpooltest.MustGetByID(t, q, s.ID())
		n1, n2 := fmt.Sprintf("a%02d=%d", i, i), fmt.Sprintf("b%02d=%d", i, i)
		want = append(want, n1, n2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c, line := range map[*sessionpool.Session]string{c1: n1 + "; Path=/", c2: n2 + "; Path=/"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := c.Commit(ctx, sessionpooltest.SetCookieResponse(u, line), sessionpool.Good); err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	slices.Sort(want)
	for _, pool := range ps {
		got := sessionpooltest.MustGetByID(t, pool, s.ID())
		if names := cookieNames(got, u); !slices.Equal(names, want) {
			t.Fatalf("after concurrent commits the server holds %v, want %v", names, want)
		}
		if got.UsageCount() != 2*rounds {
			t.Errorf("uses %d, want %d", got.UsageCount(), 2*rounds)
		}
	}

	// A copy that never saw a cookie still deletes it on the server.
	stale := sessionpooltest.MustGetByID(t, q, s.ID())
	fresh := sessionpooltest.MustGetByID(t, p, s.ID())
	if err := fresh.Commit(ctx, sessionpooltest.SetCookieResponse(u, "late=1; Path=/"), sessionpool.NoMark); err != nil {
		t.Fatal(err)
	}
	if err := stale.Commit(ctx, sessionpooltest.SetCookieResponse(u, "late=; Path=/; Max-Age=0", "a00=; Path=/; Max-Age=0"), sessionpool.NoMark); err != nil {
		t.Fatal(err)
	}
	names := cookieNames(sessionpooltest.MustGetByID(t, p, s.ID()), u)
	if slices.Contains(names, "late=1") || slices.Contains(names, "a00=0") || len(names) != len(want)-1 {
		t.Errorf("after Max-Age=0 from a copy without the cookies: %v", names)
	}
	// ... unless the cookie is Secure and the response came over http
	// (leave secure cookies alone).
	if err := fresh.Commit(ctx, sessionpooltest.SetCookieResponse(u, "sec=1; Path=/; Secure"), sessionpool.NoMark); err != nil {
		t.Fatal(err)
	}
	plain, _ := url.Parse("http://example.com/")
	if err := stale.Commit(ctx, sessionpooltest.SetCookieResponse(plain, "sec=; Path=/; Max-Age=0", "b00=; Path=/; Max-Age=0"), sessionpool.NoMark); err != nil {
		t.Fatal(err)
	}
	names = cookieNames(sessionpooltest.MustGetByID(t, p, s.ID()), u)
	if !slices.Contains(names, "sec=1") || slices.Contains(names, "b00=0") {
		t.Errorf("an http response deleted a Secure cookie it never saw, or failed to delete a plain one: %v", names)
	}
	if got := sessionpooltest.MustGetByID(t, p, s.ID()).UsageCount(); got != 2*rounds {
		t.Errorf("NoMark counted uses: %d", got)
	}
}

// TestRedisKeyExpiry: a session's keys expire with it on the server; an
// expired session is never returned, counts as retired, and is evicted.
func TestRedisKeyExpiry(t *testing.T) {
	ctx := context.Background()
	clock := sessionpooltest.NewClock()
	p := redisPools(t, 1, sessionpool.Options{MaxPoolSize: 2, Now: clock.Now})[0]
	rc := redisClient(t, shared.Server(t).URL(0))
	u, _ := url.Parse("https://example.com/")
	short := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{MaxAge: time.Minute})
	long := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{MaxAge: time.Hour})
	short.SetCookies(u, []*http.Cookie{{Name: "c", Value: "1"}})
	// The TTL runs on the server's clock: within a second of MaxAge.
	ttl := func(k string) time.Duration {
		t.Helper()
		d, err := rc.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for k, maxAge := range map[string]time.Duration{
		sessionpool.RedisKey(p, "s:"+short.ID()): time.Minute, sessionpool.RedisKey(p, "c:"+short.ID()): time.Minute, sessionpool.RedisKey(p, "s:"+long.ID()): time.Hour,
	} {
		if d := ttl(k); d > maxAge || d < maxAge-5*time.Second {
			t.Errorf("PTTL %s = %v, want about %v", k, d, maxAge)
		}
	}
	if n, _ := rc.Exists(ctx, sessionpool.RedisKey(p, "c:"+long.ID())).Result(); n != 0 {
		t.Errorf("a session without cookies has a cookie key")
	}
	// A session CreateSessionFunc seeded with cookies gets its cookie key
	// with its TTL when it is added.
	seeded := redisPools(t, 1, sessionpool.Options{Now: clock.Now, SessionOptions: sessionpool.SessionOptions{MaxAge: 30 * time.Second},
		CreateSessionFunc: func(ctx context.Context, p *sessionpool.Pool, o sessionpool.SessionOptions) (*sessionpool.Session, error) {
			s, err := p.NewSession(o)
			if err == nil {
				s.SetCookies(u, []*http.Cookie{{Name: "pre", Value: "1"}})
			}
			return s, err
		}})[0]
	ss := sessionpooltest.GetN(t, seeded, 1)[0]
	if d := ttl(sessionpool.RedisKey(seeded, "c:"+ss.ID())); d > 30*time.Second || d < 25*time.Second {
		t.Errorf("PTTL of a seeded session's cookies = %v, want about 30s", d)
	}

	clock.Advance(time.Minute)
	if _, err := p.GetSessionByID(ctx, short.ID()); !errors.Is(err, sessionpool.ErrSessionNotFound) {
		t.Errorf("expired session by ID: %v", err)
	}
	if p.UsableSessionsCount() != 1 || p.RetiredSessionsCount() != 1 {
		t.Errorf("usable %d retired %d, want 1 and 1", p.UsableSessionsCount(), p.RetiredSessionsCount())
	}
	for i := 0; ; i++ {
		s := sessionpooltest.GetN(t, p, 1)[0]
		if s.ID() == short.ID() {
			t.Fatal("GetSession returned an expired session")
		}
		if s.ID() != long.ID() {
			break // the expired one was picked and evicted
		}
		if i > 1000 {
			t.Fatal("the expired session was never picked")
		}
	}
	for _, k := range []string{sessionpool.RedisKey(p, "s:"+short.ID()), sessionpool.RedisKey(p, "c:"+short.ID())} {
		if n, _ := rc.Exists(ctx, k).Result(); n != 0 {
			t.Errorf("%s survived the eviction", k)
		}
	}
	if ok, _ := rc.SIsMember(ctx, sessionpool.RedisKey(p, "held"), short.ID()).Result(); ok {
		t.Errorf("the evicted session is still held")
	}
	if p.RetiredSessionsCount() != 0 || p.UsableSessionsCount() != 2 {
		t.Errorf("after eviction: usable %d retired %d", p.UsableSessionsCount(), p.RetiredSessionsCount())
	}

	// The server drops a session's keys when their TTL runs out (forced
	// here by an expiry in the past): the session is gone for every pool,
	// even one whose clock has not caught up, and its ID is swept.
	if err := rc.PExpireAt(ctx, sessionpool.RedisKey(p, "s:"+long.ID()), time.Unix(1, 0)).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetSessionByID(ctx, long.ID()); !errors.Is(err, sessionpool.ErrSessionNotFound) {
		t.Errorf("a session whose keys expired: %v", err)
	}
	for i := 0; ; i++ {
		s := sessionpooltest.GetN(t, p, 1)[0]
		if s.ID() == long.ID() {
			t.Fatal("GetSession returned a session whose keys expired")
		}
		if ok, _ := rc.SIsMember(ctx, sessionpool.RedisKey(p, "held"), long.ID()).Result(); !ok {
			break
		}
		if i > 1000 {
			t.Fatal("the session whose keys expired was never swept")
		}
	}
	// A mark on a copy of a session the server dropped spends the copy.
	long.MarkGood()
	if long.IsUsable() || !long.Retired() {
		t.Errorf("a copy of a dropped session stays usable")
	}
}

// TestRedisReaddAfterKeysExpired: a retired session whose keys the server
// dropped (their TTL ran out) leaves its ID in the pool's sets; a session
// added later under that ID is usable, counted as usable, and survives the
// eviction of the unusable sessions.
func TestRedisReaddAfterKeysExpired(t *testing.T) {
	ctx := context.Background()
	p := redisPools(t, 1, sessionpool.Options{MaxPoolSize: 2})[0]
	rc := redisClient(t, shared.Server(t).URL(0))
	old := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{ID: "acct-1"})
	old.Retire()
	if err := rc.PExpireAt(ctx, sessionpool.RedisKey(p, "s:acct-1"), time.Unix(1, 0)).Err(); err != nil {
		t.Fatal(err)
	}
	s := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{ID: "acct-1"})
	if !s.IsUsable() {
		t.Fatal("the new acct-1 is not usable")
	}
	if u, r := p.UsableSessionsCount(), p.RetiredSessionsCount(); u != 1 || r != 0 {
		t.Errorf("after adding acct-1 again: usable %d retired %d, want 1 and 0", u, r)
	}
	// Fill the pool and spend the other session; get until it is picked
	// and every unusable session evicted.
	other := sessionpooltest.GetN(t, p, 1)[0]
	other.Retire()
	for i := 0; ; i++ {
		sessionpooltest.GetN(t, p, 1)
		if ok, _ := rc.SIsMember(ctx, sessionpool.RedisKey(p, "held"), other.ID()).Result(); !ok {
			break
		}
		if i > 1000 {
			t.Fatal("the retired session was never evicted")
		}
	}
	if _, err := p.GetSessionByID(ctx, "acct-1"); err != nil {
		t.Errorf("the usable acct-1 was evicted: %v", err)
	}
}

// storeErrCheck checks an error of an unreachable server.
func storeErrCheck(t *testing.T, what string, err error, addr, password string) {
	t.Helper()
	switch {
	case !errors.Is(err, sessionpool.ErrStoreUnavailable):
		t.Errorf("%s: %v, want ErrStoreUnavailable", what, err)
	case !strings.Contains(err.Error(), addr):
		t.Errorf("%s: %v does not name the server %s", what, err, addr)
	case strings.Contains(err.Error(), password):
		t.Errorf("%s: %v shows the password", what, err)
	}
}

// TestRedisUnavailable: with the server down every call fails with
// ErrStoreUnavailable naming the server (never its password), the errors of
// calls that return none reach OnError, and the same pool works again
// once the server is back, with what it held.
func TestRedisUnavailable(t *testing.T) {
	ctx := context.Background()
	const password = "s3cr3t-Pa55"
	srv := sessionpooltest.Start(t, "--requirepass", password)
	rawURL := "redis://:" + password + "@" + srv.Addr + "/0"
	storeErrs := make(chan error, 100)
	opts := sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: rawURL, OnError: func(err error) { storeErrs <- err }}, PersistStateKey: "unavailable"}
	p := sessionpooltest.OpenPool(t, opts)
	// reported returns the error OnError got during the last call (it
	// is called synchronously).
	reported := func(what string) error {
		t.Helper()
		select {
		case err := <-storeErrs:
			return err
		default:
			t.Fatalf("%s: nothing reached OnError", what)
			return nil
		}
	}
	u, _ := url.Parse("https://example.com/")
	kept := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{ID: "kept", ProxyURL: "http://10.1.1.1:3128", UserData: map[string]any{"k": "v"}})
	if err := kept.Commit(ctx, sessionpooltest.SetCookieResponse(u, "c=1"), sessionpool.Good); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	_, err := p.GetSession(ctx)
	storeErrCheck(t, "GetSession", err, srv.Addr, password)
	_, err = p.GetSessionByID(ctx, "kept")
	storeErrCheck(t, "GetSessionByID", err, srv.Addr, password)
	_, err = p.AddSession(ctx, sessionpool.SessionOptions{})
	storeErrCheck(t, "AddSession", err, srv.Addr, password)
	kept.MarkGood()
	storeErrCheck(t, "MarkGood", reported("MarkGood"), srv.Addr, password)
	kept.SetCookies(u, []*http.Cookie{{Name: "offline", Value: "1"}})
	storeErrCheck(t, "SetCookies", reported("SetCookies"), srv.Addr, password)
	storeErrCheck(t, "Commit", kept.Commit(ctx, nil, sessionpool.Good), srv.Addr, password)
	storeErrCheck(t, "SetUserData", kept.SetUserData(map[string]any{"k": "w"}), srv.Addr, password)
	if n := p.UsableSessionsCount(); n != 0 {
		t.Errorf("count with the server down: %d", n)
	}
	storeErrCheck(t, "UsableSessionsCount", reported("UsableSessionsCount"), srv.Addr, password)
	// Open does not need the server: a proxy may start before it.
	q := sessionpooltest.OpenPool(t, opts)
	_, err = q.GetSessionByID(ctx, "kept")
	storeErrCheck(t, "GetSessionByID of a pool opened with the server down", err, srv.Addr, password)

	srv.Start(t)
	for _, pool := range []*sessionpool.Pool{p, q} {
		got, err := pool.GetSessionByID(ctx, "kept")
		if err != nil {
			t.Fatalf("after the server came back: %v", err)
		}
		if got.ProxyURL() != "http://10.1.1.1:3128" || got.UserData()["k"] != "v" || got.UsageCount() != 1 {
			t.Errorf("after the server came back: %+v", got.State())
		}
	}
	// The cookie set while the server was down reaches it with the next
	// change of the copy.
	kept.MarkGood()
	if got := sessionpooltest.MustGetByID(t, q, "kept"); got.CookieString(u) != "c=1; offline=1" || got.UsageCount() != 2 {
		t.Errorf("after reconnecting: cookies %q uses %d", got.CookieString(u), got.UsageCount())
	}
	if _, err := p.GetSession(ctx); err != nil {
		t.Fatal(err)
	}
	if len(storeErrs) != 0 {
		t.Errorf("store errors after the server came back: %v", <-storeErrs)
	}

	// What the server held survives its restart.
	s := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{UserData: map[string]any{"before": "restart"}})
	if err := s.Commit(ctx, sessionpooltest.SetCookieResponse(u, "r=1"), sessionpool.Bad); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	got, err := p.GetSessionByID(ctx, s.ID())
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if got.UserData()["before"] != "restart" || got.CookieString(u) != "r=1" || got.ErrorScore() != 1 || got.UsageCount() != 1 {
		t.Errorf("after a restart: %+v", got.State())
	}
	if n := sessionpooltest.HeldCount(q); n != 3 { // kept, the one GetSession created, s
		t.Errorf("after a restart the pool holds %d sessions, want 3", n)
	}
	// The scripts are loaded again (the restart emptied the script cache).
	got.Retire()
	if !got.Retired() || !sessionpooltest.StateOf(t, q, got.ID()).Retired {
		t.Errorf("Retire after a restart: retired %v", got.Retired())
	}
	// The other pool's event subscription comes back by itself. Events
	// published before it is back are lost (pub/sub keeps nothing) and
	// nothing signals its return, so fresh sessions are retired until one
	// event arrives.
	lq := logEvents(q)
	deadline := time.After(eventTimeout)
	for arrived := false; !arrived; {
		r := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{})
		r.Retire()
		select {
		case <-lq.ch:
			arrived = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no retirement event reached the other pool within %v of the restart", eventTimeout)
		}
	}
	if len(storeErrs) != 0 {
		t.Errorf("store errors after the restart: %v", <-storeErrs)
	}
}

// TestRedisTimeout: against a server that accepts connections and never
// answers, the calls that take no context give up after
// RedisOptions.Timeout, far sooner than go-redis's own 5 s read timeout.
func TestRedisTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	storeErrs := make(chan error, 100)
	// Open waits for the event subscription until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	p, err := sessionpool.Open(ctx, sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: "redis://" + l.Addr().String() + "/0", Timeout: 100 * time.Millisecond,
		OnError: func(err error) { storeErrs <- err }}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Teardown(context.Background()) })
	// The silent server, closed before Teardown (cleanups run last first):
	// go-redis would wait out its read timeout to resubscribe.
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c) // reads every command, answers none
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	start := time.Now()
	n := p.UsableSessionsCount()
	took := time.Since(start)
	if n != 0 || took > 2*time.Second {
		t.Errorf("UsableSessionsCount = %d after %v, want 0 within about 100ms", n, took)
	}
	select {
	case err := <-storeErrs:
		if !errors.Is(err, sessionpool.ErrStoreUnavailable) {
			t.Errorf("OnError got %v, want ErrStoreUnavailable", err)
		}
	default:
		t.Error("nothing reached OnError")
	}
}

// fakeRedis serves RESP2 on loopback until the end of the test: it
// answers every EVALSHA and EVAL with the raw reply evalReply, and every
// other command plausibly. It stands for a broken server, or a proxy in
// front of one.
func fakeRedis(t *testing.T, evalReply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					args, err := readRESPCommand(r)
					if err != nil {
						return
					}
					reply := "+OK\r\n"
					switch strings.ToUpper(args[0]) {
					case "HELLO":
						reply = "-ERR unknown command 'HELLO'\r\n"
					case "PING":
						reply = "+PONG\r\n"
					case "SUBSCRIBE":
						reply = fmt.Sprintf("*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n", len(args[1]), args[1])
					case "EVALSHA", "EVAL":
						reply = evalReply
					}
					if _, err := io.WriteString(c, reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "redis://" + l.Addr().String() + "/0"
}

// readRESPCommand reads one command: a RESP array of bulk strings.
func readRESPCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || n < 1 || !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not a command: %q", line)
	}
	args := make([]string, n)
	for i := range args {
		hdr, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		m, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(hdr, "$")))
		if err != nil || m < 0 {
			return nil, fmt.Errorf("not a bulk string: %q", hdr)
		}
		buf := make([]byte, m+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:m])
	}
	return args, nil
}

// TestRedisUnexpectedReply: a script reply that does not have the
// script's shape (too short, of other types, a new session where none was
// offered) is an error wrapping ErrStoreUnavailable, never a panic.
func TestRedisUnexpectedReply(t *testing.T) {
	ctx := context.Background()
	failCreate := func(context.Context, *sessionpool.Pool, sessionpool.SessionOptions) (*sessionpool.Session, error) {
		return nil, errors.New("no upstream")
	}
	for name, tc := range map[string]struct {
		reply  string
		create func(context.Context, *sessionpool.Pool, sessionpool.SessionOptions) (*sessionpool.Session, error)
		call   func(p *sessionpool.Pool, storeErrs chan error) error
	}{
		"GetSession/empty":             {reply: "*0\r\n"},
		"GetSession/hit alone":         {reply: "*1\r\n$3\r\nhit\r\n"},
		"GetSession/new without one":   {reply: "*1\r\n$3\r\nnew\r\n", create: failCreate},
		"GetSession/taken without one": {reply: "*1\r\n$5\r\ntaken\r\n", create: failCreate},
		"AddSession/empty": {reply: "*0\r\n", call: func(p *sessionpool.Pool, _ chan error) error {
			_, err := p.AddSession(ctx, sessionpool.SessionOptions{})
			return err
		}},
		"GetSessionByID/empty": {reply: "*0\r\n", call: func(p *sessionpool.Pool, _ chan error) error {
			_, err := p.GetSessionByID(ctx, "x")
			return err
		}},
		"GetSessionByID/record a number": {reply: "*2\r\n:1\r\n*0\r\n", call: func(p *sessionpool.Pool, _ chan error) error {
			_, err := p.GetSessionByID(ctx, "x")
			return err
		}},
		"UsableSessionsCount/short": {reply: "*1\r\n:1\r\n", call: func(p *sessionpool.Pool, storeErrs chan error) error {
			p.UsableSessionsCount()
			select {
			case err := <-storeErrs:
				return err
			default:
				return nil
			}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			storeErrs := make(chan error, 10)
			p, err := sessionpool.Open(ctx, sessionpool.Options{PersistStateKey: "fake", CreateSessionFunc: tc.create,
				Redis: &sessionpool.RedisOptions{URL: fakeRedis(t, tc.reply), OnError: func(err error) { storeErrs <- err }}})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Teardown(ctx)
			call := tc.call
			if call == nil {
				call = func(p *sessionpool.Pool, _ chan error) error {
					_, err := p.GetSession(ctx)
					return err
				}
			}
			err = call(p, storeErrs)
			if !errors.Is(err, sessionpool.ErrStoreUnavailable) || !strings.Contains(err.Error(), "unexpected reply") {
				t.Errorf("reply %q: %v, want ErrStoreUnavailable (unexpected reply)", tc.reply, err)
			}
		})
	}
}

// TestRedisBadData: a session the pool cannot read (something else wrote
// its keys) is an error wrapping ErrInvalidState that names it, never a
// panic, whichever call meets it.
func TestRedisBadData(t *testing.T) {
	ctx := context.Background()
	storeErrs := make(chan error, 100)
	p := redisPools(t, 1, sessionpool.Options{MaxPoolSize: 1, Redis: &sessionpool.RedisOptions{OnError: func(err error) { storeErrs <- err }}})[0]
	rc := redisClient(t, shared.Server(t).URL(0))
	s := sessionpooltest.GetN(t, p, 1)[0]
	good, err := rc.Get(ctx, sessionpool.RedisKey(p, "s:"+s.ID())).Result()
	if err != nil {
		t.Fatal(err)
	}
	// setRecord rewrites the session's record: the named field of its
	// first line, or its user data (d, the third line).
	setRecord := func(field, value string) {
		t.Helper()
		lines := strings.SplitN(good, "\n", 3)
		if field == "d" {
			lines[2] = value
		} else {
			f := strings.Fields(lines[0])
			f[slices.Index(sessionpool.RedisRecordFields, field)] = value
			lines[0] = strings.Join(f, " ")
		}
		if err := rc.Set(ctx, sessionpool.RedisKey(p, "s:"+s.ID()), strings.Join(lines, "\n"), redis.KeepTTL).Err(); err != nil {
			t.Fatal(err)
		}
	}
	setRecord("u", "garbage")
	badState := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, sessionpool.ErrInvalidState) || !strings.Contains(err.Error(), s.ID()) || !strings.Contains(err.Error(), `"u"`) {
			t.Errorf("%s: %v, want ErrInvalidState naming the session and the field", what, err)
		}
	}
	_, err = p.GetSessionByID(ctx, s.ID())
	badState("GetSessionByID", err)
	_, err = p.GetSession(ctx) // the pool is full: the pick is that session
	badState("GetSession", err)
	_, err = p.AddSession(ctx, sessionpool.SessionOptions{ID: s.ID()})
	badState("AddSession with its ID", err)
	badState("Commit", s.Commit(ctx, nil, sessionpool.Good))
	s.MarkBad()
	select {
	case err := <-storeErrs:
		badState("MarkBad", err)
	default:
		t.Error("MarkBad: nothing reached OnError")
	}
	if ss := p.Sessions(); len(ss) != 0 {
		t.Errorf("Sessions returned %d sessions", len(ss))
	}
	select {
	case err := <-storeErrs:
		badState("Sessions", err)
	default:
		t.Error("Sessions: nothing reached OnError")
	}

	// User data that is not a JSON object.
	setRecord("d", "[1,2")
	if _, err := p.GetSessionByID(ctx, s.ID()); !errors.Is(err, sessionpool.ErrInvalidState) || !strings.Contains(err.Error(), `"d"`) {
		t.Errorf("bad user data: %v", err)
	}
	// A score that is not a finite number, and a record of another shape.
	setRecord("e", "inf")
	if _, err := p.GetSessionByID(ctx, s.ID()); !errors.Is(err, sessionpool.ErrInvalidState) || !strings.Contains(err.Error(), `"e"`) {
		t.Errorf("infinite error score: %v", err)
	}
	if err := s.Commit(ctx, nil, sessionpool.Good); !errors.Is(err, sessionpool.ErrInvalidState) || !strings.Contains(err.Error(), `"e"`) {
		t.Errorf("Commit on an infinite error score: %v", err)
	}
	if err := rc.Set(ctx, sessionpool.RedisKey(p, "s:"+s.ID()), "not a record", redis.KeepTTL).Err(); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"GetSessionByID": func() error { _, err := p.GetSessionByID(ctx, s.ID()); return err }(),
		"Commit":         s.Commit(ctx, nil, sessionpool.Bad),
	} {
		if !errors.Is(err, sessionpool.ErrInvalidState) || !strings.Contains(err.Error(), "not a record") {
			t.Errorf("%s on a record of another shape: %v", what, err)
		}
	}
	// A garbage retirement event reaches OnError.
	if err := rc.Publish(ctx, sessionpool.RedisEventChannel(p), "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-storeErrs:
		if !strings.Contains(err.Error(), "retirement event") {
			t.Errorf("garbage event: %v", err)
		}
	case <-time.After(eventTimeout):
		t.Error("a garbage event reached nothing")
	}
}

// TestRedisOlderHashRecord: a session key of another type (the hash an
// earlier version of this backend kept a session in) is bad data, as in
// TestRedisBadData: an error wrapping ErrInvalidState that names the
// session, not ErrStoreUnavailable (an outage), whichever call meets it.
func TestRedisOlderHashRecord(t *testing.T) {
	ctx := context.Background()
	storeErrs := make(chan error, 100)
	p := redisPools(t, 1, sessionpool.Options{MaxPoolSize: 1, Redis: &sessionpool.RedisOptions{OnError: func(err error) { storeErrs <- err }}})[0]
	rc := redisClient(t, shared.Server(t).URL(0))
	s := sessionpooltest.GetN(t, p, 1)[0]
	key := sessionpool.RedisKey(p, "s:"+s.ID())
	if err := rc.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.HSet(ctx, key, "v", "1", "u", "0", "e", "0", "r", "0", "mu", "50", "me", "3", "ed", "0.5").Err(); err != nil {
		t.Fatal(err)
	}
	badState := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, sessionpool.ErrInvalidState) || !strings.Contains(err.Error(), s.ID()) {
			t.Errorf("%s: %v, want ErrInvalidState naming the session", what, err)
		}
	}
	_, err := p.GetSessionByID(ctx, s.ID())
	badState("GetSessionByID", err)
	_, err = p.GetSession(ctx) // the pool is full: the pick is that session
	badState("GetSession", err)
	_, err = p.AddSession(ctx, sessionpool.SessionOptions{ID: s.ID()})
	badState("AddSession with its ID", err)
	badState("Commit", s.Commit(ctx, nil, sessionpool.Good))
	badState("SetUserData", s.SetUserData(map[string]any{"k": 1}))
	if ss := p.Sessions(); len(ss) != 0 {
		t.Errorf("Sessions returned %d sessions", len(ss))
	}
	select {
	case err := <-storeErrs:
		badState("Sessions", err)
	default:
		t.Error("Sessions: nothing reached OnError")
	}
}

// TestRedisOptions: the Redis options are validated with the others.
func TestRedisOptions(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		opts sessionpool.Options
		want []string
	}{
		{"bad scheme", sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: "http://user:hunter2@127.0.0.1:6379/0"}}, []string{"Redis.URL", "127.0.0.1:6379"}},
		{"no host", sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: "redis:///0"}}, []string{"Redis.URL"}},
		{"not a URL", sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: "redis://[::1"}}, []string{"Redis.URL"}},
		{"bad database", sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: "redis://:hunter2@127.0.0.1:6379/db"}}, []string{"Redis.URL"}},
		{"no URL nor client", sessionpool.Options{Redis: &sessionpool.RedisOptions{}}, []string{"Redis.URL"}},
		{"negative timeout", sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: "redis://127.0.0.1:6379/0", Timeout: -time.Second}}, []string{"Redis.Timeout"}},
		{"store with URL", sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: "redis://127.0.0.1:6379/0"}, Store: sessionpool.NewMemoryStore()}, []string{"Store"}},
		{"store with client", sessionpool.Options{Redis: &sessionpool.RedisOptions{Client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})}, Store: sessionpool.NewMemoryStore()}, []string{"Store"}},
		{"everything wrong", sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: "ftp://h"}, Store: sessionpool.NewMemoryStore(), MaxPoolSize: -1}, []string{"Redis.URL", "Store", "MaxPoolSize"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := sessionpool.Open(ctx, tc.opts)
			if err == nil {
				p.Teardown(ctx)
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, sessionpool.ErrInvalidOptions) {
				t.Errorf("Open: %v, want ErrInvalidOptions", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%v shows the password", err)
			}
		})
	}
}

// TestRedisClientOption: a pool on a caller's client uses the same keys as
// one on a URL, names the server in its errors and leaves the client open.
func TestRedisClientOption(t *testing.T) {
	ctx := context.Background()
	srv := shared.Server(t)
	c := redisClient(t, srv.URL(0))
	opts := redisBackend().Options(t, sessionpool.Options{})
	byURL := sessionpooltest.OpenPool(t, opts)
	r := *opts.Redis
	r.URL, r.Client = "", c
	opts.Redis = &r
	byClient, err := sessionpool.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := sessionpooltest.AddSession(t, byURL, sessionpool.SessionOptions{})
	if _, err := byClient.GetSessionByID(ctx, s.ID()); err != nil {
		t.Errorf("the client's pool does not see the URL's: %v", err)
	}
	if !strings.Contains(sessionpool.RedisStoreName(byClient), srv.Addr) {
		t.Errorf("store name %q", sessionpool.RedisStoreName(byClient))
	}
	if err := byClient.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Errorf("Teardown closed the caller's client: %v", err)
	}
}

// TestRedisDefaultKey: without PersistStateKey the keys hang under the
// default key (on a database of its own, so no other test meets them).
func TestRedisDefaultKey(t *testing.T) {
	ctx := context.Background()
	srv := shared.Server(t)
	rc := redisClient(t, srv.URL(3))
	t.Cleanup(func() { rc.FlushDB(context.Background()) })
	p := sessionpooltest.OpenPool(t, sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: srv.URL(3), OnError: func(err error) { t.Errorf("store error: %v", err) }}})
	s := sessionpooltest.AddSession(t, p, sessionpool.SessionOptions{})
	if n, err := rc.Exists(ctx, "sp:{SDK_SESSION_POOL_STATE}:s:"+s.ID()).Result(); err != nil || n != 1 {
		t.Errorf("default key: EXISTS = %d, %v", n, err)
	}
	if ok, _ := rc.SIsMember(ctx, "sp:{SDK_SESSION_POOL_STATE}:held", s.ID()).Result(); !ok {
		t.Errorf("default key: not in the held set")
	}
	// PersistState has nothing to do.
	if err := p.PersistState(ctx); err != nil {
		t.Errorf("PersistState: %v", err)
	}
}

// TestRedisRestartUnderLoad: after a restart the server has forgotten the
// scripts; concurrent callers (whose scripts go through the autopipeliner)
// load them again without an error reaching anyone.
func TestRedisRestartUnderLoad(t *testing.T) {
	srv := sessionpooltest.Start(t)
	storeErrs := make(chan error, 1000)
	p := sessionpooltest.OpenPool(t, sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: srv.URL(0), OnError: func(err error) { storeErrs <- err }}, MaxPoolSize: 20})
	ctx := context.Background()
	u, _ := url.Parse("https://example.com/")
	load := func() {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for range 25 {
					s, err := p.GetSession(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					if err := s.Commit(ctx, sessionpooltest.SetCookieResponse(u, "n=1"), sessionpool.Good); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	load()
	srv.Restart(t)
	load()
	if len(storeErrs) != 0 {
		t.Errorf("store errors: %v", <-storeErrs)
	}
	if n := sessionpooltest.HeldCount(p); n == 0 || n > 20 {
		t.Errorf("after the load the pool holds %d sessions, want 1..20", n)
	}
}

// TestRedisPauseKeepsUserData: Pause through one instance's copy stores
// only the pause: user data another instance set since stay on the server.
func TestRedisPauseKeepsUserData(t *testing.T) {
	ctx := t.Context()
	ps := redisPools(t, 2, sessionpool.Options{})
	a := sessionpooltest.AddSession(t, ps[0], sessionpool.SessionOptions{UserData: map[string]any{"k": "old"}})
	b := sessionpooltest.MustGetByID(t, ps[1], a.ID())
	if err := b.SetUserData(map[string]any{"k": "new"}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	if err := a.Pause(until); err != nil {
		t.Fatal(err)
	}
	got, err := ps[1].GetSessionByID(ctx, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !got.PausedUntil().Equal(until) {
		t.Errorf("paused until %v, want %v", got.PausedUntil(), until)
	}
	if k := got.UserData()["k"]; k != "new" {
		t.Errorf("after a Pause through a copy that held older user data: k = %v, want new", k)
	}
}

// TestRedisPauseOnlyExtended: on a Redis pool a pause is only ever extended,
// whatever another instance's copy of the session knew: a shorter pause, or
// user data set through a copy that never saw the pause, leaves it.
func TestRedisPauseOnlyExtended(t *testing.T) {
	for _, later := range []string{"a shorter pause", "user data"} {
		t.Run(later, func(t *testing.T) {
			ps := redisPools(t, 2, sessionpool.Options{})
			ctx := t.Context()
			a, err := ps[0].AddSession(ctx, sessionpool.SessionOptions{ID: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			b, err := ps[1].GetSessionByID(ctx, "alice") // taken before the pause
			if err != nil {
				t.Fatal(err)
			}
			long := time.Now().Add(time.Hour).Truncate(time.Microsecond)
			if err := a.Pause(long); err != nil {
				t.Fatal(err)
			}
			if later == "user data" {
				err = b.SetUserData(map[string]any{"k": 1})
			} else {
				err = b.Pause(time.Now().Add(time.Second))
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := ps[0].GetSessionByID(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !got.PausedUntil().Equal(long) {
				t.Errorf("after %s through another copy: paused until %v, want %v", later, got.PausedUntil(), long)
			}
			if later == "user data" && got.UserData()["k"] != 1.0 {
				t.Errorf("the user data set through the other copy: %v", got.UserData())
			}
		})
	}
}
