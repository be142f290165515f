package remotewrite

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

type matchAll struct{}

func (matchAll) Match([]batch.Label) (int, bool) { return 0, true }

// scoringStore is a detector store that scores every series, without a learning period.
func scoringStore() *detector.Store {
	set := model.DefaultSettings()
	set.LearningPeriod = time.Minute
	return detector.NewStore(detector.Options{Rules: matchAll{}, Settings: []model.Settings{set}}, nil)
}

// inputBatch is n gauge series of metric m, one sample each at t.
func inputBatch(m string, n int, t int64, v float64, extra ...string) *batch.Batch {
	b := &batch.Batch{}
	for i := range n {
		ls := []batch.Label{{Name: "__name__", Value: m}, {Name: "i", Value: fmt.Sprint(i)}}
		for j := 0; j+1 < len(extra); j += 2 {
			ls = append(ls, batch.Label{Name: extra[j], Value: extra[j+1]})
		}
		sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
		b.Series = append(b.Series, batch.Series{Labels: ls, Type: batch.Gauge, Samples: []batch.Sample{{T: t, V: v}}})
	}
	return b
}

// receiver is a remote-write endpoint made of this package's own handler, with a hook that may
// answer instead of it.
type receiver struct {
	*httptest.Server
	app      *recordingAppender
	requests atomic.Int64
	mu       sync.Mutex
	hook     func(w http.ResponseWriter, r *http.Request) bool // true: answered
	headers  []http.Header
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{app: &recordingAppender{}}
	h := NewHandler(Options{}, rc.app, nil, nil)
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.requests.Add(1)
		rc.mu.Lock()
		hook := rc.hook
		rc.headers = append(rc.headers, r.Header.Clone())
		rc.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) setHook(f func(w http.ResponseWriter, r *http.Request) bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.hook = f
}

func (rc *receiver) series() []rec {
	rc.app.mu.Lock()
	defer rc.app.mu.Unlock()
	return append([]rec(nil), rc.app.series...)
}

func fastOptions(urls ...string) SenderOptions {
	return SenderOptions{
		URLs: urls, BatchSendDeadline: 20 * time.Millisecond, MinBackoff: time.Millisecond,
		MaxBackoff: 10 * time.Millisecond, Shards: 2,
	}
}

