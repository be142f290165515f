package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	for off := 0; off < n; off += 2000 {
		require.NoError(t, store.Append(seriesBatch(off, min(off+2000, n))))
	}
	require.Equal(t, n, store.Len())
	return store
}

// seriesBatch is series from to end of scoresStore, with one sample each at the wall clock's
// time.
func seriesBatch(from, end int) *batch.Batch {
	now := time.Now().UnixMilli()
	b := &batch.Batch{}
	for i := from; i < end; i++ {
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
	return b
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

// scrape serves one request to h and returns the response's body, gunzipped if it came gzipped
// (as one gzip member, whose CRC and length the reader checks, with nothing after it).
func scrape(t *testing.T, h http.Handler, acceptEncoding string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/scores", nil)
	req.Header.Set("Accept-Encoding", acceptEncoding)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "text/plain; version=0.0.4; charset=utf-8", w.Header().Get("Content-Type"))
	if w.Header().Get("Content-Encoding") != "gzip" {
		return w.Body.String()
	}
	zr, err := gzip.NewReader(w.Body)
	require.NoError(t, err)
	zr.Multistream(false)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Zero(t, w.Body.Len(), "bytes after the gzip member")
	return string(plain)
}

// TestScoresParts: with any number of workers and parts, the plain response is the store's
// exposition as WriteScores writes it, and the gzipped one decodes to it.
func TestScoresParts(t *testing.T) {
	for _, n := range []int{0, 1, 5000} {
		store := scoresStore(t, n)
		var want bytes.Buffer
		require.NoError(t, store.WriteScores(&want))
		for _, workers := range []int{1, 2, 7} {
			for _, partSeries := range []int{0, 300, 1} {
				t.Run(fmt.Sprintf("%d series, %d workers, %d parts", n, workers, store.Scrape(partSeries).Parts()), func(t *testing.T) {
					h := &scoresServer{store: store, workers: workers, partSeries: partSeries}
					require.Equal(t, want.String(), scrape(t, h, ""))
					require.Equal(t, want.String(), scrape(t, h, "gzip"))
				})
			}
		}
	}
}

func TestCRC32Combine(t *testing.T) {
	data := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, cut := range []struct{ a, b int }{{0, 0}, {0, 10}, {10, 0}, {1, 1}, {1000, 1}, {7, 3<<20 - 7}, {1 << 20, 2 << 20}, {12345, 3<<20 - 12345}} {
		a, b := data[:cut.a], data[cut.a:cut.a+cut.b]
		require.Equal(t, crc32.ChecksumIEEE(data[:cut.a+cut.b]),
			crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b))), "%d+%d", cut.a, cut.b)
	}
}

// failingWriter is a client that goes away after limit bytes.
type failingWriter struct {
	discardWriter
	limit       int64
	writesAfter int // writes tried after the first that failed
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.limit {
		if w.n > w.limit {
			w.writesAfter++
		}
		w.n = w.limit + 1
		return 0, errors.New("client gone")
	}
	return w.discardWriter.Write(p)
}

