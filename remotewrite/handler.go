// Package remotewrite is the receive side of the Prometheus remote-write protocol: it negotiates
// remote write 1.0 or 2.0 from the Content-Type, reads and snappy-decodes the body within a size
// bound, decodes the protobuf without copying into a pooled batch.Batch, validates the labels, and
// hands the batch to a batch.Appender. It answers with the status codes the remote-write specs
// tell senders how to read, so that nothing that could succeed later is dropped and nothing that
// never can is retried.
//
// It is also the sending side for the scores (sender*.go): Senders takes the points the detector
// scores (detector.Output) and remote-writes the output series to other receivers.
package remotewrite

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// DefaultMaxRequestBytes is the default bound on a request body, both as sent and after snappy
// decoding. Prometheus sends at most 2000 samples per request by default (a few hundred KiB), so
// 32 MiB leaves room for large batches from vmagent or backfills while bounding memory.
const DefaultMaxRequestBytes = 32 << 20

// retryAfter is the Retry-After value of an overload 503, in seconds: long enough for the
// requests in flight to finish, short enough that a sender catching up is not held back.
const retryAfter = "1"

// Options bound what one handler accepts. The zero value is usable: every field has a default
// or means unlimited.
type Options struct {
	// MaxRequestBytes bounds the body as sent and after snappy decoding; larger requests get a
	// 413. 0 means DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// MaxConcurrentRequests bounds the requests being decoded and appended at once; beyond it a
	// request gets a 503 with Retry-After at once instead of queueing (not a 429: Prometheus
	// retries a 429 only with retry_on_http_429 set, a 503 always). Decoding is CPU-bound,
	// so the limit is there to bound memory (each admitted request may hold several times
	// MaxRequestBytes) and the backlog in front of the Appender. A slot is taken once the body
	// has been read, so that slow senders do not hold one while their body arrives (the server's
	// read timeout bounds that). 0 means 4×GOMAXPROCS, at least 8.
	MaxConcurrentRequests int
	// MaxLabelsPerSeries rejects series with more labels. 0 means unlimited.
	MaxLabelsPerSeries int
	// MaxLabelNameLength rejects series with a longer label name, in bytes. 0 means unlimited.
	MaxLabelNameLength int
	// MaxLabelValueLength rejects series with a longer label value, in bytes. 0 means unlimited.
	MaxLabelValueLength int
	// MaxSeriesPerRequest rejects whole requests with more series. 0 means unlimited.
	MaxSeriesPerRequest int
	// MemoryLimit is a high-water mark on the Go heap (live objects and garbage not yet
	// collected, from runtime/metrics): above it requests get a 503 with Retry-After before their
	// body is read or decoded, so that the sender retries later instead of the process running
	// out of memory. 0 means no limit.
	MemoryLimit int64

	// heapBytes reads the heap size MemoryLimit is compared with; tests replace it.
	heapBytes func() uint64
}

func (o Options) withDefaults() Options {
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxConcurrentRequests <= 0 {
		o.MaxConcurrentRequests = max(8, 4*runtime.GOMAXPROCS(0))
	}
	return o
}

// maxPooledBytes bounds the memory a decoder may keep when it goes back to the pool, so that one
// huge request does not pin its buffers for the life of the process.
const maxPooledBytes = 64 << 20

type handler struct {
	opts   Options
	app    batch.Appender
	logger *slog.Logger
	m      *metrics
	sem    chan struct{}
	pool   sync.Pool
	heap   heapGauge
}

// NewHandler returns the remote-write receiver. It serves whatever path it is mounted on, calls
// app.Append once per accepted request (concurrently from many requests), and registers its
// metrics on reg (nil: not registered). logger may be nil.
//
// Series with invalid labels are dropped and the rest of the request is appended; the request is
// then answered 400 with the count of what was dropped, as the remote-write 2.0 spec allows for a
// partial write. A request whose body cannot be decoded at all is answered 400 and nothing of it
// is appended.
func NewHandler(opts Options, app batch.Appender, reg prometheus.Registerer, logger *slog.Logger) http.Handler {
	opts = opts.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lim := limits{
		maxLabels:   max(0, opts.MaxLabelsPerSeries),
		maxNameLen:  max(0, opts.MaxLabelNameLength),
		maxValueLen: max(0, opts.MaxLabelValueLength),
		maxSeries:   max(0, opts.MaxSeriesPerRequest),
	}
	h := &handler{
		opts:   opts,
		app:    app,
		logger: logger,
		m:      newMetrics(reg),
		sem:    make(chan struct{}, opts.MaxConcurrentRequests),
		heap:   heapGauge{read: opts.heapBytes},
	}
	if h.heap.read == nil {
		h.heap = heapGauge{read: heapObjectBytes, refresh: heapRefresh}
	}
	h.pool.New = func() any { return &decoder{lim: lim} }
	return h
}

