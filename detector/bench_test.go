package detector

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// benchBatches builds requests of 2000 series × 1 sample with 8 labels, as Prometheus sends them.
func benchBatches(nSeries int) []*batch.Batch {
	const perReq = 2000
	var out []*batch.Batch
	for off := 0; off < nSeries; off += perReq {
		b := &batch.Batch{}
		for i := off; i < min(off+perReq, nSeries); i++ {
			b.Series = append(b.Series, series(batch.Gauge, []batch.Sample{{T: 0, V: float64(i % 100)}},
				"__name__", fmt.Sprintf("http_requests_in_flight_%d", i%20),
				"container", "app", "instance", fmt.Sprintf("10.0.%d.%d:8080", i/250%250, i%250),
				"job", "api", "method", []string{"GET", "POST", "PUT"}[i%3],
				"namespace", fmt.Sprintf("ns-%d", i%13), "pod", fmt.Sprintf("api-%d", i), "status", "200"))
		}
		out = append(out, packBatch(b))
	}
	return out
}

// packBatch lays a batch out in memory as the remote-write decoder does: every label string in
// one buffer, the labels of all series in one array, the samples in another, so that reading a
// request is sequential, as in the server.
func packBatch(b *batch.Batch) *batch.Batch {
	var buf []byte
	nl, ns := 0, 0
	for _, ser := range b.Series {
		for _, l := range ser.Labels {
			buf = append(buf, l.Name...)
			buf = append(buf, l.Value...)
		}
		nl += len(ser.Labels)
		ns += len(ser.Samples)
	}
	all := string(buf)
	lbls, smps := make([]batch.Label, 0, nl), make([]batch.Sample, 0, ns)
	out := &batch.Batch{Series: make([]batch.Series, len(b.Series))}
	off := 0
	for i, ser := range b.Series {
		l0, s0 := len(lbls), len(smps)
		for _, l := range ser.Labels {
			n := all[off : off+len(l.Name)]
			off += len(l.Name)
			v := all[off : off+len(l.Value)]
			off += len(l.Value)
			lbls = append(lbls, batch.Label{Name: n, Value: v})
		}
		smps = append(smps, ser.Samples...)
		out.Series[i] = ser
		out.Series[i].Labels = lbls[l0:len(lbls):len(lbls)]
		out.Series[i].Samples = smps[s0:len(smps):len(smps)]
	}
	return out
}

// advance moves every sample of the batches one minute on, so that each round is new data.
func advance(bs []*batch.Batch) {
	for _, b := range bs {
		for i := range b.Series {
			for j := range b.Series[i].Samples {
				b.Series[i].Samples[j].T += int64(time.Minute / time.Millisecond)
				b.Series[i].Samples[j].V++
			}
		}
	}
}

// BenchmarkAppend is the detector's share of ingest: hash, shard lookup, score and learn, for
// known series (the steady state), reported per sample.
func BenchmarkAppend(b *testing.B) {
	benchAppend(b, NewStore(testOptions(), nil))
}

// benchAppend primes s with 100k series, then measures rounds of one new sample for each, per
// sample: the steady state of ingest.
func benchAppend(b *testing.B, s *Store) {
	const n = 100_000
	bs := benchBatches(n)
	for _, x := range bs {
		_ = s.Append(x)
	}
	b.ReportAllocs()
	b.ResetTimer()
	rounds, cpu0 := 0, cpuNow()
	for b.Loop() {
		advance(bs)
		for _, x := range bs {
			_ = s.Append(x)
		}
		rounds++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rounds*n), "ns/sample")
	b.ReportMetric(float64((cpuNow()-cpu0).Nanoseconds())/float64(rounds*n), "cpu-ns/sample")
}

// BenchmarkWriteScores is one scrape of /scores (uncompressed) over 100k series, six lines each.
func BenchmarkWriteScores(b *testing.B) {
	const n = 100_000
	s := NewStore(testOptions(), nil)
	for _, x := range benchBatches(n) {
		_ = s.Append(x)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.WriteScores(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
}
