package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// This file is the sending side: it remote-writes the output series (the scores) to receivers
// such as Prometheus with its receiver enabled, VictoriaMetrics, Mimir or Thanos Receive. The
// store hands it the points of every Append (detector.Output); each URL has its own bounded
// queues, split into shards by series so that the samples of one series are sent in order, and
// each shard a goroutine that batches by count and deadline and retries what can succeed later.

// Sender defaults.
const (
	DefaultQueueCapacity     = 1_000_000 // samples per URL
	DefaultMaxSamplesPerSend = 6000
	DefaultBatchSendDeadline = time.Second
	DefaultSenderShards      = 4
	DefaultMinBackoff        = 30 * time.Millisecond
	DefaultMaxBackoff        = 5 * time.Second
	DefaultRemoteTimeout     = 30 * time.Second
	// maxRetryAfter bounds how long a receiver's Retry-After may hold a shard back.
	maxRetryAfter = time.Minute
)

// SenderOptions configure the sending of the output series. The zero value of every field but
// URLs means its default.
type SenderOptions struct {
	// URLs are the remote-write endpoints; every one gets every output sample.
	URLs []string
	// HTTPClientConfig is the authentication and TLS of every URL (prometheus/common).
	HTTPClientConfig config.HTTPClientConfig
	// ProtobufMessage is MessageV1 (remote write 1.0, the default) or MessageV2 (2.0).
	ProtobufMessage string
	// QueueCapacity bounds the samples queued per URL; beyond it the oldest are dropped.
	QueueCapacity int
	// MaxSamplesPerSend is the largest request, in samples; rounded down to whole points (six
	// samples, one per output family).
	MaxSamplesPerSend int
	// BatchSendDeadline is how long a partial batch waits for more samples.
	BatchSendDeadline time.Duration
	// Shards is the number of concurrent requests per URL.
	Shards int
	// MinBackoff and MaxBackoff bound the exponential backoff between retries.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one request.
	Timeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
}

func (o SenderOptions) withDefaults() SenderOptions {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.QueueCapacity, DefaultQueueCapacity)
	def(&o.MaxSamplesPerSend, DefaultMaxSamplesPerSend)
	def(&o.Shards, DefaultSenderShards)
	defD(&o.BatchSendDeadline, DefaultBatchSendDeadline)
	defD(&o.MinBackoff, DefaultMinBackoff)
	defD(&o.MaxBackoff, DefaultMaxBackoff)
	defD(&o.Timeout, DefaultRemoteTimeout)
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.ProtobufMessage == "" {
		o.ProtobufMessage = MessageV1
	}
	if o.UserAgent == "" {
		o.UserAgent = "anomaly_exporter"
	}
	return o
}

// Senders remote-writes the output series to every configured URL. It implements
// detector.Output. Close flushes it.
type Senders struct {
	senders []*sender
	// mu orders WritePoints before Close: once closed, nothing more is queued.
	mu     sync.RWMutex
	closed bool
}

// sender is one URL.
type sender struct {
	opts     SenderOptions
	url      string // with credentials, for requests
	label    string // redacted, for metrics and logs
	client   *http.Client
	shards   []*ring
	batch    int // points per request
	queueCap int // points per shard
	stopping chan struct{}
	ctx      context.Context // cancelled when a flush runs out of time
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	logger   *slog.Logger
	lastLog  atomic.Int64 // unix nanoseconds of the last warning, to rate-limit them
	m        senderMetrics
}

type senderMetrics struct {
	sent, failed, dropped, retries prometheus.Counter
	queue                          prometheus.Gauge
	duration                       prometheus.Observer
}