// result is the outcome of one request.
type result struct {
	code int
	msg  string       // one-line reason, for every code but 204
	why  rejectReason // for 4xx answers: the reason label of requests_rejected_total
	// Written counts, sent to RW 2.0 senders in the X-Prometheus-Remote-Write-*-Written headers.
	samples, histograms, exemplars int
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	p, res := h.serve(w, r)

	hdr := w.Header()
	if p == protoV2 {
		v := []string{strconv.Itoa(res.samples), strconv.Itoa(res.histograms), strconv.Itoa(res.exemplars)}
		hdr["X-Prometheus-Remote-Write-Samples-Written"] = v[0:1:1]
		hdr["X-Prometheus-Remote-Write-Histograms-Written"] = v[1:2:2]
		hdr["X-Prometheus-Remote-Write-Exemplars-Written"] = v[2:3:3]
	}
	if res.code == http.StatusNoContent {
		w.WriteHeader(res.code)
	} else {
		http.Error(w, res.msg, res.code)
		level := slog.LevelWarn
		switch res.code {
		case http.StatusInternalServerError:
			level = slog.LevelError
		case http.StatusMethodNotAllowed, http.StatusServiceUnavailable:
			level = slog.LevelDebug
		}
		h.logger.Log(r.Context(), level, "Remote-write request not accepted",
			"code", res.code, "protocol", p.String(), "reason", res.msg,
			"remote_addr", r.RemoteAddr, "user_agent", clip(r.UserAgent()))
	}
	h.m.request(p, res.code)
	if res.why != rejectNone {
		h.m.rejectedRequests[res.why].Inc()
	}
	h.m.duration[p].Observe(time.Since(start).Seconds())
}

// serve handles everything up to the response and returns the protocol (unknown until the
// Content-Type has been recognized) and the result.
func (h *handler) serve(w http.ResponseWriter, r *http.Request) (protocol, result) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return protoUnknown, result{code: http.StatusMethodNotAllowed, why: rejectMethod, msg: "method " + r.Method + " not allowed, use POST"}
	}
	p, err := negotiate(r.Header)
	if err != nil {
		return p, result{code: http.StatusUnsupportedMediaType, why: rejectMediaType, msg: err.Error()}
	}
	if res, over := h.overMemory(w); over {
		return p, res
	}
	d := h.pool.Get().(*decoder)
	defer h.put(d)
	return p, h.handle(w, r, p, d)
}

// overMemory sheds the request with a 503 and Retry-After when the heap is above MemoryLimit.
func (h *handler) overMemory(w http.ResponseWriter) (result, bool) {
	if h.opts.MemoryLimit <= 0 {
		return result{}, false
	}
	heap := h.heap.bytes()
	if heap <= uint64(h.opts.MemoryLimit) {
		return result{}, false
	}
	h.m.shed[shedMemory].Inc()
	if h.heap.warnDue() {
		h.logger.Warn("Heap above --remote-write.memory-limit: remote-write requests get 503 and are retried by their senders",
			"heap_bytes", heap, "limit_bytes", h.opts.MemoryLimit)
	}
	w.Header().Set("Retry-After", retryAfter)
	return result{code: http.StatusServiceUnavailable, msg: fmt.Sprintf("heap of %d bytes is over the memory limit of %d bytes, retry later", heap, h.opts.MemoryLimit)}, true
}

