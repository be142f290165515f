package remotewrite

import (
	"time"

	"github.com/anomaly-exporter/anomaly_exporter/loadgen"
)

// cpuNow is the CPU time of this process, user and system, for benchmarks to report per sample.
func cpuNow() time.Duration { u, s := loadgen.CPUTime(); return u + s }
