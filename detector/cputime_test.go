package detector

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used, user and system. Benchmarks report it per
// sample beside the wall time because the machines they run on are shared: wall time grows
// with whatever else runs, CPU time much less.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
