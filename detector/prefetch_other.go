//go:build !amd64 && !arm64

package detector

// prefetch does nothing on this architecture (see prefetch_asm.go).
func prefetch(addr, n uintptr) {}
