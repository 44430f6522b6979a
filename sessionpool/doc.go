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
package sessionpool
