package remotewrite

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

const (
	ctV1         = "application/x-protobuf"
	ctV1Explicit = "application/x-protobuf;proto=prometheus.WriteRequest"
	ctV2         = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	absent       = "\x00absent" // header value meaning: do not send the header / header must be absent
)

const (
	hdrSamples    = "X-Prometheus-Remote-Write-Samples-Written"
	hdrHistograms = "X-Prometheus-Remote-Write-Histograms-Written"
	hdrExemplars  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// written is the expected X-Prometheus-Remote-Write-*-Written headers.
func written(samples, histograms, exemplars string) map[string]string {
	return map[string]string{hdrSamples: samples, hdrHistograms: histograms, hdrExemplars: exemplars}
}

// noWritten expects the headers to be absent (RW 1.0).
var noWritten = written(absent, absent, absent)

// metricWant is an expected value of a self metric with the given labels.
type metricWant struct {
	name   string
	labels map[string]string
	value  float64
}

func mv(name string, v float64, kv ...string) metricWant {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return metricWant{name: "anomaly_exporter_remote_write_" + name, labels: l, value: v}
}

// metricValue returns a counter's or gauge's value, or a histogram's sample count; 0 if absent.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func v2Raw(tb testing.TB, symbols []string, refs []uint32, meta writev2.Metadata) []byte {
	req := &writev2.Request{Symbols: symbols, Timeseries: []writev2.TimeSeries{{
		LabelsRefs: refs, Samples: []writev2.Sample{{Value: 1, Timestamp: 1000}}, Metadata: meta,
	}}}
	return snappy.Encode(nil, marshal(tb, req))
}