// TestScoresClientGone: when the response cannot be written, the handler stops writing,
// returns once its workers are done, leaves no goroutine behind, and logs the error at debug.
func TestScoresClientGone(t *testing.T) {
	store := scoresStore(t, 20000)
	for _, enc := range []string{"identity", "gzip"} {
		req := httptest.NewRequest(http.MethodGet, "/scores", nil)
		req.Header.Set("Accept-Encoding", enc)
		whole := discardWriter{header: http.Header{}}
		scoresHandler(store, nil).ServeHTTP(&whole, req)
		// The first write, the first part, the middle, the last write (gzip's trailer).
		for _, limit := range []int64{0, 9, whole.n / 2, whole.n - 5} {
			for _, workers := range []int{1, 2, 7} {
				t.Run(fmt.Sprintf("%s after %d of %d bytes, %d workers", enc, limit, whole.n, workers), func(t *testing.T) {
					before := runtime.NumGoroutine()
					var log bytes.Buffer
					h := &scoresServer{store: store, workers: workers, partSeries: 100,
						logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
					w := &failingWriter{discardWriter: discardWriter{header: http.Header{}}, limit: limit}
					done := make(chan struct{})
					go func() {
						defer close(done)
						h.ServeHTTP(w, req)
					}()
					select {
					case <-done:
					case <-time.After(10 * time.Second):
						t.Fatal("the handler did not return")
					}
					require.Zero(t, w.writesAfter)
					require.Contains(t, log.String(), `level=DEBUG msg="Writing /scores" err="client gone"`)
					// The handler's goroutine and its workers end (require.Eventually would
					// count its own goroutine).
					deadline := time.Now().Add(5 * time.Second)
					for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					require.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines left behind")
				})
			}
		}
	}
}

// blockingWriter is a client that reads nothing until released: its first Write blocks.
type blockingWriter struct {
	bytes.Buffer
	entered, release chan struct{}
	once             sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.entered)
		<-w.release
	})
	return w.Buffer.Write(p)
}

// TestScoresBoundedAhead: while the client reads nothing, the workers other than the one
// writing format parts up to partsAheadPerWorker per worker from the one being written, then
// wait; released, the response is whole.
func TestScoresBoundedAhead(t *testing.T) {
	store := scoresStore(t, 5000)
	var want bytes.Buffer
	require.NoError(t, store.WriteScores(&want))
	for _, workers := range []int{1, 2, 7} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
			pw := newPartWriter(w, store.Scrape(50), workers, false)
			require.Len(t, pw.ready, partsAheadPerWorker*workers)
			require.Greater(t, pw.sc.Parts(), 2*len(pw.ready))
			done := make(chan error, 1)
			go func() { done <- pw.run() }()
			<-w.entered
			taken := func() int {
				pw.mu.Lock()
				defer pw.mu.Unlock()
				require.Zero(t, pw.next, "the first part is still being written")
				return pw.taken
			}
			bound := len(pw.ready)
			if workers == 1 {
				bound = 1 // the one worker is writing
			}
			deadline := time.Now().Add(5 * time.Second)
			for taken() < bound && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // time to take more, if they would
			require.Equal(t, bound, taken())
			close(w.release)
			require.NoError(t, <-done)
			require.Equal(t, want.String(), w.String())
		})
	}
}

// TestScoresWhileAppending: gzipped scrapes, formatted on several workers, beside ingestion of
// new samples and new series (go test -race checks the locking).
func TestScoresWhileAppending(t *testing.T) {
	store := scoresStore(t, 2000)
	// The same 2000 series and 1000 more, appended again and again during the scrapes.
	extra := []*batch.Batch{seriesBatch(0, 1000), seriesBatch(1000, 2000), seriesBatch(2000, 3000)}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			for _, b := range extra {
				select {
				case <-done:
					return
				default:
				}
				for i := range b.Series {
					b.Series[i].Samples[0].T += 1000
				}
				if err := store.Append(b); err != nil {
					panic(err)
				}
			}
		}
	})
	defer wg.Wait()
	defer close(done)
	h := &scoresServer{store: store, workers: 3, partSeries: 100}
	for range 8 {
		out := scrape(t, h, "gzip")
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(strings.NewReader(out))
		require.NoError(t, err)
		require.Len(t, mfs, 6)
		for name, mf := range mfs {
			require.GreaterOrEqual(t, len(mf.GetMetric()), 2000, name)
			require.LessOrEqual(t, len(mf.GetMetric()), 3000, name)
		}
	}
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
			h.ServeHTTP(&discardWriter{header: http.Header{}}, req) // warm the pools
			var plain discardWriter
			plain.header = http.Header{}
			h.ServeHTTP(&plain, httptest.NewRequest(http.MethodGet, "/scores", nil))
			b.SetBytes(plain.n)
			b.ReportAllocs()
			runtime.GC() // the garbage of building the store is not the scrape's CPU
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
