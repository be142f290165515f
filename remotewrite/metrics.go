package remotewrite

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// protocol is the remote-write protocol of a request, as negotiated from its Content-Type.
type protocol uint8

const (
	protoUnknown protocol = iota // before or without successful negotiation
	protoV1                      // prometheus.WriteRequest
	protoV2                      // io.prometheus.write.v2.Request
	numProtocols
)

var protocolNames = [numProtocols]string{protoUnknown: "unknown", protoV1: "1.0", protoV2: "2.0"}

func (p protocol) String() string { return protocolNames[p] }

// statusCodes are the codes the handler answers with; requests_total is pre-created for them so
// that the series exist from the start and the hot path does no label lookup.
var statusCodes = [...]int{204, 400, 405, 413, 415, 500, 503}

func codeIndex(code int) int {
	for i, c := range statusCodes {
		if c == code {
			return i
		}
	}
	return -1
}

// metrics are the handler's self metrics, resolved to children once at construction.
type metrics struct {
	requestsVec *prometheus.CounterVec
	requests    [numProtocols][len(statusCodes)]prometheus.Counter
	duration    [numProtocols]prometheus.Observer
	bytes       [numProtocols]prometheus.Counter
	decoded     [numProtocols]prometheus.Observer
	series      [numProtocols]prometheus.Counter
	samples     [numProtocols]prometheus.Counter
	histograms  [numProtocols]prometheus.Counter
	exemplars   [numProtocols]prometheus.Counter
	rejected    [numReasons]prometheus.Counter
	inFlight    prometheus.Gauge
	shed        [numShedReasons]prometheus.Counter

	rejectedRequests [numRejectReasons]prometheus.Counter
}

// rejectReason says why a request was answered 4xx: the reason label of requests_rejected_total.
type rejectReason uint8

const (
	rejectNone rejectReason = iota
	rejectMethod
	rejectMediaType
	rejectBodyTooLarge
	rejectReadError
	rejectSnappy
	rejectDecodedTooLarge
	rejectProtobuf
	rejectTooManySeries
	rejectInvalidSeries
	numRejectReasons
)

var rejectReasonNames = [numRejectReasons]string{
	rejectMethod:          "method_not_allowed",
	rejectMediaType:       "unsupported_media_type",
	rejectBodyTooLarge:    "body_too_large",
	rejectReadError:       "read_error",
	rejectSnappy:          "corrupt_snappy",
	rejectDecodedTooLarge: "decoded_too_large",
	rejectProtobuf:        "malformed_protobuf",
	rejectTooManySeries:   "too_many_series",
	rejectInvalidSeries:   "invalid_series",
}

// Why a request was shed with a 503 and Retry-After: the reason label of requests_shed_total.
const (
	shedConcurrency = iota // MaxConcurrentRequests reached
	shedMemory             // heap above MemoryLimit
	shedReadTimeout        // the body did not arrive within the server's read timeout
	numShedReasons
)

var shedReasonNames = [numShedReasons]string{shedConcurrency: "concurrency", shedMemory: "memory", shedReadTimeout: "read_timeout"}

const (
	namespace = "anomaly_exporter"
	subsystem = "remote_write"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{}
	m.requestsVec = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "requests_total",
		Help: "Remote-write requests by negotiated protocol (unknown before negotiation) and HTTP status code.",
	}, []string{"protocol", "code"})
	duration := f.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "request_duration_seconds",
		Help:                           "Time from receiving a remote-write request to answering it, including the Appender.",
		Buckets:                        []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		NativeHistogramBucketFactor:    1.1,
		NativeHistogramMaxBucketNumber: 100,
	}, []string{"protocol"})
	bytes := f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "request_bytes_total",
		Help: "Bytes of remote-write request bodies read, as sent (snappy-compressed).",
	}, []string{"protocol"})
	decoded := f.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "decoded_request_size_bytes",
		Help:                           "Size of remote-write request bodies after snappy decoding.",
		Buckets:                        prometheus.ExponentialBuckets(1024, 4, 10), // 1 KiB to 256 MiB
		NativeHistogramBucketFactor:    1.1,
		NativeHistogramMaxBucketNumber: 100,
	}, []string{"protocol"})
	counter := func(name, help string) *prometheus.CounterVec {
		return f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: name, Help: help,
		}, []string{"protocol"})
	}
	series := counter("series_received_total", "Series of remote-write requests that the appender accepted.")
	samples := counter("samples_received_total", "Float samples (stale markers included) that the appender accepted.")
	histograms := counter("histograms_received_total", "Native histogram samples of series the appender accepted; counted, not passed on.")
	exemplars := counter("exemplars_received_total", "Exemplars of series the appender accepted; counted, not passed on.")
	rejected := f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "samples_rejected_total",
		Help: "Float and histogram samples of series rejected with a 400, by reason.",
	}, []string{"reason"})
	m.inFlight = f.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "requests_in_flight",
		Help: "Remote-write requests being processed now (admitted under MaxConcurrentRequests).",
	})

	for p := range numProtocols {
		name := p.String()
		for i, code := range statusCodes {
			// 405 and an unrecognized Content-Type are answered before the protocol is known;
			// 415 also after it, for an unsupported Content-Encoding.
			if code == 415 || (p == protoUnknown) == (code == 405) {
				m.requests[p][i] = m.requestsVec.WithLabelValues(name, strconv.Itoa(code))
			}
		}
		m.duration[p] = duration.WithLabelValues(name)
		if p == protoUnknown {
			continue
		}
		m.bytes[p] = bytes.WithLabelValues(name)
		m.decoded[p] = decoded.WithLabelValues(name)
		m.series[p] = series.WithLabelValues(name)
		m.samples[p] = samples.WithLabelValues(name)
		m.histograms[p] = histograms.WithLabelValues(name)
		m.exemplars[p] = exemplars.WithLabelValues(name)
	}
	for r := range numReasons {
		m.rejected[r] = rejected.WithLabelValues(r.String())
	}
	shed := f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "requests_shed_total",
		Help: "Remote-write requests answered 503 with Retry-After because the exporter was overloaded, by reason (concurrency: --remote-write.max-concurrent-requests reached; memory: heap above --remote-write.memory-limit; read_timeout: the body did not arrive within --web.read-timeout). Senders retry them.",
	}, []string{"reason"})
	for r, name := range shedReasonNames {
		m.shed[r] = shed.WithLabelValues(name)
	}
	rejectedRequests := f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "requests_rejected_total",
		Help: "Remote-write requests answered 400, 405, 413 or 415, by reason; invalid_series is a partial write (the valid series were kept; samples_rejected_total says why the others were not).",
	}, []string{"reason"})
	for r := rejectMethod; r < numRejectReasons; r++ {
		m.rejectedRequests[r] = rejectedRequests.WithLabelValues(rejectReasonNames[r])
	}
	return m
}

// request counts one answered request.
func (m *metrics) request(p protocol, code int) {
	if i := codeIndex(code); i >= 0 && m.requests[p][i] != nil {
		m.requests[p][i].Inc()
		return
	}
	m.requestsVec.WithLabelValues(p.String(), strconv.Itoa(code)).Inc()
}