func TestHandler(t *testing.T) {
	stale := math.Float64frombits(value.StaleNaN)
	ok := series("__name__", "up", "instance", "a:1", "job", "node").with(smp(1000, 1), smp(2000, 0))
	okRec := rec{Labels: `{__name__="up", instance="a:1", job="node"}`, Samples: []recSample{rs(1000, 1), rs(2000, 0)}}
	okRecV2 := okRec
	other := series("__name__", "temp", "job", "x")
	otherRec := rec{Labels: `{__name__="temp", job="x"}`, Samples: []recSample{rs(1000, 1)}}
	appErr := errors.New("detector failed")

	// A body that compresses well: small as sent, large once decoded.
	var big []ts
	for range 200 {
		big = append(big, series("__name__", strings.Repeat("a", 200), "job", strings.Repeat("b", 200)))
	}
	bigV1 := v1Body(t, nil, big...)
	bigDecoded, err := snappy.DecodedLen(bigV1)
	require.NoError(t, err)
	require.Less(t, len(bigV1)*4, bigDecoded)

	meta := []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests"},
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "latency_seconds"},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "temp"},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "foo_total"},
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "foo"},
		{Type: prompb.MetricMetadata_SUMMARY, MetricFamilyName: "rpc_seconds"},
	}

	cases := []struct {
		name        string
		method      string
		contentType string // default ctV1
		encoding    string // default snappy
		body        []byte
		reader      io.Reader // instead of body
		chunked     bool      // no Content-Length
		opts        Options
		appErr      error

		wantCode    int
		wantProto   string // protocol label of requests_total; default from contentType
		wantBody    string // substring of the response body
		wantHeader  map[string]string
		wantSeries  []rec
		anySeries   bool // do not check wantSeries
		wantCalls   int  // Append calls; -1: do not check
		wantMetrics []metricWant
	}{
		// Remote write 1.0.
		{
			name: "v1 ok", body: v1Body(t, nil, ok, other),
			wantCode: 204, wantHeader: noWritten, wantSeries: []rec{okRec, otherRec}, wantCalls: 1,
			wantMetrics: []metricWant{
				mv("samples_received_total", 3, "protocol", "1.0"),
				mv("series_received_total", 2, "protocol", "1.0"),
				mv("request_bytes_total", float64(len(v1Body(t, nil, ok, other))), "protocol", "1.0"),
				mv("decoded_request_size_bytes", 1, "protocol", "1.0"),
				mv("request_duration_seconds", 1, "protocol", "1.0"),
				mv("requests_in_flight", 0),
			},
		},
		{
			name: "v1 explicit proto", contentType: ctV1Explicit, body: v1Body(t, nil, ok),
			wantCode: 204, wantSeries: []rec{okRec}, wantCalls: 1,
		},
		{
			name: "v1 proto param quoted, spaced, other params", contentType: `application/x-protobuf; charset=utf-8; proto="prometheus.WriteRequest"`,
			body: v1Body(t, nil, ok), wantCode: 204, wantSeries: []rec{okRec}, wantCalls: 1,
		},
		{
			name: "v1 no content type", contentType: absent, body: v1Body(t, nil, ok),
			wantCode: 204, wantSeries: []rec{okRec}, wantCalls: 1,
		},
		{
			name: "v1 no content encoding defaults to snappy", encoding: absent, body: v1Body(t, nil, ok),
			wantCode: 204, wantSeries: []rec{okRec}, wantCalls: 1,
		},
		{
			name: "v1 chunked body", chunked: true, body: v1Body(t, nil, ok),
			wantCode: 204, wantSeries: []rec{okRec}, wantCalls: 1,
		},
		{
			name:     "v1 stale marker, NaN and Inf pass unchanged",
			body:     v1Body(t, nil, series("__name__", "up").with(smp(1, stale), smp(2, math.NaN()), smp(3, math.Inf(-1)), smp(-4, -4.5))),
			wantCode: 204, wantCalls: 1, wantSeries: []rec{{Labels: `{__name__="up"}`,
				Samples: []recSample{rs(1, stale), rs(2, math.NaN()), rs(3, math.Inf(-1)), rs(-4, -4.5)}}},
		},
		{
			name:     "v1 unsorted labels are sorted",
			body:     v1Body(t, nil, series("job", "x", "__name__", "a", "instance", "i", "Zone", "z")),
			wantCode: 204, wantCalls: 1, wantSeries: []rec{{Labels: `{Zone="z", __name__="a", instance="i", job="x"}`, Samples: []recSample{rs(1000, 1)}}},
		},
		{
			name:     "v1 empty label values are dropped",
			body:     v1Body(t, nil, series("__name__", "a", "empty", "", "job", "x")),
			wantCode: 204, wantCalls: 1, wantSeries: []rec{{Labels: `{__name__="a", job="x"}`, Samples: []recSample{rs(1000, 1)}}},
		},
		{
			name: "v1 metadata sets types by family name",
			body: v1Body(t, meta,
				series("__name__", "http_requests_total"), series("__name__", "latency_seconds_bucket", "le", "1"),
				series("__name__", "latency_seconds_sum"), series("__name__", "latency_seconds_count"),
				series("__name__", "temp"), series("__name__", "foo_total"), series("__name__", "rpc_seconds", "quantile", "0.5"),
				series("__name__", "other_total")),
			wantCode: 204, wantCalls: 1, wantSeries: []rec{
				{Labels: `{__name__="http_requests_total"}`, Type: batch.Counter, Samples: []recSample{rs(1000, 1)}},
				{Labels: `{__name__="latency_seconds_bucket", le="1"}`, Type: batch.Histogram, Samples: []recSample{rs(1000, 1)}},
				{Labels: `{__name__="latency_seconds_sum"}`, Type: batch.Histogram, Samples: []recSample{rs(1000, 1)}},
				{Labels: `{__name__="latency_seconds_count"}`, Type: batch.Histogram, Samples: []recSample{rs(1000, 1)}},
				{Labels: `{__name__="temp"}`, Type: batch.Gauge, Samples: []recSample{rs(1000, 1)}},
				{Labels: `{__name__="foo_total"}`, Type: batch.Gauge, Samples: []recSample{rs(1000, 1)}}, // exact name wins
				{Labels: `{__name__="rpc_seconds", quantile="0.5"}`, Type: batch.Summary, Samples: []recSample{rs(1000, 1)}},
				{Labels: `{__name__="other_total"}`, Type: batch.Unknown, Samples: []recSample{rs(1000, 1)}},
			},
		},
		{
			name: "v1 metadata only", body: v1Body(t, meta),
			wantCode: 204, wantCalls: 1, // handed on: Prometheus sends RW 1.0 metadata on its own
		},
		{
			name:     "v1 histograms and exemplars counted, not passed",
			body:     v1Body(t, nil, series("__name__", "h").with().extra(2, 3), ok.extra(0, 1)),
			wantCode: 204, wantCalls: 1, wantHeader: noWritten,
			wantSeries: []rec{{Labels: `{__name__="h"}`, Histograms: 2, Exemplars: 3}, {Labels: okRec.Labels, Samples: okRec.Samples, Exemplars: 1}},
			wantMetrics: []metricWant{
				mv("histograms_received_total", 2, "protocol", "1.0"),
				mv("exemplars_received_total", 4, "protocol", "1.0"),
				mv("samples_received_total", 2, "protocol", "1.0"),
			},
		},
		{
			name: "v1 empty message", body: snappy.Encode(nil, nil),
			wantCode: 204, wantCalls: 0,
		},
		{
			name: "v1 empty label name", body: v1Body(t, nil, ok, series("__name__", "bad", "", "x").with(smp(1, 1), smp(2, 2))),
			wantCode: 400, wantBody: `rejected 1 of 2 series (2 samples): empty label name in series of metric "bad"`,
			wantSeries: []rec{okRec}, wantCalls: 1,
			wantMetrics: []metricWant{
				mv("samples_rejected_total", 2, "reason", "empty_label_name"),
				mv("samples_received_total", 2, "protocol", "1.0"),
			},
		},
		{
			name: "v1 duplicate label name", body: v1Body(t, nil, series("__name__", "bad", "job", "x", "job", "y"), ok),
			wantCode: 400, wantBody: `duplicate label name "job" in series of metric "bad"`, wantSeries: []rec{okRec}, wantCalls: 1,
			wantMetrics: []metricWant{mv("samples_rejected_total", 1, "reason", "duplicate_label_name")},
		},
		{
			name: "v1 invalid UTF-8 value", body: v1Body(t, nil, series("__name__", "bad", "job", "\xff")),
			wantCode: 400, wantBody: `rejected 1 of 1 series (1 samples): invalid utf8 "job" in series of metric "bad"`, wantCalls: 0,
			wantMetrics: []metricWant{mv("samples_rejected_total", 1, "reason", "invalid_utf8")},
		},
		{
			name: "v1 invalid UTF-8 name", body: v1Body(t, nil, series("__name__", "bad", "j\xc3b", "x")),
			wantCode: 400, wantBody: `invalid utf8 "j\xc3b"`, wantCalls: 0,
		},
		{
			name: "v1 missing metric name", body: v1Body(t, nil, series("job", "x"), series("__name__", "", "job", "y"), ok),
			wantCode: 400, wantBody: `rejected 2 of 3 series (2 samples): missing metric name (first of them)`, wantSeries: []rec{okRec}, wantCalls: 1,
			wantMetrics: []metricWant{mv("samples_rejected_total", 2, "reason", "missing_metric_name")},
		},
		{
			name: "v1 too many labels", opts: Options{MaxLabelsPerSeries: 2}, body: v1Body(t, nil, ok),
			wantCode: 400, wantBody: "too many labels", wantCalls: 0,
			wantMetrics: []metricWant{mv("samples_rejected_total", 2, "reason", "too_many_labels")},
		},
		{
			name: "v1 label name too long", opts: Options{MaxLabelNameLength: 5}, body: v1Body(t, nil, ok),
			wantCode: 400, wantBody: `label name too long "__name__"`, wantCalls: 0,
		},
		{
			name: "v1 label value too long", opts: Options{MaxLabelValueLength: 3}, body: v1Body(t, nil, ok, other),
			wantCode: 400, wantBody: `rejected 2 of 2 series (3 samples): label value too long "job" in series of metric "up" (first of them)`, wantCalls: 0,
			wantMetrics: []metricWant{mv("samples_rejected_total", 3, "reason", "label_value_too_long")},
		},
		{
			name: "v1 limits met", opts: Options{MaxLabelsPerSeries: 3, MaxLabelNameLength: 8, MaxLabelValueLength: 4, MaxSeriesPerRequest: 2},
			body: v1Body(t, nil, ok, other), wantCode: 204, wantSeries: []rec{okRec, otherRec}, wantCalls: 1,
		},
		{
			name: "v1 too many series", opts: Options{MaxSeriesPerRequest: 1}, body: v1Body(t, nil, ok, other),
			wantCode: 400, wantBody: "too many series: 2 series, the limit is 1", wantCalls: 0,
			wantMetrics: []metricWant{mv("samples_rejected_total", 3, "reason", "too_many_series")},
		},
		{
			name: "v1 append error", body: v1Body(t, nil, ok), appErr: appErr,
			wantCode: 500, wantBody: "appending: detector failed", wantCalls: 1,
			wantMetrics: []metricWant{mv("samples_received_total", 0, "protocol", "1.0")},
		},
		{
			name: "empty body", body: []byte{},
			wantCode: 400, wantBody: "snappy: snappy: corrupt input", wantCalls: 0,
		},
		{
			name: "corrupt snappy", body: []byte{10, 0xff, 0xff, 0xff, 0xff},
			wantCode: 400, wantBody: "snappy:", wantCalls: 0,
		},
		{
			name: "truncated body", body: func() []byte { b := v1Body(t, nil, ok, other); return b[:len(b)/2] }(),
			wantCode: 400, wantBody: "snappy:", wantCalls: 0,
		},
		{
			name: "body read error", reader: errReader{io.ErrUnexpectedEOF}, chunked: true,
			wantCode: 400, wantBody: "reading request body: unexpected EOF", wantCalls: 0,
		},
		{
			name: "not protobuf", body: snappy.Encode(nil, []byte("{\"hello\": 1}")),
			wantCode: 400, wantBody: "decoding prometheus.WriteRequest: malformed request", wantCalls: 0,
		},
		{
			name: "truncated protobuf", body: snappy.Encode(nil, marshal(t, v1Message(nil, ok))[:20]),
			wantCode: 400, wantBody: "unexpected EOF", wantCalls: 0,
		},
		{
			name: "snappy header claims 4 GiB", body: []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00},
			wantCode: 413, wantBody: "decoded body of 4294967295 bytes is over the limit of 33554432 bytes", wantCalls: 0,
		},
		{
			name: "decoded size over limit", opts: Options{MaxRequestBytes: int64(bigDecoded - 1)}, body: bigV1,
			wantCode: 413, wantBody: "decoded body", wantCalls: 0,
			wantMetrics: []metricWant{mv("request_bytes_total", float64(len(bigV1)), "protocol", "1.0")},
		},
		{
			name: "decoded size at limit", opts: Options{MaxRequestBytes: int64(bigDecoded)}, body: bigV1,
			wantCode: 204, wantCalls: 1, anySeries: true,
		},
		{
			name: "body over limit", opts: Options{MaxRequestBytes: 10}, body: v1Body(t, nil, ok),
			wantCode: 413, wantBody: "request body of", wantCalls: 0,
		},
		{
			name: "chunked body over limit", opts: Options{MaxRequestBytes: 10}, chunked: true, body: v1Body(t, nil, ok),
			wantCode: 413, wantBody: "request body is over the limit of 10 bytes", wantCalls: 0,
			wantMetrics: []metricWant{mv("request_bytes_total", 11, "protocol", "1.0")},
		},
		{
			name: "GET", method: http.MethodGet,
			wantCode: 405, wantProto: "unknown", wantHeader: map[string]string{"Allow": "POST"}, wantCalls: 0,
		},
		{
			name: "PUT", method: http.MethodPut, body: v1Body(t, nil, ok),
			wantCode: 405, wantProto: "unknown", wantHeader: map[string]string{"Allow": "POST"}, wantCalls: 0,
		},
		{
			name: "JSON content type", contentType: "application/json", body: v1Body(t, nil, ok),
			wantCode: 415, wantProto: "unknown", wantBody: `unsupported Content-Type "application/json"`, wantCalls: 0,
		},
		{
			name: "unknown proto", contentType: "application/x-protobuf;proto=io.prometheus.write.v3.Request", body: v1Body(t, nil, ok),
			wantCode: 415, wantProto: "unknown", wantBody: "unsupported proto", wantCalls: 0,
		},
		{
			name: "malformed content type parameter", contentType: "application/x-protobuf;proto", body: v1Body(t, nil, ok),
			wantCode: 415, wantProto: "unknown", wantCalls: 0,
		},
		{
			name: "v1 gzip encoding", encoding: "gzip", body: v1Body(t, nil, ok),
			wantCode: 415, wantBody: `unsupported Content-Encoding "gzip"`, wantHeader: noWritten, wantCalls: 0,
		},
		{
			name: "v1 identity encoding", encoding: "identity", body: marshal(t, v1Message(nil, ok)),
			wantCode: 415, wantCalls: 0,
		},

		// Remote write 2.0.
		{
			name: "v2 ok", contentType: ctV2, body: v2Body(t, ok, other),
			wantCode: 204, wantHeader: written("3", "0", "0"), wantSeries: []rec{okRecV2, otherRec}, wantCalls: 1,
			wantMetrics: []metricWant{
				mv("samples_received_total", 3, "protocol", "2.0"),
				mv("series_received_total", 2, "protocol", "2.0"),
				mv("samples_received_total", 0, "protocol", "1.0"),
			},
		},
		{
			name: "v2 snappy encoding spelled in capitals", contentType: ctV2, encoding: "Snappy", body: v2Body(t, ok),
			wantCode: 204, wantHeader: written("2", "0", "0"), wantSeries: []rec{okRecV2}, wantCalls: 1,
		},
		{
			name: "v2 metadata types", contentType: ctV2,
			body: v2Body(t, series("__name__", "c_total").typed(batch.Counter), series("__name__", "g").typed(batch.Gauge),
				series("__name__", "s").typed(batch.StateSet), series("__name__", "u")),
			wantCode: 204, wantCalls: 1, wantSeries: []rec{
				{Labels: `{__name__="c_total"}`, Type: batch.Counter, Samples: []recSample{rs(1000, 1)}},
				{Labels: `{__name__="g"}`, Type: batch.Gauge, Samples: []recSample{rs(1000, 1)}},
				{Labels: `{__name__="s"}`, Type: batch.StateSet, Samples: []recSample{rs(1000, 1)}},
				{Labels: `{__name__="u"}`, Type: batch.Unknown, Samples: []recSample{rs(1000, 1)}},
			},
		},
		{
			name: "v2 histograms and exemplars counted", contentType: ctV2,
			body:     v2Body(t, series("__name__", "h").with().extra(2, 1).typed(batch.Histogram), ok.extra(0, 2)),
			wantCode: 204, wantHeader: written("2", "2", "3"), wantCalls: 1,
			wantSeries: []rec{{Labels: `{__name__="h"}`, Type: batch.Histogram, Histograms: 2, Exemplars: 1}, {Labels: okRec.Labels, Samples: okRec.Samples, Exemplars: 2}},
			wantMetrics: []metricWant{
				mv("histograms_received_total", 2, "protocol", "2.0"),
				mv("exemplars_received_total", 3, "protocol", "2.0"),
			},
		},
		{
			name: "v2 stale marker", contentType: ctV2, body: v2Body(t, series("__name__", "up").with(smp(5, stale))),
			wantCode: 204, wantHeader: written("1", "0", "0"), wantCalls: 1,
			wantSeries: []rec{{Labels: `{__name__="up"}`, Samples: []recSample{rs(5, stale)}}},
		},
		{
			name: "v2 unsorted labels are sorted", contentType: ctV2, body: v2Body(t, series("job", "x", "__name__", "a")),
			wantCode: 204, wantCalls: 1, wantSeries: []rec{{Labels: `{__name__="a", job="x"}`, Samples: []recSample{rs(1000, 1)}}},
		},
		{
			name: "v2 partial write", contentType: ctV2, body: v2Body(t, ok, series("__name__", "bad", "job", "x", "job", "y").extra(1, 0)),
			wantCode: 400, wantBody: `rejected 1 of 2 series (2 samples): duplicate label name "job" in series of metric "bad"`,
			wantHeader: written("2", "0", "0"), wantSeries: []rec{okRecV2}, wantCalls: 1,
			wantMetrics: []metricWant{mv("samples_rejected_total", 2, "reason", "duplicate_label_name")},
		},
		{
			name: "v2 invalid UTF-8", contentType: ctV2, body: v2Body(t, series("__name__", "bad\xff")),
			wantCode: 400, wantBody: "invalid utf8", wantHeader: written("0", "0", "0"), wantCalls: 0,
		},
		{
			name: "v2 symbol reference out of range", contentType: ctV2, body: v2Raw(t, []string{"", "__name__", "a"}, []uint32{1, 3}, writev2.Metadata{}),
			wantCode: 400, wantBody: "symbol reference 3 out of range (3 symbols)", wantHeader: written("0", "0", "0"), wantCalls: 0,
		},
		{
			name: "v2 no symbols", contentType: ctV2, body: v2Raw(t, nil, []uint32{0, 0}, writev2.Metadata{}),
			wantCode: 400, wantBody: "symbol reference 0 out of range (0 symbols)", wantCalls: 0,
		},
		{
			name: "v2 help reference out of range", contentType: ctV2, body: v2Raw(t, []string{"", "__name__", "a"}, []uint32{1, 2}, writev2.Metadata{HelpRef: 7}),
			wantCode: 400, wantBody: "symbol reference 7 out of range", wantCalls: 0,
		},
		{
			name: "v2 symbols[0] not empty", contentType: ctV2, body: v2Raw(t, []string{"x", "__name__", "a"}, []uint32{1, 2}, writev2.Metadata{}),
			wantCode: 400, wantBody: `symbols[0] must be the empty string, got "x"`, wantCalls: 0,
		},
		{
			name: "v2 odd number of label references", contentType: ctV2, body: v2Raw(t, []string{"", "__name__", "a"}, []uint32{1, 2, 1}, writev2.Metadata{}),
			wantCode: 400, wantBody: "odd number of labels_refs", wantCalls: 0,
		},
		{
			name: "v2 body sent as v1", contentType: ctV1, body: v2Body(t, ok),
			wantCode: 204, wantHeader: noWritten, wantCalls: 0, // RW 2.0 fields are unknown to 1.0 and skipped
		},
		{
			name: "v2 too many series", contentType: ctV2, opts: Options{MaxSeriesPerRequest: 1}, body: v2Body(t, ok, other),
			wantCode: 400, wantBody: "too many series", wantHeader: written("0", "0", "0"), wantCalls: 0,
		},
		{
			name: "v2 append error", contentType: ctV2, body: v2Body(t, ok), appErr: appErr,
			wantCode: 500, wantBody: "appending: detector failed", wantHeader: written("0", "0", "0"), wantCalls: 1,
		},
		{
			name: "v2 body over limit", contentType: ctV2, opts: Options{MaxRequestBytes: 10}, body: v2Body(t, ok),
			wantCode: 413, wantHeader: written("0", "0", "0"), wantCalls: 0,
		},
		{
			name: "v2 zstd encoding", contentType: ctV2, encoding: "zstd", body: v2Body(t, ok),
			wantCode: 415, wantHeader: written("0", "0", "0"), wantCalls: 0,
		},
		{
			name: "v2 GET", method: http.MethodGet, contentType: ctV2,
			wantCode: 405, wantProto: "unknown", wantHeader: map[string]string{"Allow": "POST", hdrSamples: absent}, wantCalls: 0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			app := &recordingAppender{err: tc.appErr}
			h := NewHandler(tc.opts, app, reg, nil)

			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.reader != nil {
				body = tc.reader
			}
			req := httptest.NewRequest(method, "/api/v1/write", body)
			if tc.chunked {
				req.ContentLength = -1
			}
			ct := tc.contentType
			if ct == "" {
				ct = ctV1
			}
			if ct != absent {
				req.Header.Set("Content-Type", ct)
			}
			switch tc.encoding {
			case "":
				req.Header.Set("Content-Encoding", "snappy")
			case absent:
			default:
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)

			require.Equal(t, tc.wantCode, w.Code, "body: %s", w.Body.String())
			if tc.wantCode == http.StatusNoContent {
				require.Empty(t, w.Body.String())
			} else {
				require.Contains(t, w.Body.String(), tc.wantBody)
				require.Equal(t, 1, strings.Count(w.Body.String(), "\n"), "the reason is one line")
				require.True(t, strings.HasSuffix(w.Body.String(), "\n"))
			}
			for k, v := range tc.wantHeader {
				if v == absent {
					require.NotContains(t, w.Header(), k)
				} else {
					require.Equal(t, v, w.Header().Get(k), k)
				}
			}
			if !tc.anySeries {
				require.Equal(t, tc.wantSeries, app.series)
			}
			if tc.wantCalls >= 0 {
				require.Equal(t, tc.wantCalls, app.calls)
			}

			proto := tc.wantProto
			if proto == "" {
				proto = "1.0"
				if ct == ctV2 {
					proto = "2.0"
				}
			}
			require.Equal(t, 1.0, metricValue(t, reg, "anomaly_exporter_remote_write_requests_total", map[string]string{"protocol": proto, "code": strconv.Itoa(tc.wantCode)}))
			for _, m := range tc.wantMetrics {
				require.Equal(t, m.value, metricValue(t, reg, m.name, m.labels), "%s%v", m.name, m.labels)
			}
			if tc.wantCode == 400 && strings.HasPrefix(w.Body.String(), "rejected") {
				var rejected float64
				for r := range numReasons {
					rejected += metricValue(t, reg, "anomaly_exporter_remote_write_samples_rejected_total", map[string]string{"reason": r.String()})
				}
				require.Positive(t, rejected)
			}
		})
	}
}

