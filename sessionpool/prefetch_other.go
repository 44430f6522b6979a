//go:build !amd64

package sessionpool

// prefetch does nothing on this architecture.
func prefetch(addr uintptr) {}
