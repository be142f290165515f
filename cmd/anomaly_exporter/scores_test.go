package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/config"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// scoresStore is a store with n series of 8 labels, each scored once, at the wall clock's time.
func scoresStore(t testing.TB, n int) *detector.Store {
	opts := config.Default().StoreOptions()
	opts.MaxSeries = 0
	store := detector.NewStore(opts, nil)
	now := time.Now().UnixMilli()
	for off := 0; off < n; off += 2000 {
		b := &batch.Batch{}
		for i := off; i < min(off+2000, n); i++ {
			b.Series = append(b.Series, batch.Series{
				Labels: []batch.Label{
					{Name: "__name__", Value: fmt.Sprintf("http_requests_in_flight_%d", i%20)},
					{Name: "container", Value: "app"},
					{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:8080", i/250%250, i%250)},
					{Name: "job", Value: "api"},
					{Name: "method", Value: []string{"GET", "POST", "PUT"}[i%3]},
					{Name: "namespace", Value: fmt.Sprintf("ns-%d", i%13)},
					{Name: "pod", Value: fmt.Sprintf("api-%d", i)},
					{Name: "status", Value: "200"},
				},
				Type:    batch.Gauge,
				Samples: []batch.Sample{{T: now, V: float64(i % 100)}},
			})
		}
		require.NoError(t, store.Append(b))
	}
	require.Equal(t, n, store.Len())
	return store
}

// TestScoresGzip: the gzipped exposition is the plain one, compressed.
func TestScoresGzip(t *testing.T) {
	h := scoresHandler(scoresStore(t, 5000), nil)
	get := func(acceptEncoding string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/scores", nil)
		req.Header.Set("Accept-Encoding", acceptEncoding)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		require.Equal(t, http.StatusOK, w.Code)
		return w
	}
	plain := get("")
	require.Empty(t, plain.Header().Get("Content-Encoding"))
	zipped := get("gzip, deflate")
	require.Equal(t, "gzip", zipped.Header().Get("Content-Encoding"))
	zr, err := gzip.NewReader(zipped.Body)
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, plain.Body.String(), string(unzipped))
	require.Less(t, zipped.Body.Len(), plain.Body.Len()/5)
}

// BenchmarkScores is a scrape of /scores over 100k series, plain and gzipped; MB/s is of the
// plain exposition. ns/series is wall time, cpu-ns/series the process's CPU time (every
// goroutine of the scrape, and the GC it causes): the scrape's cost to ingestion beside it.
func BenchmarkScores(b *testing.B) {
	const n = 100_000
	h := scoresHandler(scoresStore(b, n), nil)
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/scores", nil)
			req.Header.Set("Accept-Encoding", enc)
			w := &discardWriter{header: http.Header{}}
			h.ServeHTTP(&discardWriter{header: http.Header{}}, httptest.NewRequest(http.MethodGet, "/scores", nil))
			var plain discardWriter
			plain.header = http.Header{}
			h.ServeHTTP(&plain, httptest.NewRequest(http.MethodGet, "/scores", nil))
			b.SetBytes(plain.n)
			b.ReportAllocs()
			rounds, cpu0 := 0, time.Duration(0)
			for b.Loop() {
				if rounds == 0 {
					cpu0 = cpuNow()
				}
				w.n = 0
				h.ServeHTTP(w, req)
				rounds++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rounds*n), "ns/series")
			b.ReportMetric(float64((cpuNow()-cpu0).Nanoseconds())/float64(rounds*n), "cpu-ns/series")
			b.ReportMetric(float64(w.n)/float64(n), "B/series")
		})
	}
}

type discardWriter struct {
	header http.Header
	n      int64
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
func (w *discardWriter) WriteHeader(int) {}
