package sessionpool

import (
	"testing"
)

// What the external tests (package sessionpool_test, which can import
// sessionpooltest) need of the package's internals.

// Internals is the sessionpooltest.Inspector of the package's own tests:
// the contract suite's checks of what the public API does not show.
type Internals struct{}

// Defaults returns what Open filled in for zero options.
func (Internals) Defaults(p *Pool) (maxSize int, strategy Strategy, blocked []int, key string, persisting bool) {
	return p.maxSize, p.strategy, p.blocked, p.key, p.done != nil
}

// UserDataAllocated reports whether s holds an encoding of user data.
func (Internals) UserDataAllocated(s *Session) bool { return s.userData != nil }

// CheckTable checks that a memory pool's table agrees with the sessions'
// own state and holds no reserved slot.
func (Internals) CheckTable(tb testing.TB, p *Pool) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	t := memTable(p)
	for i, s := range t.all {
		if s.idx != i || t.byID[s.id] != s {
			tb.Fatalf("table index broken at %d", i)
		}
		if s.Retired() != s.inRetired {
			tb.Errorf("session %s: retired %v but in retired list %v", s.id, s.Retired(), s.inRetired)
		}
	}
	if len(t.byID) != len(t.all) || len(t.live)+len(t.retired) != len(t.all) || t.pending != 0 {
		tb.Errorf("table sizes: all %d byID %d live %d retired %d pending %d", len(t.all), len(t.byID), len(t.live), len(t.retired), t.pending)
	}
}

// RedisKey returns one of a Redis pool's keys ("held", "s:ID", ...).
func RedisKey(p *Pool, name string) string { return redisOf(p).pfx + name }

// RedisEventChannel returns the channel of a Redis pool's retirement
// events.
func RedisEventChannel(p *Pool) string { return redisOf(p).channel }

// RedisStoreName returns how a Redis pool's errors name its server.
func RedisStoreName(p *Pool) string { return redisOf(p).name }

// RedisRecordFields names the fields of the first line of a session's
// record on the server, in order.
var RedisRecordFields = recordFields[:]

// memTable returns the table of a memory pool (guarded by p.mu).
func memTable(p *Pool) *table { return &p.be.(*memBackend).t }

// redisOf returns the backend of a Redis pool.
func redisOf(p *Pool) *redisBackend { return p.be.(*redisBackend) }