// NewSenders validates the options, registers the metrics on reg (nil: not registered) and
// starts sending. logger may be nil.
func NewSenders(opts SenderOptions, reg prometheus.Registerer, logger *slog.Logger) (*Senders, error) {
	opts = opts.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.ProtobufMessage != MessageV1 && opts.ProtobufMessage != MessageV2 {
		return nil, fmt.Errorf("remote-write protobuf message %q: want %s or %s", opts.ProtobufMessage, MessageV1, MessageV2)
	}
	if err := opts.HTTPClientConfig.Validate(); err != nil {
		return nil, fmt.Errorf("remote-write HTTP client config: %w", err)
	}
	vecs := newSenderVecs()
	seen := map[string]bool{}
	s := &Senders{}
	for _, raw := range opts.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("remote-write URL %q: want an absolute http or https URL", raw)
		}
		if seen[u.String()] {
			return nil, fmt.Errorf("remote-write URL %q given twice", u.Redacted())
		}
		seen[u.String()] = true
		client, err := config.NewClientFromConfig(opts.HTTPClientConfig, "remote_write", config.WithUserAgent(opts.UserAgent))
		if err != nil {
			return nil, fmt.Errorf("remote-write HTTP client for %s: %w", u.Redacted(), err)
		}
		client.Timeout = opts.Timeout
		s.senders = append(s.senders, newSender(opts, u, client, vecs, logger))
	}
	if reg != nil && len(s.senders) > 0 {
		for _, c := range vecs.collectors() {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	for _, snd := range s.senders {
		snd.start()
	}
	return s, nil
}

func newSender(opts SenderOptions, u *url.URL, client *http.Client, v *senderVecs, logger *slog.Logger) *sender {
	label := u.Redacted()
	ctx, cancel := context.WithCancel(context.Background())
	s := &sender{
		opts: opts, url: u.String(), label: label, client: client,
		batch:    max(1, opts.MaxSamplesPerSend/detector.NumFamilies),
		queueCap: max(1, (opts.QueueCapacity/detector.NumFamilies+opts.Shards-1)/opts.Shards),
		stopping: make(chan struct{}),
		ctx:      ctx, cancel: cancel,
		logger: logger.With("url", label),
		m: senderMetrics{
			sent: v.sent.WithLabelValues(label), failed: v.failed.WithLabelValues(label),
			dropped: v.dropped.WithLabelValues(label), retries: v.retries.WithLabelValues(label),
			queue: v.queue.WithLabelValues(label), duration: v.duration.WithLabelValues(label),
		},
	}
	for range opts.Shards {
		s.shards = append(s.shards, newRing(s.queueCap, s.batch))
	}
	return s
}

// WritePoints queues the points for every URL. It never blocks on the network.
func (s *Senders) WritePoints(ps []detector.Point) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		for _, snd := range s.senders {
			snd.m.dropped.Add(float64(len(ps) * detector.NumFamilies))
		}
		return
	}
	for _, snd := range s.senders {
		snd.enqueue(ps)
	}
}

// Close stops taking points and sends what is queued, retrying until ctx is done; what is still
// queued then is counted as dropped. It returns ctx's error if the flush did not finish.
func (s *Senders) Close(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if closed {
		return nil
	}
	for _, snd := range s.senders {
		close(snd.stopping)
	}
	done := make(chan struct{})
	go func() {
		for _, snd := range s.senders {
			snd.wg.Wait()
		}
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, snd := range s.senders {
			snd.cancel()
		}
		<-done
	}
	for _, snd := range s.senders {
		snd.cancel()
		n := 0
		for _, q := range snd.shards {
			n += q.reset()
		}
		if n > 0 {
			snd.m.dropped.Add(float64(n * detector.NumFamilies))
			snd.m.queue.Sub(float64(n * detector.NumFamilies))
			snd.logger.Warn("Remote write: samples still queued at shutdown were dropped", "samples", n*detector.NumFamilies)
		}
	}
	return err
}

func (s *sender) enqueue(ps []detector.Point) {
	n := uint64(len(s.shards))
	queued, dropped := 0, 0
	for k, q := range s.shards {
		qd, dr := q.push(ps, uint64(k), n)
		queued += qd
		dropped += dr
	}
	if dropped > 0 {
		s.m.dropped.Add(float64(dropped * detector.NumFamilies))
		s.warn("Remote write: queue full, oldest samples dropped", "dropped_samples", dropped*detector.NumFamilies)
	}
	s.m.queue.Add(float64((queued - dropped) * detector.NumFamilies))
}

func (s *sender) start() {
	for _, q := range s.shards {
		s.wg.Add(1)
		go s.run(q)
	}
}

// run is one shard's loop: wait for a batch, send it (with retries), until stopped and drained.
func (s *sender) run(q *ring) {
	defer s.wg.Done()
	enc := newEncoder(s.opts.ProtobufMessage)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []detector.Point
	for s.wait(q, timer) {
		batch = q.take(batch[:0], s.batch)
		s.m.queue.Sub(float64(len(batch) * detector.NumFamilies))
		s.send(enc, batch)
		clear(batch)
		if s.ctx.Err() != nil {
			return
		}
	}
}

