// Package sessionpooltest holds what the tests of sessionpool and of its
// users share:
//
//   - real redis-server processes (Start, Server), each on a free loopback
//     port with its data in the test's temporary directory and stopped when
//     the test ends, and one server shared by a whole test binary (Shared);
//   - the contract suite of a pool (RunContract), run against a Backend:
//     MemoryBackend keeps the sessions in the pool's process, RedisBackend
//     on a redis-server. sessionpool's own tests run it on both, with an
//     Inspector for the checks of its internals;
//   - small helpers for tests of pools: a settable Clock, OpenPool, GetN,
//     AddSession, MustGetByID, StateOf, HeldCount, RecordRetired...
//
// It is a test helper package: it imports testing and is meant to be
// imported only by tests. It imports sessionpool, so tests inside package
// sessionpool cannot import it; external test packages (package
// sessionpool_test) and the tests of other packages can. Nothing in it
// sleeps: what is asynchronous is waited for on channels or logs.
package sessionpooltest
