package remotewrite

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/config"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// This file sends hostile and broken input through the receiver into a real detector, one kind at
// a time, each followed by a healthy request: every kind gets its answer (204 with the samples
// counted as skipped, or 400/405/413/415 with a one-line reason), is counted by reason, and
// leaves the process as it was: the healthy series keeps being scored.

// serverLimits are the receive limits of the server's flag defaults, except a smaller body limit,
// so that the test stays small.
var serverLimits = Options{
	MaxRequestBytes:     1 << 20,
	MaxLabelsPerSeries:  128,
	MaxLabelNameLength:  1024,
	MaxLabelValueLength: 4096,
	MaxSeriesPerRequest: 1000,
}

// rig is a handler in front of a store, with the server's default configuration and sample window.
type rig struct {
	reg   *prometheus.Registry
	store *detector.Store
	h     http.Handler
}

func newRig(t *testing.T, opts Options) *rig {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	cfg := config.Default()
	settings := make([]model.Settings, len(cfg.Rules))
	for i := range cfg.Rules {
		settings[i] = cfg.Rules[i].Settings
	}
	store := detector.NewStore(detector.Options{Rules: cfg, Settings: settings, MaxSeries: 100}, reg)
	store.SetSampleWindow(30*24*time.Hour, 10*time.Minute)
	return &rig{reg: reg, store: store, h: NewHandler(opts, store, reg, nil)}
}

// post sends body with the content type (ctV1 when empty) and returns the response.
func (r *rig) post(body io.Reader, contentType string, contentLength int64) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/write", body)
	req.ContentLength = contentLength
	if contentType == "" {
		contentType = ctV1
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", "snappy")
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	return w
}

func (r *rig) value(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return metricValue(t, r.reg, name, l)
}

// counter names a counter of the rig: metric name and, unless empty, one label pair.
type counter struct{ name, label, value string }

func (c counter) kv() []string {
	if c.label == "" {
		return nil
	}
	return []string{c.label, c.value}
}

func rejected(reason string) counter {
	return counter{"anomaly_exporter_remote_write_requests_rejected_total", "reason", reason}
}

func samplesRejected(reason string) counter {
	return counter{"anomaly_exporter_remote_write_samples_rejected_total", "reason", reason}
}

func skipped(reason string) counter {
	return counter{"anomaly_exporter_detector_samples_skipped_total", "reason", reason}
}

var staleMarkers = counter{name: "anomaly_exporter_detector_stale_markers_total"}

// manyLabels is a series with n labels besides __name__, sent in reverse order.
func manyLabels(n int) ts {
	s := ts{labels: []string{"__name__", "wide"}}
	for i := n; i > 0; i-- {
		s.labels = append(s.labels, fmt.Sprintf("l%05d", i), "v")
	}
	s.samples = []batch.Sample{smp(time.Now().UnixMilli(), 1)}
	return s
}

// countingReader yields n bytes of a repeated pattern and counts what was read of it.
type countingReader struct{ n, read int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n-c.read)
	for i := range p[:k] {
		p[i] = byte(i)
	}
	c.read += k
	return int(k), nil
}

