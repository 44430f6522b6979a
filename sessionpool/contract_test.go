package sessionpool_test

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/sessionproxy/sessionproxy/sessionpool"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// The contract tests (sessionpooltest.RunContract) run against both
// backends: "memory" keeps the sessions in the pool's table; "redis" keeps
// them on one redis-server shared by the package's tests (started on first
// use, stopped by TestMain), each pool under its own PersistStateKey so
// tests never see each other's sessions. Both get the package's Internals
// for the checks the public API cannot make.

// shared is the redis-server of the package's tests.
var shared sessionpooltest.Shared

// memoryBackend and redisBackend are the backends of the package's tests.
func memoryBackend() sessionpooltest.Backend {
	b := sessionpooltest.MemoryBackend()
	b.Inspect = sessionpool.Internals{}
	return b
}

func redisBackend() sessionpooltest.Backend {
	b := sessionpooltest.RedisBackend(shared.Server)
	b.Inspect = sessionpool.Internals{}
	return b
}

func TestPoolContract(t *testing.T) {
	for _, b := range []sessionpooltest.Backend{memoryBackend(), redisBackend()} {
		t.Run(b.Name, func(t *testing.T) { sessionpooltest.RunContract(t, b) })
	}
}

// quietLogger drops go-redis's log lines: the tests that stop the server
// would print one per failed dial. What matters reaches the tests as errors.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}
