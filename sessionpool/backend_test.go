package sessionpool

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// The contract tests run against both backends from one body:
//
//	forBackends(t, func(t *testing.T, b testBackend) { p := b.open(t, Options{...}) ... })
//
// "memory" keeps the sessions in the pool's table; "redis" keeps them on one
// redis-server shared by the package's tests (started on first use, stopped
// by TestMain), each pool under its own PersistStateKey so tests never see
// each other's sessions. With Redis every GetSession returns a new copy of a
// session: bodies compare sessions by ID, and count what a pool holds with
// the public counts (heldCount).

// backend is one way of keeping a pool's sessions.
type testBackend struct {
	name  string
	redis bool
}

var backends = []testBackend{{name: "memory"}, {name: "redis", redis: true}}

// forBackends runs fn once per backend, each as a subtest named after it.
func forBackends(t *testing.T, fn func(t *testing.T, b testBackend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// options returns opts set up for the backend: for Redis, the shared
// server's URL and a PersistStateKey of its own; unless opts.Redis has one,
// an OnError that fails the test (so that a count that read nothing cannot
// pass for an empty pool).
func (b testBackend) options(t testing.TB, opts Options) Options {
	t.Helper()
	if !b.redis {
		return opts
	}
	var r RedisOptions
	if opts.Redis != nil {
		r = *opts.Redis
	}
	r.URL = sharedRedis(t).URL(0)
	if opts.PersistStateKey == "" {
		opts.PersistStateKey = uniqueKey(t)
	}
	if r.OnError == nil {
		r.OnError = func(err error) { t.Errorf("store error: %v", err) }
	}
	opts.Redis = &r
	return opts
}

// open opens a pool on the backend and tears it down when the test ends.
func (b testBackend) open(t testing.TB, opts Options) *Pool {
	t.Helper()
	return openPool(t, b.options(t, opts))
}

// heldCount is the number of sessions p holds, usable or not, through the
// public counts (two calls: only for tests that do not change the pool
// meanwhile).
func heldCount(p *Pool) int { return p.UsableSessionsCount() + p.RetiredSessionsCount() }

var keySeq atomic.Int64

// uniqueKey returns a PersistStateKey no other pool of this test binary
// uses.
func uniqueKey(t testing.TB) string {
	name := strings.NewReplacer("{", "(", "}", ")", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s#%d", name, keySeq.Add(1))
}

// The redis-server shared by the package's tests.
var (
	sharedOnce     sync.Once
	sharedSrv      *sessionpooltest.Server
	sharedMu       sync.Mutex
	sharedCleanups []func()
)

// sharedRedis returns the package's redis-server, starting it on first use.
func sharedRedis(t testing.TB) *sessionpooltest.Server {
	t.Helper()
	sharedOnce.Do(func() { sharedSrv = sessionpooltest.Start(packageTB{t}) })
	if sharedSrv == nil {
		t.Fatal("the shared redis-server failed to start (see the first test that used it)")
	}
	return sharedSrv
}

// packageTB lends sessionpooltest.Start the calling test for its failures but
// keeps the server's temporary directory and its cleanup (stopping it) for
// TestMain: the server outlives the test that started it.
type packageTB struct{ testing.TB }

func (tb packageTB) TempDir() string {
	dir, err := os.MkdirTemp("", "sessionpool-redis-")
	if err != nil {
		tb.TB.Fatalf("shared redis-server: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (packageTB) Cleanup(f func()) {
	sharedMu.Lock()
	sharedCleanups = append(sharedCleanups, f)
	sharedMu.Unlock()
}

// stopSharedRedis stops the shared server (if started) and removes its
// directory, last registered first.
func stopSharedRedis() {
	sharedMu.Lock()
	fs := sharedCleanups
	sharedCleanups = nil
	sharedMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// quietLogger drops go-redis's log lines: the tests that stop the server
// would print one per failed dial. What matters reaches the tests as errors.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	code := m.Run()
	stopSharedRedis()
	os.Exit(code)
}