func TestHostileInput(t *testing.T) {
	now := time.Now().UnixMilli()
	at := func(d time.Duration) int64 { return now + d.Milliseconds() }
	stale := math.Float64frombits(value.StaleNaN)
	oneMB := strings.Repeat("x", 1_000_000)

	// A snappy body whose declared decoded length is over the limit, and which really does
	// decode to that much: it is refused from its header, before anything is decoded.
	bomb := snappy.Encode(nil, make([]byte, 4<<20))
	require.Less(t, len(bomb), 1<<20)
	// A header that under-declares: decoding stops at the declared length.
	liar := append([]byte{0x10}, snappy.Encode(nil, bytes.Repeat([]byte("ab"), 100))[2:]...)

	cases := []struct {
		name        string
		body        []byte
		reader      func() (io.Reader, int64) // instead of body: a reader and its Content-Length (-1: chunked)
		contentType string
		method      string
		// prepare sends what the case needs in the store first (a series' earlier samples).
		prepare []ts

		wantCode int
		wantBody string
		want     map[counter]float64 // increase of each counter
	}{
		{
			name: "corrupt snappy", body: []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01},
			wantCode: 400, wantBody: "snappy: snappy: corrupt input",
			want: map[counter]float64{rejected("corrupt_snappy"): 1},
		},
		{
			name: "snappy length header lies low", body: liar,
			wantCode: 400, wantBody: "snappy:",
			want: map[counter]float64{rejected("corrupt_snappy"): 1},
		},
		{
			name:     "truncated protobuf",
			body:     snappy.Encode(nil, marshal(t, v1Message(nil, series("__name__", "up", "job", "x").with(smp(now, 1))))[:17]),
			wantCode: 400, wantBody: "decoding prometheus.WriteRequest: malformed request",
			want: map[counter]float64{rejected("malformed_protobuf"): 1},
		},
		{
			name: "garbage protobuf", body: snappy.Encode(nil, []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff garbage")),
			wantCode: 400, wantBody: "malformed request",
			want: map[counter]float64{rejected("malformed_protobuf"): 1},
		},
		{
			name: "garbage protobuf v2", contentType: ctV2, body: snappy.Encode(nil, []byte{0x22, 0x05, 'a'}),
			wantCode: 400, wantBody: "decoding io.prometheus.write.v2.Request: malformed request",
			want: map[counter]float64{rejected("malformed_protobuf"): 1},
		},
		{
			name: "body over the limit, by Content-Length", reader: func() (io.Reader, int64) {
				return &countingReader{n: 8 << 20}, 8 << 20
			},
			wantCode: 413, wantBody: "request body of 8388608 bytes is over the limit of 1048576 bytes",
			want: map[counter]float64{rejected("body_too_large"): 1},
		},
		{
			name: "body over the limit, chunked", reader: func() (io.Reader, int64) {
				return &countingReader{n: 1 << 30}, -1 // 1 GiB: the test would run out of time if it were read
			},
			wantCode: 413, wantBody: "request body is over the limit of 1048576 bytes",
			want: map[counter]float64{rejected("body_too_large"): 1},
		},
		{
			name: "decoded-length bomb", body: bomb,
			wantCode: 413, wantBody: "decoded body of 4194304 bytes is over the limit of 1048576 bytes",
			want: map[counter]float64{rejected("decoded_too_large"): 1},
		},
		{
			name: "decoded length claims 4 GiB", body: []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00},
			wantCode: 413, wantBody: "decoded body of 4294967295 bytes",
			want: map[counter]float64{rejected("decoded_too_large"): 1},
		},
		{
			name: "series with 10k labels", body: v1Body(t, nil, manyLabels(10_000)),
			wantCode: 400, wantBody: `rejected 1 of 1 series (1 samples): too many labels in series of metric "wide"`,
			want: map[counter]float64{samplesRejected("too_many_labels"): 1, rejected("invalid_series"): 1},
		},
		{
			name: "series with 10k labels, RW 2.0", contentType: ctV2, body: v2Body(t, manyLabels(10_000)),
			wantCode: 400, wantBody: "too many labels",
			want: map[counter]float64{samplesRejected("too_many_labels"): 1},
		},
		{
			name: "1 MB label value", body: v1Body(t, nil, series("__name__", "big", "job", oneMB).with(smp(now, 1))),
			wantCode: 400, wantBody: `label value too long "job" in series of metric "big"`,
			want: map[counter]float64{samplesRejected("label_value_too_long"): 1},
		},
		{
			name: "1 MB label name", body: v1Body(t, nil, series("__name__", "big", oneMB[:5000], "x").with(smp(now, 1))),
			wantCode: 400, wantBody: "label name too long",
			want: map[counter]float64{samplesRejected("label_name_too_long"): 1},
		},
		{
			name: "empty label name", body: v1Body(t, nil, series("__name__", "bad", "", "x").with(smp(now, 1), smp(now+1, 2))),
			wantCode: 400, wantBody: "empty label name",
			want: map[counter]float64{samplesRejected("empty_label_name"): 2},
		},
		{
			name: "duplicate label name", body: v1Body(t, nil, series("__name__", "bad", "job", "a", "job", "b").with(smp(now, 1))),
			wantCode: 400, wantBody: `duplicate label name "job"`,
			want: map[counter]float64{samplesRejected("duplicate_label_name"): 1},
		},
		{
			name: "missing metric name", body: v1Body(t, nil, series("job", "a").with(smp(now, 1))),
			wantCode: 400, wantBody: "missing metric name",
			want: map[counter]float64{samplesRejected("missing_metric_name"): 1},
		},
		{
			name: "invalid UTF-8", body: v1Body(t, nil, series("__name__", "bad", "job", "a\xffb").with(smp(now, 1))),
			wantCode: 400, wantBody: `invalid utf8 "job"`,
			want: map[counter]float64{samplesRejected("invalid_utf8"): 1},
		},
		{
			name: "invalid UTF-8, RW 2.0", contentType: ctV2, body: v2Body(t, series("__name__", "bad\xc3").with(smp(now, 1))),
			wantCode: 400, wantBody: "invalid utf8",
			want: map[counter]float64{samplesRejected("invalid_utf8"): 1},
		},
		{
			name: "too many series in one request", body: v1Body(t, nil, realisticSeries(1001)...),
			wantCode: 400, wantBody: "too many series: 1001 series, the limit is 1000",
			want: map[counter]float64{rejected("too_many_series"): 1, samplesRejected("too_many_series"): 1001},
		},
		{
			name: "RW 2.0 label reference out of range", contentType: ctV2,
			body:     v2Raw(t, []string{"", "__name__", "a"}, []uint32{1, 1 << 31}, writev2.Metadata{}),
			wantCode: 400, wantBody: "symbol reference 2147483648 out of range (3 symbols)",
			want: map[counter]float64{rejected("malformed_protobuf"): 1},
		},
		{
			name: "RW 2.0 unit reference out of range", contentType: ctV2,
			body:     v2Raw(t, []string{"", "__name__", "a"}, []uint32{1, 2}, writev2.Metadata{UnitRef: 3}),
			wantCode: 400, wantBody: "symbol reference 3 out of range",
			want: map[counter]float64{rejected("malformed_protobuf"): 1},
		},
		{
			name: "unsupported content type", contentType: "application/json", body: []byte("{}"),
			wantCode: 415, wantBody: `unsupported Content-Type "application/json"`,
			want: map[counter]float64{rejected("unsupported_media_type"): 1},
		},
		{
			name: "GET", method: http.MethodGet,
			wantCode: 405, wantBody: "method GET not allowed",
			want: map[counter]float64{rejected("method_not_allowed"): 1},
		},

		// Accepted, and skipped by the detector with a reason.
		{
			name:     "unsorted labels are sorted and scored",
			body:     v1Body(t, nil, series("zone", "a", "job", "x", "__name__", "unsorted").with(smp(now, 1))),
			wantCode: 204,
			want:     map[counter]float64{{name: "anomaly_exporter_detector_samples_scored_total"}: 1},
		},
		{
			name:     "NaN, +Inf, -Inf",
			body:     v1Body(t, nil, series("__name__", "nonfinite").with(smp(now, math.NaN()), smp(now+1, math.Inf(1)), smp(now+2, math.Inf(-1)))),
			wantCode: 204,
			want:     map[counter]float64{skipped("non_finite"): 3},
		},
		{
			name:     "stale marker",
			prepare:  []ts{series("__name__", "ending").with(smp(now-1000, 5))},
			body:     v1Body(t, nil, series("__name__", "ending").with(smp(now, stale))),
			wantCode: 204,
			want:     map[counter]float64{staleMarkers: 1},
		},
		{
			name:     "timestamp far in the future",
			body:     v1Body(t, nil, series("__name__", "future").with(smp(at(time.Hour), 1), smp(at(100*365*24*time.Hour), 1))),
			wantCode: 204,
			want:     map[counter]float64{skipped("too_far_in_future"): 2},
		},
		{
			name:     "timestamp in seconds, not milliseconds",
			body:     v1Body(t, nil, series("__name__", "seconds").with(smp(now/1000, 1), smp(now/1000+15, 2))),
			wantCode: 204,
			want:     map[counter]float64{skipped("too_old"): 2},
		},
		{
			name:     "timestamp before 1970",
			body:     v1Body(t, nil, series("__name__", "negative").with(smp(-1, 1), smp(math.MinInt64, 2))),
			wantCode: 204,
			want:     map[counter]float64{skipped("too_old"): 2},
		},
		{
			name:     "out of order and duplicate",
			prepare:  []ts{series("__name__", "ooo").with(smp(now-1000, 1))},
			body:     v1Body(t, nil, series("__name__", "ooo").with(smp(now-2000, 2), smp(now-1000, 3), smp(now, 4), smp(now, 5))),
			wantCode: 204,
			want: map[counter]float64{
				skipped("out_of_order"): 1, skipped("duplicate"): 2,
				{name: "anomaly_exporter_detector_samples_scored_total"}: 1,
			},
		},
		{
			name:     "counter going backwards",
			prepare:  []ts{series("__name__", "requests_total").with(smp(now-2000, 100), smp(now-1000, 110))},
			body:     v1Body(t, nil, series("__name__", "requests_total").with(smp(now, 3))),
			wantCode: 204,
			want:     map[counter]float64{skipped("counter_reset"): 1},
		},
	}

	r := newRig(t, serverLimits)
	canary := labels.FromStrings("__name__", "canary", "job", "ok")
	canaryT := now - 10*time.Minute.Milliseconds()
	sendCanary := func(t *testing.T) {
		t.Helper()
		canaryT += 1000
		scored := r.value(t, "anomaly_exporter_detector_samples_scored_total")
		w := r.post(bytes.NewReader(v1Body(t, nil, series("__name__", "canary", "job", "ok").with(smp(canaryT, float64(canaryT%7))))), "", -1)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
		require.Equal(t, scored+1, r.value(t, "anomaly_exporter_detector_samples_scored_total"), "the healthy series is scored")
		_, ok := r.store.Lookup(canary)
		require.True(t, ok)
	}
	sendCanary(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range tc.prepare {
				w := r.post(bytes.NewReader(v1Body(t, nil, s)), "", -1)
				require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
			}
			before := map[counter]float64{}
			for c := range tc.want {
				before[c] = r.value(t, c.name, c.kv()...)
			}
			code := func() float64 {
				var n float64
				for _, p := range []string{"unknown", "1.0", "2.0"} {
					n += r.value(t, "anomaly_exporter_remote_write_requests_total", "protocol", p, "code", strconv.Itoa(tc.wantCode))
				}
				return n
			}
			codes := code()
			var body io.Reader = bytes.NewReader(tc.body)
			length := int64(len(tc.body))
			var cr *countingReader
			if tc.reader != nil {
				body, length = tc.reader()
				cr, _ = body.(*countingReader)
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/api/v1/write", body)
			req.ContentLength = length
			ct := tc.contentType
			if ct == "" {
				ct = ctV1
			}
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Content-Encoding", "snappy")
			w := httptest.NewRecorder()
			r.h.ServeHTTP(w, req)

			require.Equal(t, tc.wantCode, w.Code, w.Body.String())
			if tc.wantCode == http.StatusNoContent {
				require.Empty(t, w.Body.String())
			} else {
				require.Contains(t, w.Body.String(), tc.wantBody)
				require.Equal(t, 1, strings.Count(w.Body.String(), "\n"), "the reason is one line")
				require.Less(t, w.Body.Len(), 1024, "the reason is short, whatever the input")
			}
			require.Equal(t, codes+1, code())
			for c, d := range tc.want {
				require.Equal(t, d, r.value(t, c.name, c.kv()...)-before[c], "%s%v", c.name, c.kv())
			}
			if cr != nil {
				require.LessOrEqual(t, cr.read, serverLimits.MaxRequestBytes+1, "read no further than the limit")
			}
			sendCanary(t)
		})
	}
	require.Equal(t, 0.0, r.value(t, "anomaly_exporter_remote_write_requests_total", "code", "500"))
}

