package sessionpooltest

import "testing"

// RunContract runs the contract of sessionpool (its API's documented
// behaviour: allocation flow and strategies, AddSession and
// GetSessionByID, CreateSessionFunc, counts and State, retirement events,
// option checks, the session's marks, predicates, user data and cookies,
// and a concurrent hammer) against one backend, each test as a subtest of
// t named after it. Every test opens pools of its own with b.Open and
// reads what they hold through the public API, so that a backend that
// keeps its sessions elsewhere (b.Remote) passes the same bodies: sessions
// are compared by ID, and the held sessions are counted with HeldCount.
// The checks that need the package's internals run only when b.Inspect is
// set.
//
// The tests do not sleep and use no network but the backend's; they run
// one after the other.
func RunContract(t *testing.T, b Backend) {
	for _, c := range []struct {
		name string
		test func(*testing.T, Backend)
	}{
		// The allocation flow (contract_alloc.go).
		{"GetSessionFillsThenPicksUniformly", testGetSessionFillsThenPicksUniformly},
		{"GetSessionNeverReturnsUnusable", testGetSessionNeverReturnsUnusable},
		{"GetSessionAllUnusable", testGetSessionAllUnusable},
		{"GetSessionEvictsExpired", testGetSessionEvictsExpired},
		{"RoundRobin", testRoundRobin},
		{"UseUntilFailure", testUseUntilFailure},
		{"GetSessionByID", testGetSessionByID},
		{"GetSessionCanceledContext", testGetSessionCanceledContext},
		// Adding sessions (contract_add.go).
		{"AddSession", testAddSession},
		{"CreateSessionFunc", testCreateSessionFunc},
		{"CreateSessionFuncSeedsSession", testCreateSessionFuncSeedsSession},
		{"CreateSessionFuncFailureOnFullPool", testCreateSessionFuncFailureOnFullPool},
		// The pool as a whole (contract_pool.go).
		{"StateAndCounts", testStateAndCounts},
		{"OnSessionRetired", testOnSessionRetired},
		{"OpenValidatesAllOptions", testOpenValidatesAllOptions},
		{"OpenDefaults", testOpenDefaults},
		{"ClosedPool", testClosedPool},
		// The session (contract_session.go).
		{"SessionDefaults", testSessionDefaults},
		{"SessionIDsUnique", testSessionIDsUnique},
		{"SessionMarks", testSessionMarks},
		{"SessionPredicates", testSessionPredicates},
		{"RetireOnBlockedStatusCodes", testRetireOnBlockedStatusCodes},
		{"SessionUserData", testSessionUserData},
		{"SessionFingerprint", testSessionFingerprint},
		{"SessionPause", testSessionPause},
		{"SessionCookies", testSessionCookies},
		// Everything at once (contract_hammer.go).
		{"ConcurrentHammer", testConcurrentHammer},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, b) })
	}
}
