// Package sessionpooltest holds what the tests of sessionpool and of its
// users share: real redis-server processes (Start, Server), each on a free
// loopback port with its data in the test's temporary directory and
// stopped when the test ends.
//
// It is a test helper package: it imports testing and is meant to be
// imported only by tests.
package sessionpooltest