// TestHandlerWideSeriesWithoutLimits: with every label limit off, a series of 10k labels sent in
// reverse order and one with a 1 MB value are sorted, stored and scored like any other.
func TestHandlerWideSeriesWithoutLimits(t *testing.T) {
	r := newRig(t, Options{})
	now := time.Now().UnixMilli()
	w := r.post(bytes.NewReader(v1Body(t, nil, manyLabels(10_000), series("__name__", "big", "job", strings.Repeat("x", 1<<20)).with(smp(now, 1)))), "", -1)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, 2.0, r.value(t, "anomaly_exporter_detector_samples_scored_total"))
	require.Equal(t, 2, r.store.Len())
}

// TestHandlerMemoryLimit: above the heap high-water mark, requests are shed with 503 and
// Retry-After before their body is read; below it they are served again.
func TestHandlerMemoryLimit(t *testing.T) {
	for _, ct := range []string{ctV1, ctV2} {
		t.Run(ct, func(t *testing.T) {
			var heap uint64 = 100 << 20
			reg := prometheus.NewPedanticRegistry()
			app := &recordingAppender{}
			h := NewHandler(Options{MemoryLimit: 200 << 20, heapBytes: func() uint64 { return heap }}, app, reg, nil)
			body := v1Body(t, nil, series("__name__", "up"))
			if ct == ctV2 {
				body = v2Body(t, series("__name__", "up"))
			}
			post := func() (*httptest.ResponseRecorder, *bytes.Reader) {
				br := bytes.NewReader(body)
				req := httptest.NewRequest(http.MethodPost, "/api/v1/write", br)
				req.Header.Set("Content-Type", ct)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w, br
			}
			w, _ := post()
			require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())

			heap = 300 << 20
			w, br := post()
			require.Equal(t, http.StatusServiceUnavailable, w.Code)
			require.Equal(t, "1", w.Header().Get("Retry-After"))
			require.Contains(t, w.Body.String(), "heap of 314572800 bytes is over the memory limit of 209715200 bytes, retry later")
			require.Equal(t, len(body), br.Len(), "the body is not read")
			if ct == ctV2 {
				require.Equal(t, "0", w.Header().Get(hdrSamples))
			}
			require.Equal(t, 1, app.calls)
			require.Equal(t, 1.0, metricValue(t, reg, "anomaly_exporter_remote_write_requests_shed_total", map[string]string{"reason": "memory"}))
			proto := map[string]string{ctV1: "1.0", ctV2: "2.0"}[ct]
			require.Equal(t, 1.0, metricValue(t, reg, "anomaly_exporter_remote_write_requests_total", map[string]string{"protocol": proto, "code": "503"}))

			heap = 150 << 20
			w, _ = post()
			require.Equal(t, http.StatusNoContent, w.Code)
			require.Equal(t, 2, app.calls)
		})
	}
}

