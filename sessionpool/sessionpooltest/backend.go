package sessionpooltest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// Backend is one way of keeping a pool's sessions, as the contract suite
// (RunContract) sees it. The zero value is not useful: use MemoryBackend or
// RedisBackend.
type Backend struct {
	// Name names the backend's subtests ("memory", "redis").
	Name string
	// Remote is true when the sessions are kept outside this process
	// (Redis): every GetSession and GetSessionByID returns a new copy, so
	// the suite compares sessions by ID; the pool refuses a Store, and what
	// it held stays out of reach after Teardown.
	Remote bool
	// Configure returns opts set up for the backend (a server to use, a
	// PersistStateKey of the test's own...). nil: opts are used as they are.
	Configure func(tb testing.TB, opts sessionpool.Options) sessionpool.Options
	// Inspect, when set, makes the checks of the pool's internals that its
	// public API cannot. nil: those checks are skipped.
	Inspect Inspector
}

// Inspector makes the checks of a pool's internals that its public API
// cannot. sessionpool's own tests provide one (through their
// export_test.go); other users of the suite leave Backend.Inspect nil.
type Inspector interface {
	// Defaults returns what Open filled in for zero Options: MaxPoolSize,
	// Strategy, BlockedStatusCodes and PersistStateKey, and whether the pool
	// runs a goroutine that persists it.
	Defaults(p *sessionpool.Pool) (maxSize int, strategy sessionpool.Strategy, blocked []int, key string, persisting bool)
	// UserDataAllocated reports whether s holds an encoding of user data
	// (a session holds none until some is set).
	UserDataAllocated(s *sessionpool.Session) bool
	// CheckTable fails tb when the table of p, a pool whose sessions are
	// kept in memory, disagrees with its sessions' state or still holds a
	// slot reserved for a creation.
	CheckTable(tb testing.TB, p *sessionpool.Pool)
}

// MemoryBackend returns the backend that keeps the sessions in the pool's
// process (Options.Redis nil).
func MemoryBackend() Backend { return Backend{Name: "memory"} }

// RedisBackend returns the backend that keeps the sessions on the
// redis-server that server returns (database 0), each pool under a
// PersistStateKey of its own (UniqueKey) unless the test sets one. Unless
// the test's options set one, RedisOptions.OnError fails the test, so that
// a count that read nothing cannot pass for an empty pool.
func RedisBackend(server func(testing.TB) *Server) Backend {
	return Backend{
		Name:   "redis",
		Remote: true,
		Configure: func(tb testing.TB, opts sessionpool.Options) sessionpool.Options {
			tb.Helper()
			var r sessionpool.RedisOptions
			if opts.Redis != nil {
				r = *opts.Redis
			}
			r.URL = server(tb).URL(0)
			if opts.PersistStateKey == "" {
				opts.PersistStateKey = UniqueKey(tb)
			}
			if r.OnError == nil {
				r.OnError = func(err error) { tb.Errorf("store error: %v", err) }
			}
			opts.Redis = &r
			return opts
		},
	}
}

// Options returns opts set up for the backend (see Configure).
func (b Backend) Options(tb testing.TB, opts sessionpool.Options) sessionpool.Options {
	tb.Helper()
	if b.Configure == nil {
		return opts
	}
	return b.Configure(tb, opts)
}

// Open opens a pool on the backend and tears it down when the test ends.
func (b Backend) Open(tb testing.TB, opts sessionpool.Options) *sessionpool.Pool {
	tb.Helper()
	return OpenPool(tb, b.Options(tb, opts))
}

// UniqueKey returns a PersistStateKey that no other pool uses: the test's
// name (with the braces of a Redis hash tag replaced) and a random suffix.
func UniqueKey(tb testing.TB) string {
	name := strings.NewReplacer("{", "(", "}", ")", " ", "_").Replace(tb.Name())
	return fmt.Sprintf("%s#%016x", name, rand.Uint64())
}
