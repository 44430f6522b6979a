package sessionpool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBackend keeps a pool's sessions on a Redis server, shared by every
// process that opens a pool on the same server with the same
// PersistStateKey. See redis_scripts.go for the keys and the scripts.
//
// The server holds the truth; a *Session of such a pool is this process's
// copy of one session as the last script that touched it returned it:
// reads (counters, predicates, cookies) are local, every mutation is a
// script run that updates the copy with the server's answer. So a process
// that dies loses nothing the server acknowledged.
type redisBackend struct {
	p  *Pool
	c  redis.UniversalClient
	sc redis.Scripter // runs the scripts on the request path: c's autopipeliner when it has one
	// inflight counts the scripts of the request path running now (see eval).
	inflight atomic.Int32
	own      bool   // the pool made c and closes it
	name     string // the store in messages: its URL without the password
	pfx      string // "sp:{KEY}:"
	keys     []string
	channel  string // retirement events
	origin   string // this pool's tag in the events it publishes
	onErr    func(error)
	timeout  time.Duration // bounds the calls that take no context (RedisOptions.Timeout)

	ps     *redis.PubSub
	events *sharedEvents // Sites' subscription, when the pool has no ps of its own
	done   chan struct{} // closed when the event loop returns (at once with events)

	mu    sync.Mutex
	spare []*Session // candidates built and not yet needed
	last  string     // UseUntilFailure: the ID this process returned last
}

func openRedis(ctx context.Context, p *Pool, opts *RedisOptions) (*redisBackend, error) {
	b := &redisBackend{
		p:       p,
		c:       opts.Client,
		origin:  newID(),
		onErr:   opts.OnError,
		timeout: cmp.Or(opts.Timeout, DefaultRedisTimeout),
		done:    make(chan struct{}),
	}
	if b.c == nil {
		ro, err := redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("%w: Redis.URL: %v", ErrInvalidOptions, redactErr(err, opts.URL))
		}
		setFailFast(ro, opts.URL)
		b.c = redis.NewClient(ro)
		b.own = true
		b.name = redactURL(opts.URL)
	} else if b.name = opts.name; b.name == "" {
		b.name = "redis " + strings.Join(redisAddrs(b.c), ",")
	}
	b.sc = b.c
	if ap := autoPipeliner(b.c); ap != nil {
		b.sc = ap
	}
	b.pfx = "sp:{" + p.key + "}:"
	b.keys = []string{b.pfx + "held", b.pfx + "exp", b.pfx + "retired", b.pfx + "ring"}
	b.channel = b.pfx + "events"
	if b.events = opts.events; b.events != nil {
		b.events.add(b.channel, b) // Sites: one subscription for all its pools
		close(b.done)
		return b, nil
	}
	b.ps = b.c.Subscribe(ctx, b.channel)
	awaitSubscription(ctx, b.ps)
	b.run()
	return b, nil
}

// The states of a Redis pool's session (sessionCold.rstate).
const (
	rfree    int32 = iota // built by NewSession, not given to the pool
	rclaimed              // taken by the pool as a candidate, not yet on the server
	rheld                 // on the server
)

// onServer reports whether s is on the server: its mutators then run there. A
// session built for the pool and not yet added (in CreateSessionFunc, say)
// is changed locally, like any other.
func onServer(s *Session) bool { return s.rstate.Load() == rheld }

// subscribeWait bounds how long Open waits for the server to confirm the
// subscription to the events.
const subscribeWait = 5 * time.Second

// awaitSubscription waits until the server has confirmed the subscription
// to the retirement events, so that a retirement another process publishes
// after Open has returned reaches this pool (SUBSCRIBE is only sent by
// Subscribe: a PUBLISH from another connection may be run first). When the
// server cannot be reached it gives up without an error: Open does not need
// the server, and the event loop subscribes once it is back.
func awaitSubscription(ctx context.Context, ps *redis.PubSub) {
	ctx, cancel := context.WithTimeout(ctx, subscribeWait)
	defer cancel()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return
		}
		if _, ok := msg.(*redis.Subscription); ok {
			return
		}
	}
}

// setFailFast sets go-redis's retries, unless the URL sets them. By default
// a command is sent again after a network error, up to 3 times, each dial
// tried up to 5 times 100 ms apart: a caller would wait seconds to learn
// that the store is down, and a mark whose reply was lost could be counted
// twice (the server may have run it). Here nothing is sent twice (a
// restarted server's dead connections are found by go-redis's health check
// before use, not by a failed command) and a dial is tried once, within 2 s.
// The deadline of a call's context bounds its reads and writes too
// (ContextTimeoutEnabled), so that RedisOptions.Timeout and the deadlines
// of callers' contexts hold on the connection as well.
func setFailFast(ro *redis.Options, rawURL string) {
	q := url.Values{}
	if u, err := url.Parse(rawURL); err == nil {
		q = u.Query()
	}
	if !q.Has("max_retries") {
		ro.MaxRetries = -1
	}
	if !q.Has("dial_timeout") {
		ro.DialTimeout = 2 * time.Second
	}
	ro.DialerRetries = 1
	ro.ContextTimeoutEnabled = true
}