func newTestSenders(t *testing.T, opts SenderOptions) (*Senders, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := NewSenders(opts, reg, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s, reg
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func outMetric(t *testing.T, reg *prometheus.Registry, name, url string) float64 {
	t.Helper()
	return metricValue(t, reg, "anomaly_exporter_remote_write_out_"+name, map[string]string{"url": url})
}

// The sender's requests, decoded by this package's receiver in both protocols, carry exactly
// the series of /scores with the input sample's timestamp.
func TestSenderRoundTrip(t *testing.T) {
	for _, msg := range []string{MessageV1, MessageV2} {
		t.Run(msg, func(t *testing.T) {
			rc := newReceiver(t)
			opts := fastOptions(rc.URL + "/api/v1/write")
			opts.ProtobufMessage = msg
			s, reg := newTestSenders(t, opts)
			store := scoringStore()
			store.SetOutput(s)
			const t0 = 1_700_000_000_000
			require.NoError(t, store.Append(inputBatch("cpu", 3, t0, 5, "anomaly_metric", "clash", "service.name", "svc")))
			waitFor(t, "18 series", func() bool { return len(rc.series()) == 18 })

			var got []string
			for _, r := range rc.series() {
				require.Len(t, r.Samples, 1)
				require.Equal(t, int64(t0), r.Samples[0].T, "stamped with the input's timestamp")
				if msg == MessageV2 {
					require.Equal(t, batch.Gauge, r.Type)
				}
				got = append(got, fmt.Sprintf("%s %v", r.Labels, math.Float64frombits(r.Samples[0].Bits)))
			}
			sort.Strings(got)
			require.Contains(t, got, `{__name__="anomaly_value", anomaly_metric="cpu", exported_anomaly_metric="clash", i="0", service_name="svc"} 5`)
			require.Contains(t, got, `{__name__="anomaly_learning", anomaly_metric="cpu", exported_anomaly_metric="clash", i="2", service_name="svc"} 1`)
			// The receiver records a request before it answers, and the sender counts it after
			// the answer: wait for the count, which a loaded machine may delay.
			waitFor(t, "18 samples counted as sent", func() bool {
				return outMetric(t, reg, "samples_sent_total", rc.URL+"/api/v1/write") == 18
			})
			require.Zero(t, outMetric(t, reg, "queue_length", rc.URL+"/api/v1/write"))

			rc.mu.Lock()
			h := rc.headers[0]
			rc.mu.Unlock()
			require.Equal(t, "snappy", h.Get("Content-Encoding"))
			require.True(t, strings.HasPrefix(h.Get("User-Agent"), "anomaly_exporter"))
			if msg == MessageV2 {
				require.Equal(t, "2.0.0", h.Get("X-Prometheus-Remote-Write-Version"))
			} else {
				require.Equal(t, "0.1.0", h.Get("X-Prometheus-Remote-Write-Version"))
			}
		})
	}
}

// The RW 1.0 encoding is what Prometheus's own protobuf types read: sorted labels, one sample.
func TestSenderEncodingV1Prompb(t *testing.T) {
	var points []detector.Point
	store := scoringStore()
	store.SetOutput(outputFunc(func(ps []detector.Point) { points = append(points, ps...) }))
	require.NoError(t, store.Append(inputBatch("m", 2, 1000, 1, "Zone", "up", "job", "j")))
	stale := math.Float64frombits(value.StaleNaN)
	require.NoError(t, store.Append(&batch.Batch{Series: []batch.Series{{
		Labels: inputBatch("m", 1, 0, 0, "Zone", "up", "job", "j").Series[0].Labels, Type: batch.Gauge,
		Samples: []batch.Sample{{T: 2000, V: stale}},
	}}}))
	require.Len(t, points, 3)

	enc := newEncoder(MessageV1)
	raw, err := snappy.Decode(nil, enc.encode(points))
	require.NoError(t, err)
	var req prompb.WriteRequest
	require.NoError(t, req.Unmarshal(raw))
	require.Len(t, req.Timeseries, 3*detector.NumFamilies)
	for i, ts := range req.Timeseries {
		names := make([]string, len(ts.Labels))
		for j, l := range ts.Labels {
			names[j] = l.Name
		}
		require.True(t, sort.StringsAreSorted(names), "labels sorted: %v", names)
		require.Equal(t, []string{"Zone", "__name__", "anomaly_metric", "i", "job"}, names)
		require.Equal(t, detector.Families()[i%detector.NumFamilies].Name, ts.Labels[1].Value)
		require.Len(t, ts.Samples, 1)
		if i >= 2*detector.NumFamilies {
			require.True(t, value.IsStaleNaN(ts.Samples[0].Value), "the ended series' outputs end with stale markers")
			require.Equal(t, int64(2000), ts.Samples[0].Timestamp)
		} else {
			require.Equal(t, int64(1000), ts.Samples[0].Timestamp)
		}
	}
}

type outputFunc func([]detector.Point)

func (f outputFunc) WritePoints(ps []detector.Point) { f(ps) }

// 5xx, 429 and network errors are retried until they succeed; other 4xx fail at once.
func TestSenderRetries(t *testing.T) {
	rc := newReceiver(t)
	u := rc.URL + "/w"
	var fails atomic.Int64
	fails.Store(3)
	rc.setHook(func(w http.ResponseWriter, _ *http.Request) bool {
		switch fails.Add(-1) {
		case 2:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 1:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case 0:
			http.Error(w, "oops", http.StatusInternalServerError)
		default:
			return false
		}
		return true
	})
	opts := fastOptions(u)
	opts.Shards = 1
	s, reg := newTestSenders(t, opts)
	store := scoringStore()
	store.SetOutput(s)
	require.NoError(t, store.Append(inputBatch("m", 1, 1000, 1)))
	waitFor(t, "sent after retries", func() bool { return outMetric(t, reg, "samples_sent_total", u) == 6 })
	require.Equal(t, 3.0, outMetric(t, reg, "retries_total", u))
	require.Equal(t, int64(4), rc.requests.Load())
	require.Len(t, rc.series(), 6)

	// A 400 is final: counted as failed, never retried.
	rc.setHook(func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "out of order sample", http.StatusBadRequest)
		return true
	})
	require.NoError(t, store.Append(inputBatch("m", 1, 2000, 1)))
	waitFor(t, "failed", func() bool { return outMetric(t, reg, "samples_failed_total", u) == 6 })
	require.Equal(t, int64(5), rc.requests.Load())
	require.Equal(t, 3.0, outMetric(t, reg, "retries_total", u))

	// A receiver that is not there: retried.
	rc.Close()
	require.NoError(t, store.Append(inputBatch("m", 1, 3000, 1)))
	waitFor(t, "network errors retried", func() bool { return outMetric(t, reg, "retries_total", u) >= 5 })
}

