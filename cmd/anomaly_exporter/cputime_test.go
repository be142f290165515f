package main

import (
	"time"

	"github.com/anomaly-exporter/anomaly_exporter/loadgen"
)

// cpuNow is the CPU time of this process, user and system, for benchmarks to report per series:
// a scrape runs on several goroutines, so its wall time alone hides what it costs ingestion.
func cpuNow() time.Duration { u, s := loadgen.CPUTime(); return u + s }
