//go:build !unix

package loadgen

import "time"

// CPUTime is not measured here: the report then shows no CPU time rather than a wrong one.
func CPUTime() (user, system time.Duration) { return 0, 0 }