// Requests carry at most MaxSamplesPerSend samples; a partial batch goes out after the deadline.
func TestSenderBatching(t *testing.T) {
	rc := newReceiver(t)
	var sizes []int
	var mu sync.Mutex
	rc.setHook(func(_ http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		sizes = append(sizes, int(r.ContentLength))
		mu.Unlock()
		return false
	})
	opts := fastOptions(rc.URL)
	opts.Shards = 1
	opts.MaxSamplesPerSend = 13 // two points
	opts.BatchSendDeadline = 200 * time.Millisecond
	s, reg := newTestSenders(t, opts)
	store := scoringStore()
	store.SetOutput(s)
	start := time.Now()
	require.NoError(t, store.Append(inputBatch("m", 5, 1000, 1)))
	waitFor(t, "all sent", func() bool { return outMetric(t, reg, "samples_sent_total", rc.URL) == 30 })
	require.Equal(t, int64(3), rc.requests.Load(), "2+2 at once, the last one after the deadline")
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	counts := map[string]int{}
	for _, r := range rc.series() {
		counts[r.Labels[:strings.Index(r.Labels, ",")]]++
	}
	require.Equal(t, 5, counts[`{__name__="anomaly_score"`])
}

// A full queue drops the oldest points, counts them, and sends the newest once the receiver
// is back.
func TestSenderQueueDropsOldest(t *testing.T) {
	rc := newReceiver(t)
	block := make(chan struct{})
	rc.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		<-block
		return false
	})
	opts := fastOptions(rc.URL)
	opts.Shards = 1
	opts.QueueCapacity = 3 * detector.NumFamilies
	opts.MaxSamplesPerSend = detector.NumFamilies
	s, reg := newTestSenders(t, opts)
	store := scoringStore()
	store.SetOutput(s)
	require.NoError(t, store.Append(inputBatch("m", 1, 1000, 1))) // taken, blocked in flight
	waitFor(t, "in flight", func() bool { return rc.requests.Load() == 1 })
	for i := range 10 {
		require.NoError(t, store.Append(inputBatch("m", 1, int64(2000+1000*i), 1)))
	}
	require.Equal(t, 7.0*detector.NumFamilies, outMetric(t, reg, "samples_dropped_total", rc.URL))
	require.Equal(t, 3.0*detector.NumFamilies, outMetric(t, reg, "queue_length", rc.URL))
	close(block)
	waitFor(t, "drained", func() bool { return outMetric(t, reg, "samples_sent_total", rc.URL) == 4*detector.NumFamilies })
	var ts []int64
	for _, r := range rc.series() {
		if strings.HasPrefix(r.Labels, `{__name__="anomaly_score"`) {
			ts = append(ts, r.Samples[0].T)
		}
	}
	require.Equal(t, []int64{1000, 9000, 10000, 11000}, ts, "the first, then the newest three in order")
	require.Zero(t, outMetric(t, reg, "queue_length", rc.URL))
}