// eval runs a script of the request path. Alone it goes straight to a
// connection of its own; while other scripts are in flight it joins them in
// the autopipeliner's next batch. A lone caller so waits one round trip, not
// the autopipeliner's hand-offs too (64 against 121 µs a script here), and
// concurrent callers share round trips.
func (b *redisBackend) eval(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	sc := b.sc
	if b.inflight.Add(1) == 1 {
		sc = b.c
	}
	defer b.inflight.Add(-1)
	return script.Run(ctx, sc, keys, args...)
}

// autoPipeliner returns c's autopipeliner, nil when it has none. It sends
// the scripts that concurrent callers run at the same moment in one write
// and reads their replies in one go, so that under load a round trip carries
// many requests' scripts: in a test with 32 callers it ran 1.5 times as many
// scripts a second as one connection per call, with less CPU on both sides.
// Each caller still waits for its own reply, so a call is acknowledged only
// when the server has run it.
func autoPipeliner(c redis.UniversalClient) redis.Scripter {
	var (
		ap  *redis.AutoPipeliner
		err error
	)
	switch c := c.(type) {
	case *redis.Client:
		ap, err = c.AutoPipeline()
	case *redis.ClusterClient:
		ap, err = c.AutoPipeline()
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	return ap
}

// redisAddrs lists the server addresses of a client, for messages.
func redisAddrs(c redis.UniversalClient) []string {
	switch c := c.(type) {
	case *redis.Client:
		return []string{c.Options().Addr}
	case *redis.ClusterClient:
		return c.Options().Addrs
	}
	return []string{"?"}
}

// redactURL returns u with its password replaced by "xxxxx".
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "redis (unparsable URL)"
	}
	return pu.Redacted()
}

// redactErr returns err's text with the URL's password removed.
func redactErr(err error, u string) string {
	msg := err.Error()
	if pu, perr := url.Parse(u); perr == nil && pu.User != nil {
		if pw, ok := pu.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

// storeErr wraps an error of the server as ErrStoreUnavailable, naming it.
func (b *redisBackend) storeErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", b.name, err) // the caller gave up: the store may be fine
	}
	return fmt.Errorf("%w: %s: %w", ErrStoreUnavailable, b.name, err)
}

// detached returns the context of a call that takes none (MarkGood,
// UsableSessionsCount...): it ends after the pool's Redis timeout.
func (b *redisBackend) detached() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.timeout)
}

// report passes an error of a call that cannot return one to
// RedisOptions.OnError.
func (b *redisBackend) report(err error) {
	if err != nil && b.onErr != nil {
		b.onErr(err)
	}
}

// run starts the event loop: retirements published by other processes fire
// this pool's OnSessionRetired subscribers. go-redis resubscribes by itself
// after a reconnection; events published while disconnected are lost (Redis
// pub/sub keeps nothing).
func (b *redisBackend) run() {
	ch := b.ps.Channel()
	go func() {
		defer close(b.done)
		for msg := range ch {
			b.event(msg.Payload)
		}
	}()
}

// event fires the subscribers for a retirement another process published.
func (b *redisBackend) event(payload string) {
	st, origin, err := b.decodeEvent(payload)
	if err != nil {
		b.report(fmt.Errorf("sessionpool: retirement event: %w", err))
		return
	}
	if origin == b.origin {
		return // fired when this process retired it
	}
	b.p.fireState(st)
}

// close stops the event loop (or leaves the shared one) and, when the pool
// made it, the client.
func (b *redisBackend) close() error {
	var err error
	if b.events != nil {
		b.events.remove(b.channel)
	} else {
		err = b.ps.Close()
	}
	<-b.done
	if b.own {
		err = errors.Join(err, b.c.Close())
	}
	return err
}

// micros converts unix nanoseconds to the microseconds the server keeps.
func micros(ns int64) int64 { return ns / 1000 }

func (b *redisBackend) uniqueID() string { return newID() }

// prepare makes the session's jar record its changes, which the commit
// script sends cookie by cookie.
func (b *redisBackend) prepare(s *Session) { s.jar.track = true }

// retired has nothing to do: a session on the server retires there (the
// commit script), and one not on it yet is in no list.
func (b *redisBackend) retired(*Session) {}
