package remotewrite

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/config"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// The benchmarks decode what Prometheus sends by default: 2000 series of one sample per request,
// each with 8 labels as a Kubernetes scrape has them. ns/sample is the figure to hold under 150;
// allocs/op must stay 0 for the decoders.

const benchSeries = 2000

func benchDecode(b *testing.B, data []byte, decode func(*decoder, []byte) error) {
	d := &decoder{}
	require.NoError(b, decode(d, data)) // warm the pooled buffers, as steady state has them
	require.Len(b, d.b.Series, benchSeries)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := decode(d, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/sample")
}

func BenchmarkDecodeV1(b *testing.B) {
	data := marshal(b, v1Message(nil, realisticSeries(benchSeries)...))
	benchDecode(b, data, (*decoder).decodeV1)
}

func BenchmarkDecodeV2(b *testing.B) {
	data := marshal(b, v2Message(realisticSeries(benchSeries)...))
	benchDecode(b, data, (*decoder).decodeV2)
}

// BenchmarkHandler runs requests through the whole handler: negotiation, bounded read, snappy,
// decode, Append into a CountingAppender, metrics and response.
func BenchmarkHandler(b *testing.B) {
	for _, bc := range []struct {
		name, contentType string
		body              []byte
	}{
		{"v1", ctV1, v1Body(b, nil, realisticSeries(benchSeries)...)},
		{"v2", ctV2, v2Body(b, realisticSeries(benchSeries)...)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var app CountingAppender
			h := NewHandler(Options{}, &app, nil, nil)
			req := httptest.NewRequest(http.MethodPost, "/api/v1/write", nil)
			req.Header.Set("Content-Type", bc.contentType)
			req.Header.Set("Content-Encoding", "snappy")
			req.ContentLength = int64(len(bc.body))
			body := bytes.NewReader(bc.body)
			w := &discardResponseWriter{header: http.Header{}}
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(bc.body)
				req.Body = readCloser{body}
				clear(w.header)
				w.code = 0
				h.ServeHTTP(w, req)
				if w.code != http.StatusNoContent {
					b.Fatalf("status %d", w.code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/sample")
			require.Equal(b, int64(b.N*benchSeries), app.Samples())
		})
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// discardResponseWriter keeps the benchmark's own allocations (httptest.ResponseRecorder's) out
// of the figures.
type discardResponseWriter struct {
	header http.Header
	code   int
}

func (w *discardResponseWriter) Header() http.Header         { return w.header }
func (w *discardResponseWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardResponseWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkIngest is what the server does for a sample, in one process: the handler's whole
// path (snappy, decoding, limits) into the detector's store with the embedded default
// configuration, over 100k series of 8 labels in requests of 2000, one sample per series per
// round, the steady state of ingest. cpu-ns/sample is the process's CPU time, which varies less
// than wall time on a shared machine; under `valgrind --tool=cachegrind` the instructions per
// sample are exact.
func BenchmarkIngest(b *testing.B) {
	b.Run("v1", func(b *testing.B) { benchIngest(b, ctV1, func(ss []ts) []byte { return v1Body(b, nil, ss...) }) })
	b.Run("v2", func(b *testing.B) { benchIngest(b, ctV2, func(ss []ts) []byte { return v2Body(b, ss...) }) })
}

func benchIngest(b *testing.B, contentType string, body func([]ts) []byte) {
	const n, rounds = 100_000, 8
	all := realisticSeries(n)
	// Request bodies of rounds rounds up front, built again for the next rounds when used up,
	// with the timer and the CPU clock stopped: the benchmark measures the receiver only. Every
	// round's timestamps are new, as in the server: a repeated round would be dropped as out of
	// order before the model sees it.
	bodies := make([][][]byte, rounds)
	build := func(first int) {
		for r := range bodies {
			bodies[r] = bodies[r][:0]
			for off := 0; off < n; off += benchSeries {
				ss := slices.Clone(all[off : off+benchSeries])
				for i := range ss {
					round := first + r
					// The series are counters: they must only grow, or they reset.
					v := float64(i%100) + 10*float64(round) + 10*math.Sin(float64(round)/8)
					ss[i].samples = []batch.Sample{smp(1_700_000_000_000+int64(round)*15_000, v)}
				}
				bodies[r] = append(bodies[r], body(ss))
			}
		}
	}
	reg := prometheus.NewRegistry()
	store := detector.NewStore(config.Default().StoreOptions(), reg)
	h := NewHandler(Options{}, store, nil, nil)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/write", nil)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", "snappy")
	w := &discardResponseWriter{header: http.Header{}}
	var rd bytes.Reader
	send := func(data []byte) {
		rd.Reset(data)
		req.Body, req.ContentLength = readCloser{&rd}, int64(len(data))
		clear(w.header)
		w.code = 0
		h.ServeHTTP(w, req)
		if w.code != http.StatusNoContent {
			b.Fatalf("status %d", w.code)
		}
	}
	build(0)
	for _, data := range bodies[0] { // the series are created: not the steady state
		send(data)
	}
	next := 1 // the first round of bodies not sent yet
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	cpu0, round := cpuNow(), 0
	for b.Loop() {
		if next == rounds {
			cpu += cpuNow() - cpu0
			b.StopTimer()
			build(1 + round)
			next = 0
			b.StartTimer()
			cpu0 = cpuNow()
		}
		for _, data := range bodies[next] {
			send(data)
		}
		next++
		round++
	}
	cpu += cpuNow() - cpu0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(round*n), "ns/sample")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(round*n), "cpu-ns/sample")
	// Every sample after the first round's must have been scored, not skipped.
	mfs, err := reg.Gather()
	require.NoError(b, err)
	scored := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "anomaly_exporter_detector_samples_scored_total" {
			scored = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	require.GreaterOrEqual(b, scored, float64(round*n), "rounds were skipped")
}
