package sessionpool

import "math/rand/v2"

const (
	idPrefix   = "session_"
	idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	idChars    = 10
	// idSpace is 62^10, the number of distinct random parts.
	idSpace uint64 = 839299365868340224
)

// NewID returns a new session id as the pool makes them when
// SessionOptions.ID is empty: "session_" and 10 random letters and digits.
// A CreateSessionFunc that needs the id before the session exists (to
// derive its upstream from it, say) sets SessionOptions.ID to one. Safe for
// concurrent use.
func NewID() string { return newID() }

// newID returns "session_" followed by 10 characters of [A-Za-z0-9], drawn
// uniformly from the runtime's ChaCha8 source (math/rand/v2's top-level
// functions: seeded from the OS, safe for concurrent use, not predictable
// from earlier outputs). Uniqueness within a pool is the caller's job: the
// pool retries on a collision.
func newID() string {
	var b [len(idPrefix) + idChars]byte
	copy(b[:], idPrefix)
	v := rand.Uint64N(idSpace)
	for i := len(b) - 1; i >= len(idPrefix); i-- {
		b[i] = idAlphabet[v%62]
		v /= 62
	}
	return string(b[:])
}
