package loadgen

import (
	"math/bits"
	"time"
)

// latencies is a log-linear histogram of request durations in nanoseconds, in the manner of HDR
// histograms: 64 buckets per power of two, so a quantile is within 1.6% of the true value, in a
// fixed 32 KiB whatever the number of requests, and histograms of workers merge by addition.
type latencies struct {
	counts   [64 * subBuckets]uint64
	n        uint64
	sum, max int64
}

const (
	subBits    = 6
	subBuckets = 1 << subBits
)

// bucket is the index of v's bucket: values under 2×subBuckets have one bucket each, larger ones
// keep their top subBits+1 bits.
func bucket(v int64) int {
	if v < 2*subBuckets {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - (subBits + 1)
	return e*subBuckets + int(uint64(v)>>e)
}

// bucketValue is the middle of bucket i.
func bucketValue(i int) int64 {
	if i < 2*subBuckets {
		return int64(i)
	}
	e := i/subBuckets - 1
	m := int64(i - e*subBuckets)
	return m<<e + (int64(1)<<e)/2
}

func (l *latencies) record(d time.Duration) {
	v := int64(d)
	l.counts[bucket(v)]++
	l.n++
	l.sum += v
	l.max = max(l.max, v)
}

func (l *latencies) merge(o *latencies) {
	for i, c := range o.counts {
		l.counts[i] += c
	}
	l.n += o.n
	l.sum += o.sum
	l.max = max(l.max, o.max)
}

// quantile is the q-quantile (0 < q <= 1), never above the largest value recorded.
func (l *latencies) quantile(q float64) time.Duration {
	if l.n == 0 {
		return 0
	}
	rank := uint64(q*float64(l.n) + 0.5)
	rank = min(max(rank, 1), l.n)
	var seen uint64
	for i, c := range l.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketValue(i), l.max))
		}
	}
	return time.Duration(l.max)
}

// summary is what the report shows.
func (l *latencies) summary() Latency {
	s := Latency{P50: l.quantile(0.5), P90: l.quantile(0.9), P99: l.quantile(0.99), Max: time.Duration(l.max)}
	if l.n > 0 {
		s.Mean = time.Duration(l.sum / int64(l.n))
	}
	return s
}