// handle reads, decodes and appends one request. The body is read before a decode slot is taken,
// so that a sender whose body arrives slowly (bounded by the server's read timeout) holds no slot
// and keeps nobody else out.
func (h *handler) handle(w http.ResponseWriter, r *http.Request, p protocol, d *decoder) result {
	limit := h.opts.MaxRequestBytes
	if r.ContentLength > limit {
		return result{code: http.StatusRequestEntityTooLarge, why: rejectBodyTooLarge, msg: fmt.Sprintf("request body of %d bytes is over the limit of %d bytes", r.ContentLength, limit)}
	}
	var err error
	d.body, err = readBody(d.body, r.Body, r.ContentLength, limit)
	h.m.bytes[p].Add(float64(len(d.body)))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The server's read timeout: the sender was too slow, which another try may not be.
		h.m.shed[shedReadTimeout].Inc()
		w.Header().Set("Retry-After", retryAfter)
		return result{code: http.StatusServiceUnavailable, msg: "reading request body: " + err.Error() + ", retry later"}
	}
	if err != nil {
		return result{code: http.StatusBadRequest, why: rejectReadError, msg: "reading request body: " + err.Error()}
	}
	if int64(len(d.body)) > limit {
		return result{code: http.StatusRequestEntityTooLarge, why: rejectBodyTooLarge, msg: fmt.Sprintf("request body is over the limit of %d bytes", limit)}
	}
	select {
	case h.sem <- struct{}{}:
	default:
		h.m.shed[shedConcurrency].Inc()
		w.Header().Set("Retry-After", retryAfter)
		return result{code: http.StatusServiceUnavailable, msg: "too many concurrent requests (limit " + strconv.Itoa(h.opts.MaxConcurrentRequests) + "), retry later"}
	}
	defer func() { <-h.sem }()
	h.m.inFlight.Inc()
	defer h.m.inFlight.Dec()
	if res, over := h.overMemory(w); over {
		return res
	}

	// The length snappy declares is checked before anything is allocated for it.
	n, err := snappy.DecodedLen(d.body)
	if err != nil {
		return result{code: http.StatusBadRequest, why: rejectSnappy, msg: "snappy: " + err.Error()}
	}
	if int64(n) > limit {
		return result{code: http.StatusRequestEntityTooLarge, why: rejectDecodedTooLarge, msg: fmt.Sprintf("decoded body of %d bytes is over the limit of %d bytes", n, limit)}
	}
	if cap(d.buf) < n+wordSlack {
		d.buf = make([]byte, n+wordSlack) // copyWords reads past the last label
	}
	d.buf, err = snappy.Decode(d.buf[:cap(d.buf)], d.body)
	if err != nil {
		return result{code: http.StatusBadRequest, why: rejectSnappy, msg: "snappy: " + err.Error()}
	}
	h.m.decoded[p].Observe(float64(len(d.buf)))

	if p == protoV2 {
		err = d.decodeV2(d.buf)
	} else {
		err = d.decodeV1(d.buf)
	}
	if errors.Is(err, errMalformed) {
		return result{code: http.StatusBadRequest, why: rejectProtobuf, msg: "decoding " + protoMessage[p] + ": " + err.Error()}
	}
	for reason, c := range d.rejectedSamples {
		if c > 0 {
			h.m.rejected[reason].Add(float64(c))
		}
	}
	if err != nil { // over the series limit
		return result{code: http.StatusBadRequest, why: rejectTooManySeries, msg: err.Error()}
	}

	var res result
	res.samples, res.histograms, res.exemplars = d.b.Counts()
	if len(d.b.Series) > 0 || len(d.b.Metadata) > 0 {
		if err := h.app.Append(&d.b); err != nil {
			return result{code: http.StatusInternalServerError, msg: "appending: " + err.Error()}
		}
	}
	h.m.series[p].Add(float64(len(d.b.Series)))
	h.m.samples[p].Add(float64(res.samples))
	h.m.histograms[p].Add(float64(res.histograms))
	h.m.exemplars[p].Add(float64(res.exemplars))

	if d.rejectedSeries > 0 {
		res.code = http.StatusBadRequest
		res.why = rejectInvalidSeries
		res.msg = rejectionMessage(d)
		return res
	}
	res.code = http.StatusNoContent
	return res
}

// rejectionMessage describes a partial write in one line.
func rejectionMessage(d *decoder) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rejected %d of %d series (%d samples): %s", d.rejectedSeries, d.seriesTotal, d.rejectedTotal(), strings.ReplaceAll(d.first.reason.String(), "_", " "))
	if d.first.label != "" {
		fmt.Fprintf(&b, " %q", clip(d.first.label))
	}
	if d.first.metric != "" {
		fmt.Fprintf(&b, " in series of metric %q", clip(d.first.metric))
	}
	if d.rejectedSeries > 1 {
		b.WriteString(" (first of them)")
	}
	return b.String()
}

