// Package sessionpool is a pool of HTTP sessions with the semantics of
// Crawlee's SessionPool (3.x), with that design's known defects fixed.
//
// A Session is one identity: an ID, a sticky upstream proxy (ProxyURL), its
// own RFC 6265 cookie jar, free user data, and the counters that decide when
// it is spent (blocked, expired, worn out or retired). A Pool hands sessions
// out (GetSession), lets them be found (GetSessionByID) or added
// (AddSession), tells subscribers when one retires (OnSessionRetired), and
// persists its state to a Store (FileStore, MemoryStore) as a versioned JSON
// document that Open restores. A pool opened on Redis (Options.Redis)
// instead keeps its sessions on the server, shared by every process that
// opens the same pool there, behind the same API.
//
// Fixed defects, compared with the seed:
//   - The error score never drops below 0; Retire is idempotent and fires
//     exactly one event; a session that retires itself through a mark counts
//     that use once; a retired session never becomes usable again.
//   - Concurrent GetSession callers never push the pool past MaxPoolSize
//     (a creation reserves its slot), and the random pick is O(1).
//   - Persistence is atomic (temporary file, fsync, rename), files are 0600,
//     a damaged document is reported with its position and left untouched.
//
// Everything in the package is safe for concurrent use. Pools own one
// goroutine (periodic persistence with a Store, or with Redis the one that
// receives other processes' retirement events), which Teardown stops. The
// package never logs; with Redis, go-redis reports connection trouble
// through its own global logger (redis.SetLogger). It imports neither an
// HTTP proxy nor a YAML library.
//
// # Where things live
//
// The Pool does what every pool does (options, building sessions, events,
// persistence) and hands the keeping of its sessions to a backend: the
// in-memory table, or Redis.
//
//   - options.go: Options, RedisOptions, SessionOptions, the defaults and
//     their validation; errors.go: the sentinel errors.
//   - pool.go: Open, the Pool's methods and its clock; backend.go: the
//     backend interface between the Pool and where its sessions are kept;
//     events.go: OnSessionRetired; id.go: session IDs.
//   - session.go: the Session, its predicates, marks and user data;
//     commit.go: Session.Commit, a response's cookies and mark at once.
//   - memory.go: the in-memory backend and its allocation flow; table.go:
//     its data structures (O(1) random pick, expiry heap, retired list);
//     prefetch_*.go: the pick's memory prefetch.
//   - redis.go: the Redis backend's client, events and errors;
//     redis_alloc.go: GetSession, AddSession and the reads on the server;
//     redis_commit.go: marks and cookie changes; redis_record.go: a
//     session's form on the server; redis_scripts.go: the keys and the Lua
//     scripts.
//   - jar.go: a session's RFC 6265 cookie jar and its rules for storing;
//     jar_lookup.go: the cookies to send; jar_persist.go: the jar's
//     persisted form; jar_host.go: hosts, domains and public suffixes;
//     cookie_parse.go: Set-Cookie lines.
//   - state.go: PoolState and SessionState; persist.go: PersistState and
//     the periodic persistence; encode.go and decode.go: the state
//     document; store.go: Store, FileStore, MemoryStore.
//
// The package sessionpooltest holds the contract suite that both backends
// pass, and a redis-server launcher for tests.
package sessionpool