// TestHandlerConcurrencyLimit fills every slot with requests blocked in the Appender and checks
// that the next request is turned away at once with 503 and Retry-After, and that the slots are
// usable again afterwards.
func TestHandlerConcurrencyLimit(t *testing.T) {
	for _, ct := range []string{ctV1, ctV2} {
		t.Run(ct, func(t *testing.T) {
			const limit = 2
			reg := prometheus.NewPedanticRegistry()
			app := &recordingAppender{entered: make(chan struct{}), release: make(chan struct{})}
			h := NewHandler(Options{MaxConcurrentRequests: limit}, app, reg, nil)
			body := v1Body(t, nil, series("__name__", "up"))
			if ct == ctV2 {
				body = v2Body(t, series("__name__", "up"))
			}
			post := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
				req.Header.Set("Content-Type", ct)
				req.Header.Set("Content-Encoding", "snappy")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w
			}

			var wg sync.WaitGroup
			codes := make([]int, limit)
			for i := range limit {
				wg.Go(func() { codes[i] = post().Code })
			}
			for range limit {
				<-app.entered
			}
			require.Equal(t, float64(limit), metricValue(t, reg, "anomaly_exporter_remote_write_requests_in_flight", nil))

			w := post()
			require.Equal(t, http.StatusServiceUnavailable, w.Code)
			require.Equal(t, "1", w.Header().Get("Retry-After"))
			require.Contains(t, w.Body.String(), "too many concurrent requests (limit 2)")
			if ct == ctV2 {
				require.Equal(t, "0", w.Header().Get(hdrSamples))
			}

			close(app.release)
			wg.Wait()
			require.Equal(t, []int{204, 204}, codes)
			require.Equal(t, 0.0, metricValue(t, reg, "anomaly_exporter_remote_write_requests_in_flight", nil))

			app.entered = nil
			require.Equal(t, http.StatusNoContent, post().Code)
			proto := map[string]string{ctV1: "1.0", ctV2: "2.0"}[ct]
			require.Equal(t, 1.0, metricValue(t, reg, "anomaly_exporter_remote_write_requests_total", map[string]string{"protocol": proto, "code": "503"}))
			require.Equal(t, 3.0, metricValue(t, reg, "anomaly_exporter_remote_write_requests_total", map[string]string{"protocol": proto, "code": "204"}))
		})
	}
}

