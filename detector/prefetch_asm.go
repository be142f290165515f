//go:build amd64 || arm64

package detector

// prefetch asks the CPU to bring the cache lines of the n bytes at addr into its caches, and
// returns at once: the loads run while the caller goes on. It never faults, whatever addr is.
// addr is a uintptr so that nothing is kept alive by it: the caller keeps what it points to
// alive. n must be at least 1.
//
//go:noescape
func prefetch(addr, n uintptr)
