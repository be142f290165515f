// Package batch holds the decoded form of one remote-write request: the boundary between the
// receive side (remotewrite), which fills it, and the detector, which consumes it. It is its own
// package so that neither side depends on the other.
//
// A Batch is reused across requests through a pool, and the label strings of its series alias the
// request's decode buffer: they are valid only during the Append call that receives the batch.
// A consumer that keeps a label beyond that call must copy it.
package batch

import "unsafe"

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
	// Labels are sorted by name, names unique and non-empty, including __name__. They are empty
	// when the decoder left them in LabelsData only: read them with LabelsOf.
	Labels []Label
	// LabelsData is the labels in the encoding of AppendEncoded, or nil. The decoder writes it
	// while it reads the labels, when they are in the encoding senders use (a copy of bytes
	// already in the cache), and then does not build Labels: the detector identifies series by
	// LabelsData, and needs the labels one by one only for a series it has not seen before. It
	// aliases the decoder's buffers like the labels.
	LabelsData []byte
	// Type is the metric type from RW 2.0 metadata or RW 1.0 metadata when sent, else Unknown.
	Type MetricType
	// Samples are the float samples of the series.
	Samples []Sample
	// Histograms counts the native histogram samples of the series, which are not passed on.
	Histograms int
	// Exemplars counts the exemplars of the series, which are not passed on.
	Exemplars int
}

// Metadata is the type of one metric family, as RW 1.0 senders send it: in requests of its
// own, not beside the series, so a consumer that wants it must remember it across requests.
type Metadata struct {
	// Family is the metric family name (may alias the request buffer).
	Family string
	Type   MetricType
}

// Batch is one decoded request.
type Batch struct {
	Series []Series
	// Metadata are the RW 1.0 family types the request carried (RW 2.0 puts them on the series).
	Metadata []Metadata
}

// familySuffixes are the suffixes that series of counter, histogram and summary families add to
// the family name.
var familySuffixes = [...]string{"_total", "_count", "_sum", "_bucket"}

// TypeByFamily finds the type of a series from family metadata: its family is named as the
// metric, or as the metric less one of the suffixes that counters, histograms and summaries add.
func TypeByFamily(metric string, lookup func(family string) (MetricType, bool)) (MetricType, bool) {
	if t, ok := lookup(metric); ok {
		return t, true
	}
	for _, suffix := range familySuffixes {
		if n := len(metric) - len(suffix); n > 0 && metric[n:] == suffix {
			if t, ok := lookup(metric[:n]); ok {
				return t, true
			}
		}
	}
	return Unknown, false
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

// AppendEncoded appends ls to b in the encoding Prometheus's labels.Labels keeps them in, in its
// default (stringlabels) build: every name and value preceded by its length, one byte below 255,
// else 255 and three bytes little-endian. It identifies a series: equal label sets have equal
// encodings, and a tracked series keeps its encoding as its labels.Labels with no conversion.
func AppendEncoded(b []byte, ls []Label) []byte {
	for i := range ls {
		b = AppendEncodedString(b, ls[i].Name)
		b = AppendEncodedString(b, ls[i].Value)
	}
	return b
}

// AppendEncodedString appends one name or value in the encoding of AppendEncoded.
func AppendEncodedString(b []byte, s string) []byte {
	if n := len(s); n < 255 {
		b = append(b, byte(n))
	} else {
		b = append(b, 255, byte(n), byte(n>>8), byte(n>>16))
	}
	return append(b, s...)
}

// LabelsOf returns the labels of s: Labels, or when they are empty, the labels of LabelsData
// decoded into buf, their strings aliasing LabelsData.
func (s *Series) LabelsOf(buf []Label) []Label {
	if len(s.Labels) > 0 || len(s.LabelsData) == 0 {
		return s.Labels
	}
	return AppendDecoded(buf, s.LabelsData)
}

// MetricName returns the value of the series' __name__ label, "" if it has none.
func (s *Series) MetricName() string {
	if len(s.Labels) > 0 || len(s.LabelsData) == 0 {
		for _, l := range s.Labels {
			if l.Name == "__name__" {
				return l.Value
			}
		}
		return ""
	}
	for d := s.LabelsData; len(d) > 0; {
		var name, value string
		name, d = decodeString(d)
		value, d = decodeString(d)
		if name == "__name__" {
			return value
		}
	}
	return ""
}

// AppendDecoded appends to buf the labels of data, in the encoding of AppendEncoded. The
// strings alias data. data must be a whole encoding: what AppendEncoded wrote.
func AppendDecoded(buf []Label, data []byte) []Label {
	for len(data) > 0 {
		var l Label
		l.Name, data = decodeString(data)
		l.Value, data = decodeString(data)
		buf = append(buf, l)
	}
	return buf
}

// decodeString reads one length-prefixed string of AppendEncoded's encoding off the front of d.
func decodeString(d []byte) (string, []byte) {
	n, h := int(d[0]), 1
	if n == 255 {
		n, h = int(d[1])|int(d[2])<<8|int(d[3])<<16, 4
	}
	return unsafe.String(unsafe.SliceData(d[h:]), n), d[h+n:]
}
