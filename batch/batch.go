// Package batch holds the decoded form of one remote-write request: the boundary between the
// receive side (remotewrite), which fills it, and the detector, which consumes it. It is its own
// package so that neither side depends on the other.
//
// A Batch is reused across requests through a pool, and the label strings of its series alias the
// request's decode buffer: they are valid only during the Append call that receives the batch.
// A consumer that keeps a label beyond that call must copy it.
package batch

// MetricType mirrors the metric types of remote write 2.0 metadata (and the RW 1.0 metadata
// enum, which has the same order), so that the detector can tell counters from gauges.
type MetricType uint8

// Metric types, numbered as in io.prometheus.write.v2.Metadata.MetricType.
const (
	Unknown MetricType = iota
	Counter
	Gauge
	Histogram
	GaugeHistogram
	Summary
	Info
	StateSet
)

// String returns the lower-case Prometheus name of the type.
func (t MetricType) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case Histogram:
		return "histogram"
	case GaugeHistogram:
		return "gaugehistogram"
	case Summary:
		return "summary"
	case Info:
		return "info"
	case StateSet:
		return "stateset"
	}
	return "unknown"
}

// Label is one name/value pair. Both strings may alias the request buffer (see the package doc).
type Label struct {
	Name, Value string
}

// Sample is one float sample: T in milliseconds since the epoch, V the value. A Prometheus stale
// marker arrives as its special NaN (see model/value.IsStaleNaN) and is passed on unchanged.
type Sample struct {
	T int64
	V float64
}

// Series is one series of the request with its samples in the order the sender sent them.
type Series struct {
	// Labels are sorted by name, names unique and non-empty, including __name__.
	Labels []Label
	// Type is the metric type from RW 2.0 metadata or RW 1.0 metadata when sent, else Unknown.
	Type MetricType
	// Samples are the float samples of the series.
	Samples []Sample
	// Histograms counts the native histogram samples of the series, which are not passed on.
	Histograms int
	// Exemplars counts the exemplars of the series, which are not passed on.
	Exemplars int
}

// Batch is one decoded request.
type Batch struct {
	Series []Series
}

// Counts sums the samples, histograms and exemplars of the batch.
func (b *Batch) Counts() (samples, histograms, exemplars int) {
	for i := range b.Series {
		s := &b.Series[i]
		samples += len(s.Samples)
		histograms += s.Histograms
		exemplars += s.Exemplars
	}
	return samples, histograms, exemplars
}

// Appender consumes decoded batches. The detector implements it; the receiver calls it once per
// request, possibly from many goroutines at once. An error means the consumer failed through its
// own fault (the sender gets a 5xx and retries); samples it chooses not to score are not errors.
type Appender interface {
	Append(b *Batch) error
}
