package sessionpooltest

import (
	"os"
	"sync"
	"testing"
)

// Shared is one redis-server for a whole test binary: started by the first
// test that asks for it, kept running across tests (each pool under a key
// of its own, see RedisBackend), and stopped by Stop, which TestMain calls
// after m.Run. The zero value is ready to use; it is safe for concurrent
// use.
type Shared struct {
	once     sync.Once
	srv      *Server
	mu       sync.Mutex
	cleanups []func()
}

// Server returns the shared server, starting it on first use. A test that
// asks after the start failed fails too.
func (s *Shared) Server(tb testing.TB) *Server {
	tb.Helper()
	skipShort(tb) // before once: a skip inside it would count as a failed start
	s.once.Do(func() { s.srv = Start(sharedTB{tb, s}) })
	if s.srv == nil {
		tb.Fatal("the shared redis-server failed to start (see the first test that used it)")
	}
	return s.srv
}

// Stop stops the shared server (if started) and removes its directory.
func (s *Shared) Stop() {
	s.mu.Lock()
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// sharedTB lends Start the calling test for its failures but keeps the
// server's temporary directory and its cleanup (stopping it) for Stop: the
// server outlives the test that started it.
type sharedTB struct {
	testing.TB
	s *Shared
}

func (tb sharedTB) TempDir() string {
	dir, err := os.MkdirTemp("", "sessionpool-redis-")
	if err != nil {
		tb.TB.Fatalf("shared redis-server: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (tb sharedTB) Cleanup(f func()) {
	tb.s.mu.Lock()
	tb.s.cleanups = append(tb.s.cleanups, f)
	tb.s.mu.Unlock()
}