// slowBody blocks its reader until released, as a sender whose body trickles in.
type slowBody struct {
	started chan struct{}
	release chan struct{}
	rest    io.Reader
}

func (s *slowBody) Read(p []byte) (int, error) {
	if s.started != nil {
		close(s.started)
		s.started = nil
		<-s.release
	}
	return s.rest.Read(p)
}

// TestHandlerSlowBodyHoldsNoSlot: requests whose bodies have not arrived yet do not take the
// decode slots, so that a sender on a slow link, or one doing it on purpose, keeps nobody out.
func TestHandlerSlowBodyHoldsNoSlot(t *testing.T) {
	const limit = 2
	reg := prometheus.NewPedanticRegistry()
	h := NewHandler(Options{MaxConcurrentRequests: limit}, &recordingAppender{}, reg, nil)
	body := v1Body(t, nil, series("__name__", "up"))
	release := make(chan struct{})
	done := make(chan int, 4*limit)
	for range 4 * limit {
		s := &slowBody{started: make(chan struct{}), release: release, rest: bytes.NewReader(body)}
		started := s.started
		go func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", s))
			done <- w.Code
		}()
		<-started
	}
	for range 10 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	}
	close(release)
	for range 4 * limit {
		require.Contains(t, []int{http.StatusNoContent, http.StatusServiceUnavailable}, <-done)
	}
}