// TestHandlerReusesBuffers sends requests of different shapes through one handler in turn, so
// that pooled decoders are reused with leftovers of larger and smaller requests.
func TestHandlerReusesBuffers(t *testing.T) {
	app := &recordingAppender{}
	h := NewHandler(Options{}, app, nil, nil)
	bodies := [][]byte{
		v1Body(t, nil, realisticSeries(300)...),
		v1Body(t, nil, series("b", "2", "__name__", "x")),
		v2Body(t, realisticSeries(50)...),
		v2Body(t, series("__name__", "y", "a", "1")),
	}
	want := [][]rec{}
	for _, ss := range [][]ts{realisticSeries(300), {series("b", "2", "__name__", "x")}, realisticSeries(50), {series("__name__", "y", "a", "1")}} {
		var b batch.Batch
		for _, s := range ss {
			var ls []batch.Label
			for i := 0; i < len(s.labels); i += 2 {
				ls = append(ls, batch.Label{Name: s.labels[i], Value: s.labels[i+1]})
			}
			slices.SortFunc(ls, compareLabels)
			b.Series = append(b.Series, batch.Series{Labels: ls, Samples: s.samples})
		}
		want = append(want, record(&b))
	}
	for round := range 3 {
		for i, body := range bodies {
			app.series = nil
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			if i >= 2 {
				req.Header.Set("Content-Type", ctV2)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			require.Equal(t, 204, w.Code, "round %d body %d: %s", round, i, w.Body.String())
			require.Equal(t, want[i], app.series, "round %d body %d", round, i)
		}
	}
}

func TestCountingAppender(t *testing.T) {
	var c CountingAppender
	h := NewHandler(Options{}, &c, nil, nil)
	for _, body := range [][]byte{v1Body(t, nil, realisticSeries(10)...), v1Body(t, nil, series("__name__", "h").extra(2, 1))} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		require.Equal(t, 204, w.Code)
	}
	require.Equal(t, int64(11), c.Series())
	require.Equal(t, int64(11), c.Samples())
	require.Equal(t, int64(2), c.Histograms())
	require.Equal(t, int64(1), c.Exemplars())
}