// Close sends what is queued without waiting for the deadline; if the receiver does not take it
// in time, the rest is counted and Close returns.
func TestSenderCloseFlushes(t *testing.T) {
	rc := newReceiver(t)
	opts := fastOptions(rc.URL)
	opts.BatchSendDeadline = time.Hour
	s, err := NewSenders(opts, prometheus.NewRegistry(), nil)
	require.NoError(t, err)
	store := scoringStore()
	store.SetOutput(s)
	require.NoError(t, store.Append(inputBatch("m", 4, 1000, 1)))
	time.Sleep(50 * time.Millisecond)
	require.Empty(t, rc.series(), "waits for the deadline")
	require.NoError(t, s.Close(context.Background()))
	require.Len(t, rc.series(), 4*detector.NumFamilies)

	// After Close, points are dropped and counted.
	s.WritePoints(make([]detector.Point, 1))

	// A receiver that never accepts: Close gives up when its context ends.
	rc2 := newReceiver(t)
	rc2.setHook(func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	reg := prometheus.NewRegistry()
	opts = fastOptions(rc2.URL)
	opts.Shards = 1
	opts.MaxSamplesPerSend = detector.NumFamilies
	s2, err := NewSenders(opts, reg, nil)
	require.NoError(t, err)
	store.SetOutput(s2)
	require.NoError(t, store.Append(inputBatch("m", 3, 2000, 1)))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s2.Close(ctx), context.DeadlineExceeded)
	require.Equal(t, 1.0*detector.NumFamilies, outMetric(t, reg, "samples_failed_total", rc2.URL), "the batch being retried")
	require.Equal(t, 2.0*detector.NumFamilies, outMetric(t, reg, "samples_dropped_total", rc2.URL), "the batches still queued")
	require.Zero(t, outMetric(t, reg, "queue_length", rc2.URL))
}

// Every URL gets every sample; authentication and headers come from the HTTP client config.
func TestSenderURLsAndAuth(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	b.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pass" || r.Header.Get("X-Scope-OrgID") != "team-a" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return true
		}
		return false
	})
	opts := fastOptions(a.URL, b.URL)
	opts.HTTPClientConfig = config.HTTPClientConfig{
		BasicAuth:   &config.BasicAuth{Username: "user", Password: "pass"},
		HTTPHeaders: &config.Headers{Headers: map[string]config.Header{"X-Scope-OrgID": {Values: []string{"team-a"}}}},
	}
	s, reg := newTestSenders(t, opts)
	store := scoringStore()
	store.SetOutput(s)
	require.NoError(t, store.Append(inputBatch("m", 2, 1000, 1)))
	waitFor(t, "both", func() bool { return len(a.series()) == 12 && len(b.series()) == 12 })
	require.Zero(t, outMetric(t, reg, "samples_failed_total", b.URL))
}

func TestSenderOptionsValidation(t *testing.T) {
	for _, o := range []SenderOptions{
		{URLs: []string{"localhost:9090/api/v1/write"}},
		{URLs: []string{"ftp://x/y"}},
		{URLs: []string{"http://a/w", "http://a/w"}},
		{URLs: []string{"http://a/w"}, ProtobufMessage: "v3"},
		{URLs: []string{"http://a/w"}, HTTPClientConfig: config.HTTPClientConfig{BearerToken: "x", BasicAuth: &config.BasicAuth{Username: "u"}}},
	} {
		_, err := NewSenders(o, nil, nil)
		require.Error(t, err, "%+v", o)
	}
	// The URL label never shows a password.
	reg := prometheus.NewRegistry()
	s, err := NewSenders(SenderOptions{URLs: []string{"http://u:secret@127.0.0.1:1/w"}}, reg, nil)
	require.NoError(t, err)
	s.WritePoints(nil)
	require.NoError(t, s.Close(context.Background()))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				require.NotContains(t, l.GetValue(), "secret")
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	require.Equal(t, 3*time.Second, parseRetryAfter("3"))
	require.Zero(t, parseRetryAfter(""))
	require.Zero(t, parseRetryAfter("soon"))
	d := parseRetryAfter(time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat))
	require.InDelta(t, 10*time.Second, d, float64(2*time.Second))
}

