//go:build unix

package loadgen

import (
	"syscall"
	"time"
)

// CPUTime is the user and system CPU time of this process so far. The load generator reports
// its own cost with it, and benchmarks theirs: CPU time varies less than wall time on a shared
// machine.
func CPUTime() (user, system time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
