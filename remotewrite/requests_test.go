package remotewrite

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// This file builds real remote-write requests with Prometheus's generated types, for the handler
// tests, the fuzz seeds, the differential test and the benchmarks.

// ts describes one series to send: labels as name, value, name, value... in the order sent.
type ts struct {
	labels     []string
	samples    []batch.Sample
	histograms int
	exemplars  int
	typ        batch.MetricType // RW 2.0 metadata type; RW 1.0 sends metadata separately
}

func smp(t int64, v float64) batch.Sample { return batch.Sample{T: t, V: v} }

func series(labels ...string) ts { return ts{labels: labels, samples: []batch.Sample{smp(1000, 1)}} }

func (s ts) with(samples ...batch.Sample) ts { s.samples = samples; return s }

func (s ts) typed(t batch.MetricType) ts { s.typ = t; return s }

func (s ts) extra(histograms, exemplars int) ts {
	s.histograms, s.exemplars = histograms, exemplars
	return s
}

func testHistogram(t int64) prompb.Histogram {
	return prompb.Histogram{
		Count: &prompb.Histogram_CountInt{CountInt: 3}, Sum: 4.5, Schema: 1, ZeroThreshold: 1e-128,
		ZeroCount:     &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1},
		PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, 0},
		Timestamp: t,
	}
}

func testHistogramV2(t int64) writev2.Histogram {
	return writev2.Histogram{
		Count: &writev2.Histogram_CountInt{CountInt: 3}, Sum: 4.5, Schema: 1, ZeroThreshold: 1e-128,
		ZeroCount:     &writev2.Histogram_ZeroCountInt{ZeroCountInt: 1},
		PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, 0},
		Timestamp: t,
	}
}

// v1Message builds a prometheus.WriteRequest.
func v1Message(meta []prompb.MetricMetadata, ss ...ts) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Metadata: meta}
	for _, s := range ss {
		var p prompb.TimeSeries
		for i := 0; i+1 < len(s.labels); i += 2 {
			p.Labels = append(p.Labels, prompb.Label{Name: s.labels[i], Value: s.labels[i+1]})
		}
		for _, x := range s.samples {
			p.Samples = append(p.Samples, prompb.Sample{Timestamp: x.T, Value: x.V})
		}
		for i := range s.histograms {
			p.Histograms = append(p.Histograms, testHistogram(int64(1000+i)))
		}
		for i := range s.exemplars {
			p.Exemplars = append(p.Exemplars, prompb.Exemplar{
				Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: float64(i), Timestamp: 1000,
			})
		}
		req.Timeseries = append(req.Timeseries, p)
	}
	return req
}

// v2Message builds an io.prometheus.write.v2.Request with a symbols table.
func v2Message(ss ...ts) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, s := range ss {
		var p writev2.TimeSeries
		for _, l := range s.labels {
			p.LabelsRefs = append(p.LabelsRefs, st.Symbolize(l))
		}
		for _, x := range s.samples {
			p.Samples = append(p.Samples, writev2.Sample{Timestamp: x.T, Value: x.V})
		}
		for i := range s.histograms {
			p.Histograms = append(p.Histograms, testHistogramV2(int64(1000+i)))
		}
		for i := range s.exemplars {
			p.Exemplars = append(p.Exemplars, writev2.Exemplar{
				LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("abc")}, Value: float64(i), Timestamp: 1000,
			})
		}
		p.Metadata.Type = writev2.Metadata_MetricType(s.typ)
		p.Metadata.HelpRef = st.Symbolize("help text")
		req.Timeseries = append(req.Timeseries, p)
	}
	req.Symbols = st.Symbols()
	return req
}

type marshaler interface{ Marshal() ([]byte, error) }

func marshal(tb testing.TB, m marshaler) []byte {
	tb.Helper()
	b, err := m.Marshal()
	require.NoError(tb, err)
	return b
}

func v1Body(tb testing.TB, meta []prompb.MetricMetadata, ss ...ts) []byte {
	return snappy.Encode(nil, marshal(tb, v1Message(meta, ss...)))
}

func v2Body(tb testing.TB, ss ...ts) []byte {
	return snappy.Encode(nil, marshal(tb, v2Message(ss...)))
}

// realisticSeries returns n series of one sample with 8 labels each, as a Kubernetes scrape
// produces them, in the order Prometheus sends labels (sorted).
func realisticSeries(n int) []ts {
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	statuses := []string{"200", "201", "404", "500", "503"}
	out := make([]ts, n)
	for i := range out {
		out[i] = ts{
			labels: []string{
				"__name__", "http_server_requests_seconds_count",
				"container", "checkout-api",
				"instance", "10.42." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250) + ":8080",
				"job", "kubernetes-pods",
				"method", methods[i%len(methods)],
				"namespace", "shop-production",
				"pod", "checkout-api-7f9c8d6b5-" + strconv.Itoa(i),
				"status", statuses[i%len(statuses)],
			},
			samples: []batch.Sample{smp(1_700_000_000_000+int64(i), float64(i)*1.5)},
		}
	}
	return out
}

// recSample is a sample as recorded, with the value's bits so that NaNs compare.
type recSample struct {
	T    int64
	Bits uint64
}

func rs(t int64, v float64) recSample { return recSample{t, math.Float64bits(v)} }

// rec is one series as an Appender received it, copied out of the pooled batch.
type rec struct {
	Labels     string // {a="1", b="2"}
	Type       batch.MetricType
	Samples    []recSample
	Histograms int
	Exemplars  int
}

func labelString(ls []batch.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name + "=\"" + l.Value + "\"")
	}
	b.WriteByte('}')
	return b.String()
}

func record(b *batch.Batch) []rec {
	out := make([]rec, 0, len(b.Series))
	for _, s := range b.Series {
		r := rec{Labels: labelString(s.LabelsOf(nil)), Type: s.Type, Histograms: s.Histograms, Exemplars: s.Exemplars}
		for _, x := range s.Samples {
			r.Samples = append(r.Samples, recSample{x.T, math.Float64bits(x.V)})
		}
		out = append(out, r)
	}
	return out
}

// recordingAppender copies every batch it receives; it fails with err when set.
type recordingAppender struct {
	mu      sync.Mutex
	calls   int
	series  []rec
	err     error
	entered chan struct{} // if set, signalled on every Append
	release chan struct{} // if set, Append waits for it to be closed
}

func (a *recordingAppender) Append(b *batch.Batch) error {
	if a.entered != nil {
		a.entered <- struct{}{}
	}
	if a.release != nil {
		<-a.release
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.err != nil {
		return a.err
	}
	a.series = append(a.series, record(b)...)
	return nil
}
