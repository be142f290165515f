package remotewrite

import (
	"sync/atomic"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// CountingAppender is a batch.Appender that only counts what it receives. It lets the receiver
// run before a detector is wired in (to measure what senders deliver) and serves tests and
// benchmarks as a sink that costs next to nothing. It is safe for concurrent use; the zero value
// is ready.
type CountingAppender struct {
	series, samples, histograms, exemplars atomic.Int64
}

var _ batch.Appender = (*CountingAppender)(nil)

// Append counts the batch's series, samples, histograms and exemplars. It never fails.
func (c *CountingAppender) Append(b *batch.Batch) error {
	samples, histograms, exemplars := b.Counts()
	c.series.Add(int64(len(b.Series)))
	c.samples.Add(int64(samples))
	c.histograms.Add(int64(histograms))
	c.exemplars.Add(int64(exemplars))
	return nil
}

// Series returns the number of series appended so far.
func (c *CountingAppender) Series() int64 { return c.series.Load() }

// Samples returns the number of float samples appended so far, stale markers included.
func (c *CountingAppender) Samples() int64 { return c.samples.Load() }

// Histograms returns the number of native histogram samples counted so far.
func (c *CountingAppender) Histograms() int64 { return c.histograms.Load() }

// Exemplars returns the number of exemplars counted so far.
func (c *CountingAppender) Exemplars() int64 { return c.exemplars.Load() }