// wait returns when the queue holds a full batch, or some points have waited for the batch
// deadline, or the sender is stopping and the queue is not empty; false when the sender is
// stopping and the queue is empty.
func (s *sender) wait(q *ring, timer *time.Timer) bool {
	for q.len() == 0 {
		select {
		case <-q.notify:
		case <-s.stopping:
			return q.len() > 0
		}
	}
	if q.len() >= s.batch {
		return true
	}
	timer.Reset(s.opts.BatchSendDeadline)
	defer timer.Stop()
	for q.len() < s.batch {
		select {
		case <-q.notify:
		case <-timer.C:
			return true
		case <-s.stopping:
			return true
		}
	}
	return true
}

// send delivers one batch: on success it is sent; on a 4xx other than 429 it failed for good;
// on a 5xx, a 429 or a network error it is retried with exponential backoff (or after the
// receiver's Retry-After) until it succeeds or the sender's flush runs out of time.
func (s *sender) send(enc *encoder, batch []detector.Point) {
	if len(batch) == 0 {
		return
	}
	samples := float64(len(batch) * detector.NumFamilies)
	body := enc.encode(batch)
	backoff := s.opts.MinBackoff
	for {
		start := time.Now()
		code, retryAfter, msg, err := s.post(body)
		s.m.duration.Observe(time.Since(start).Seconds())
		switch {
		case err == nil && code/100 == 2:
			s.m.sent.Add(samples)
			return
		case err == nil && code != http.StatusTooManyRequests && code/100 != 5:
			s.m.failed.Add(samples)
			s.warn("Remote write: receiver rejected samples; not retrying", "code", code, "samples", samples, "response", msg)
			return
		case s.ctx.Err() != nil:
			s.m.failed.Add(samples)
			return
		}
		if err != nil {
			s.warn("Remote write: request failed; retrying", "err", err, "backoff", backoff)
		} else {
			s.warn("Remote write: receiver asks to retry", "code", code, "response", msg, "backoff", max(backoff, retryAfter))
		}
		s.m.retries.Inc()
		wait := max(backoff, min(retryAfter, maxRetryAfter))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			s.m.failed.Add(samples)
			return
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

// post sends one request, returning the status code, the Retry-After delay (0 if none), and
// the first line of an error response.
func (s *sender) post(body []byte) (code int, retryAfter time.Duration, msg string, err error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", err
	}
	req.Header.Set("Content-Encoding", "snappy")
	if s.opts.ProtobufMessage == MessageV2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto="+MessageV2)
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		msg, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After")), msg, nil
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

// warn logs at most one warning every 10 seconds per URL, so that a receiver that is down does
// not flood the log; the counters tell the full story.
func (s *sender) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(10*time.Second) || !s.lastLog.CompareAndSwap(last, now) {
		s.logger.Debug(msg, args...)
		return
	}
	s.logger.Warn(msg, args...)
}

// senderVecs are the metric vectors shared by the senders of all URLs.
type senderVecs struct {
	sent, failed, dropped, retries *prometheus.CounterVec
	queue                          *prometheus.GaugeVec
	duration                       *prometheus.HistogramVec
}

func newSenderVecs() *senderVecs {
	const sub = "remote_write_out"
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help}, []string{"url"})
	}
	return &senderVecs{
		sent:    counter("samples_sent_total", "Output samples remote-written and accepted by the receiver (--remote-write.url), by URL."),
		failed:  counter("samples_failed_total", "Output samples the receiver rejected for good (a 4xx other than 429), or still being retried when the exporter stopped, by URL."),
		dropped: counter("samples_dropped_total", "Output samples never sent: pushed out of a full queue (oldest first) or still queued when the exporter stopped, by URL."),
		retries: counter("retries_total", "Remote-write requests retried after a 5xx, a 429 or a network error, by URL."),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: sub, Name: "queue_length",
			Help: "Output samples queued for remote write, by URL."}, []string{"url"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: sub, Name: "request_duration_seconds",
			Help: "Duration of remote-write requests sending output samples, by URL.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"url"}),
	}
}

func (v *senderVecs) collectors() []prometheus.Collector {
	return []prometheus.Collector{v.sent, v.failed, v.dropped, v.retries, v.queue, v.duration}
}
