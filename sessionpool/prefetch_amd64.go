package sessionpool

// prefetch hints the CPU to load the cache line at addr. It never faults,
// whatever addr is.
//
//go:noescape
func prefetch(addr uintptr)