// maxQuoted bounds what a response or log line quotes of a client's strings (label names and
// values, headers), so that a hostile request cannot make either large.
const maxQuoted = 128

// clip shortens s to maxQuoted bytes, marking the cut.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "…"
}

var protoMessage = [numProtocols]string{protoUnknown: "request", protoV1: "prometheus.WriteRequest", protoV2: "io.prometheus.write.v2.Request"}

// put returns a decoder to the pool unless it holds more memory than is worth keeping.
func (h *handler) put(d *decoder) {
	size := cap(d.body) + cap(d.buf) +
		cap(d.labels)*int(unsafe.Sizeof(batch.Label{})) +
		cap(d.samples)*int(unsafe.Sizeof(batch.Sample{})) +
		cap(d.b.Series)*int(unsafe.Sizeof(batch.Series{})) +
		cap(d.symbols)*int(unsafe.Sizeof("")) +
		cap(d.meta)*int(unsafe.Sizeof(metaEntry{}))
	if size <= maxPooledBytes {
		h.pool.Put(d)
	}
}

// maxPrealloc bounds the body buffer allocated from the Content-Length before the body arrives.
const maxPrealloc = 1 << 20

// readBody reads body into buf (reusing its capacity) up to limit+1 bytes, so that a body over the
// limit is detected without reading it all. size is the Content-Length, -1 if unknown.
func readBody(buf []byte, body io.Reader, size, limit int64) ([]byte, error) {
	buf = buf[:0]
	if body == nil {
		return buf, nil
	}
	// The Content-Length sizes the buffer only up to maxPrealloc: beyond it the buffer grows
	// with what arrives, so that a sender announcing a large body and sending it slowly holds
	// only what it sent.
	if want := min(max(size+512, 4096), maxPrealloc); int64(cap(buf)) < want && size <= limit {
		buf = make([]byte, 0, want)
	}
	lr := io.LimitedReader{R: body, N: limit + 1}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

const (
	mediaType      = "application/x-protobuf"
	protoV1Message = "prometheus.WriteRequest"
	protoV2Message = "io.prometheus.write.v2.Request"
)

// negotiate picks the protocol from the Content-Type and checks the Content-Encoding, as the
// remote-write 2.0 spec says: application/x-protobuf without a proto parameter or with
// proto=prometheus.WriteRequest is 1.0, with proto=io.prometheus.write.v2.Request 2.0. A missing
// Content-Type is taken as 1.0, as Prometheus does, for old senders. The encoding must be snappy;
// a missing Content-Encoding is taken as snappy, the only encoding the specs define. The error
// says why the request is unsupported (415); the protocol is returned when it was recognized.
func negotiate(h http.Header) (protocol, error) {
	ct := h.Get("Content-Type")
	p := protoV1
	if ct != "" {
		media, params, _ := strings.Cut(ct, ";")
		if !strings.EqualFold(strings.TrimSpace(media), mediaType) {
			return protoUnknown, fmt.Errorf("unsupported Content-Type %q, want %s", clip(ct), mediaType)
		}
		for params != "" {
			var param string
			param, params, _ = strings.Cut(params, ";")
			if strings.TrimSpace(param) == "" {
				continue
			}
			k, v, ok := strings.Cut(param, "=")
			if !ok {
				return protoUnknown, fmt.Errorf("malformed Content-Type %q", clip(ct))
			}
			if !strings.EqualFold(strings.TrimSpace(k), "proto") {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			switch v {
			case protoV1Message:
				p = protoV1
			case protoV2Message:
				p = protoV2
			default:
				return protoUnknown, fmt.Errorf("unsupported proto %q in Content-Type, want %s or %s", clip(v), protoV1Message, protoV2Message)
			}
		}
	}
	switch enc := h.Values("Content-Encoding"); {
	case len(enc) > 1:
		return p, errors.New("more than one Content-Encoding, want snappy")
	case len(enc) == 1 && strings.TrimSpace(enc[0]) != "" && !strings.EqualFold(strings.TrimSpace(enc[0]), "snappy"):
		return p, fmt.Errorf("unsupported Content-Encoding %q, want snappy", clip(enc[0]))
	}
	return p, nil
}
