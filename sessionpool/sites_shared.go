package sessionpool

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// What processes sharing a Redis pool also share per site, beyond the
// sessions: a cap on the requests in flight (TrySlot) and the spacing of one
// session's requests (TryTurn). Keys, hash-tagged with the site's pool:
//
//	sp:{KEY@site}:slots    ZSET  lease -> its expiry (ms, server time)
//	sp:{KEY@site}:turn:ID  STRING the server time (ms) the next turn of
//	                       session ID starts; expires then
//
// Times are the server's (TIME), so the processes' clocks do not matter.

// slotScript takes a slot when fewer than ARGV[1] unexpired leases are
// held: ARGV[2] is the lease, ARGV[3] its life in ms. It returns 1 when it
// took one, else 0.
var slotScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
`)

// turnScript takes the turn of a session when its next turn has come, and
// puts the next one ARGV[1] ms later; it returns 0 then, else the ms left.
var turnScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local next = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if now < next then return next - now end
redis.call('SET', KEYS[1], now + tonumber(ARGV[1]), 'PX', tonumber(ARGV[1]))
return 0
`)

// Shared reports whether the sites are on a Redis server that other
// processes may share (TrySlot, TryTurn and TryHold then coordinate them).
func (ss *Sites) Shared() bool { return ss.opts.Redis != nil }

// TrySlot takes one of the limit slots of site shared by every process on
// the Redis server, without waiting: ok is false when all are taken. A slot
// is a lease that lasts until release is called (idempotent) or life has
// passed, so that the slots of a process that died come back. Without
// Redis it always grants, and release does nothing: each process caps on
// its own. Errors wrap ErrStoreUnavailable.
func (ss *Sites) TrySlot(ctx context.Context, site string, limit int, life time.Duration) (release func(), ok bool, err error) {
	if ss.opts.Redis == nil {
		return func() {}, true, nil
	}
	return ss.trySlot(ctx, "sp:{"+ss.siteKey(site)+"}:slots", site, limit, life)
}

// TryHold takes session id of site for one request across every process on
// the Redis server, without waiting: ok is false when a process holds it.
// The hold lasts until release is called (idempotent) or life has passed.
// Without Redis it always grants. Errors wrap ErrStoreUnavailable.
func (ss *Sites) TryHold(ctx context.Context, site, id string, life time.Duration) (release func(), ok bool, err error) {
	if ss.opts.Redis == nil {
		return func() {}, true, nil
	}
	return ss.trySlot(ctx, "sp:{"+ss.siteKey(site)+"}:busy:"+id, site, 1, life)
}

// trySlot takes one of limit leases of key, for site.
func (ss *Sites) trySlot(ctx context.Context, key, site string, limit int, life time.Duration) (release func(), ok bool, err error) {
	r := ss.opts.Redis
	lease := newID()
	got, err := slotScript.Run(ctx, r.Client, []string{key}, limit, lease, life.Milliseconds()).Int()
	if err != nil {
		return nil, false, fmt.Errorf("take a slot of %q: %w", site, ss.storeErr(err))
	}
	if got == 0 {
		return nil, false, nil
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(r.Timeout, DefaultRedisTimeout))
			defer cancel()
			if err := r.Client.ZRem(ctx, key, lease).Err(); err != nil && r.OnError != nil {
				r.OnError(fmt.Errorf("sessionpool: free a slot of %q: %w", site, ss.storeErr(err)))
			}
		})
	}, true, nil
}

// TryTurn takes the turn of session id at site when the last turn it took,
// in any process on the Redis server, is at least delay ago: wait is 0
// then, and the next turn is delay from now; else wait is how long until
// it comes. Without Redis it always grants. Errors wrap
// ErrStoreUnavailable.
func (ss *Sites) TryTurn(ctx context.Context, site, id string, delay time.Duration) (wait time.Duration, err error) {
	r := ss.opts.Redis
	if r == nil || delay <= 0 {
		return 0, nil
	}
	key := "sp:{" + ss.siteKey(site) + "}:turn:" + id
	ms, err := turnScript.Run(ctx, r.Client, []string{key}, max(delay.Milliseconds(), 1)).Int64()
	if err != nil {
		return 0, fmt.Errorf("take a turn of %q on %q: %w", id, site, ss.storeErr(err))
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// sharedEvents is the one subscription of a Sites on Redis to the
// retirement events of all its sites' pools (a pattern subscription),
// handing each event to its pool: a process does not hold a connection per
// site. Safe for concurrent use.
type sharedEvents struct {
	ps    *redis.PubSub
	done  chan struct{} // closed when the loop returns
	pools sync.Map      // channel -> *redisBackend
}

// subscribeEvents subscribes to the events of every site under key.
func subscribeEvents(ctx context.Context, c redis.UniversalClient, key string) *sharedEvents {
	e := &sharedEvents{done: make(chan struct{})}
	e.ps = c.PSubscribe(ctx, "sp:{"+globEscape(key)+"@*}:events", "sp:{"+globEscape(key)+"}:events")
	awaitSubscription(ctx, e.ps)
	ch := e.ps.Channel()
	go func() {
		defer close(e.done)
		for msg := range ch {
			if b, ok := e.pools.Load(msg.Channel); ok {
				b.(*redisBackend).event(msg.Payload)
			}
		}
	}()
	return e
}

func (e *sharedEvents) add(channel string, b *redisBackend) { e.pools.Store(channel, b) }
func (e *sharedEvents) remove(channel string)               { e.pools.Delete(channel) }

// close ends the subscription and waits for its loop.
func (e *sharedEvents) close() error {
	err := e.ps.Close()
	<-e.done
	return err
}

// globEscape escapes the characters special to Redis glob patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