// The points of one series always go to the same shard, so they are sent in order.
func TestRingShardsBySeries(t *testing.T) {
	var points []detector.Point
	store := scoringStore()
	store.SetOutput(outputFunc(func(ps []detector.Point) { points = append(points, ps...) }))
	for i := range 3 {
		require.NoError(t, store.Append(inputBatch("m", 20, int64(1000*(i+1)), 1)))
	}
	const n = 4
	rings := make([]*ring, n)
	total := 0
	for k := range rings {
		rings[k] = newRing(100, 10)
		q, _ := rings[k].push(points, uint64(k), n)
		total += q
	}
	require.Equal(t, len(points), total)
	for _, r := range rings {
		last := map[uint64]int64{}
		for _, p := range r.take(nil, 100) {
			require.Greater(t, p.T, last[p.Hash()])
			last[p.Hash()] = p.T
		}
	}
}

// BenchmarkSenderEncode is the encoding of one request of 1000 points (6000 samples) with 8
// labels each, reported per output sample.
func BenchmarkSenderEncode(b *testing.B) {
	var points []detector.Point
	store := scoringStore()
	store.SetOutput(outputFunc(func(ps []detector.Point) { points = append(points, ps...) }))
	_ = store.Append(inputBatch("http_requests_in_flight", 1000, 1_700_000_000_000, 3, "container", "app", "instance", "10.0.0.1:8080", "job", "api", "namespace", "ns", "pod", "api-7f9c", "status", "200"))
	for _, msg := range []string{MessageV1, MessageV2} {
		b.Run(msg, func(b *testing.B) {
			enc := newEncoder(msg)
			b.ReportAllocs()
			for b.Loop() {
				_ = enc.encode(points)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(points)*detector.NumFamilies), "ns/sample")
		})
	}
}

// Under concurrent Appends and a Close in the middle, every output sample is accounted for once:
// sent (and received), failed or dropped; nothing stays queued.
func TestSenderAccounting(t *testing.T) {
	rc := newReceiver(t)
	var n atomic.Int64
	rc.setHook(func(w http.ResponseWriter, _ *http.Request) bool {
		if n.Add(1)%5 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	reg := prometheus.NewRegistry()
	opts := fastOptions(rc.URL)
	opts.QueueCapacity = 50 * detector.NumFamilies
	opts.MaxSamplesPerSend = 8 * detector.NumFamilies
	s, err := NewSenders(opts, reg, nil)
	require.NoError(t, err)
	var produced atomic.Int64
	store := scoringStore()
	store.SetOutput(outputFunc(func(ps []detector.Point) {
		produced.Add(int64(len(ps) * detector.NumFamilies))
		s.WritePoints(ps)
	}))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				_ = store.Append(inputBatch(fmt.Sprintf("m%d", g), 5, int64(1000*(i+1)), float64(i)))
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = s.Close(ctx)
	wg.Wait()
	sent := outMetric(t, reg, "samples_sent_total", rc.URL)
	failed := outMetric(t, reg, "samples_failed_total", rc.URL)
	dropped := outMetric(t, reg, "samples_dropped_total", rc.URL)
	require.Positive(t, sent)
	require.Equal(t, float64(produced.Load()), sent+failed+dropped, "sent %v failed %v dropped %v", sent, failed, dropped)
	// A request cut off by the end of the flush may have arrived all the same: counted failed.
	got := float64(len(rc.series()))
	require.True(t, got >= sent && got <= sent+failed, "received %v, sent %v, failed %v", got, sent, failed)
	require.Zero(t, outMetric(t, reg, "queue_length", rc.URL))
}
