package sessionpool

import "errors"

// Sentinel errors. Errors returned by this package wrap them; match them with
// errors.Is.
var (
	// ErrSessionNotFound: no usable session with the requested ID is held.
	ErrSessionNotFound = errors.New("sessionpool: session not found")
	// ErrSessionExists: a usable session already holds the requested ID. The
	// wrapping error names the ID.
	ErrSessionExists = errors.New("sessionpool: session already exists")
	// ErrPoolClosed: the pool was torn down.
	ErrPoolClosed = errors.New("sessionpool: pool closed")
	// ErrNotFound: a Store holds nothing under the key.
	ErrNotFound = errors.New("sessionpool: key not found")
	// ErrInvalidOptions: Options or SessionOptions hold a value out of range.
	ErrInvalidOptions = errors.New("sessionpool: invalid options")
	// ErrInvalidState: a persisted state document cannot be loaded. The
	// wrapping error names the position (line:column) of the problem.
	ErrInvalidState = errors.New("sessionpool: invalid state")
	// ErrInvalidKey: a store key is empty or would escape the store (path
	// separators, "..").
	ErrInvalidKey = errors.New("sessionpool: invalid store key")
	// ErrForeignSession: CreateSessionFunc returned a session that was not
	// built by this pool's NewSession, or one that is already held.
	ErrForeignSession = errors.New("sessionpool: session not built for this pool")
	// ErrStoreUnavailable: the shared store (Redis) did not answer, or
	// answered with an error. The wrapping error names the store (its URL
	// without the password, or the addresses of RedisOptions.Client) and
	// the cause. The pool reconnects by itself; the call may be repeated
	// (a mark whose answer was lost may have been counted). A call whose
	// context was canceled returns the context's error instead.
	ErrStoreUnavailable = errors.New("sessionpool: session store unavailable")
)