func TestNegotiate(t *testing.T) {
	cases := []struct {
		contentType, encoding string
		want                  protocol
		wantErr               bool
	}{
		{"application/x-protobuf", "snappy", protoV1, false},
		{"Application/X-Protobuf", "snappy", protoV1, false},
		{"application/x-protobuf;proto=prometheus.WriteRequest", "", protoV1, false},
		{"application/x-protobuf ; proto=io.prometheus.write.v2.Request", "snappy", protoV2, false},
		{"application/x-protobuf;PROTO=io.prometheus.write.v2.Request;", "snappy", protoV2, false},
		{"", "", protoV1, false},
		{"application/x-protobuf;proto=io.prometheus.write.v2.request", "snappy", protoUnknown, true},
		{"application/x-protobuf;proto=", "snappy", protoUnknown, true},
		{"application/protobuf", "snappy", protoUnknown, true},
		{"text/plain", "snappy", protoUnknown, true},
		{"application/x-protobuf;proto=io.prometheus.write.v2.Request", "gzip", protoV2, true},
		{"application/x-protobuf", "snappy, gzip", protoV1, true},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.contentType != "" {
			h.Set("Content-Type", tc.contentType)
		}
		if tc.encoding != "" {
			h.Set("Content-Encoding", tc.encoding)
		}
		got, err := negotiate(h)
		require.Equal(t, tc.want, got, "%q %q", tc.contentType, tc.encoding)
		require.Equal(t, tc.wantErr, err != nil, "%q %q: %v", tc.contentType, tc.encoding, err)
	}
	h := http.Header{"Content-Encoding": {"snappy", "snappy"}}
	_, err := negotiate(h)
	require.Error(t, err)
}

// metaRecorder keeps copies of the metadata of every batch.
type metaRecorder struct{ got []batch.Metadata }

func (m *metaRecorder) Append(b *batch.Batch) error {
	for _, e := range b.Metadata {
		m.got = append(m.got, batch.Metadata{Family: strings.Clone(e.Family), Type: e.Type})
	}
	return nil
}

func TestMetadataHandedOn(t *testing.T) {
	var rec metaRecorder
	h := NewHandler(Options{}, &rec, nil, nil)
	meta := []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests"},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "temp"},
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(v1Body(t, meta)))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.ElementsMatch(t, []batch.Metadata{{Family: "http_requests", Type: batch.Counter}, {Family: "temp", Type: batch.Gauge}}, rec.got)
}
