// Package backfill warms baselines up from history: it reads the recent past of a series from a
// Prometheus-compatible HTTP API and replays it through the series' detector.Stream, in timestamp
// order, before the store scores the series' live samples, so that a series known to Prometheus
// is scored without a learning period.
//
// Series come from two places: the rules' selectors, enumerated once at start (Discover), and the
// store, which announces every series it sees for the first time (RequestBackfill). Both go
// through one bounded queue served by a bounded number of workers, so that a burst of new series
// cannot flood the Prometheus behind it; a series that finds the queue full learns from its live
// samples as it would without a backfill.
//
// By default the history is read as raw samples, with range-vector instant queries
// (`{labels}[24h]` at the end of each day of the lookback): query_range resamples a series on its
// step, repeating a sample at every step until the next one, which would teach the model flat runs
// and zero counter rates that live data never has. With Options.Step set, query_range is used
// instead, on that step, which reads fewer points when the step is coarser than the scrape
// interval. Counters are read raw either way, and turned into rates by the same Stream as live
// samples.
package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// Defaults of Options.
const (
	DefaultLookback    = 3 * 7 * 24 * time.Hour
	DefaultConcurrency = 4
	DefaultQueueSize   = 100_000
	// DefaultChunk is the time range of one raw query: a day of 15-second samples is 5760 points.
	DefaultChunk = 24 * time.Hour
	// maxStepsPerQuery keeps a query_range under Prometheus's limit of 11000 points per series.
	maxStepsPerQuery = 10_000
	// queryTimeout bounds one query, retries included.
	queryTimeout = 2 * time.Minute
	queryRetries = 3
	// After unavailableAfter series in a row failed, the source counts as down for
	// unavailableFor: new series are not held for a backfill meanwhile, and queued ones are
	// released at once, so that an outage of Prometheus does not keep series from being scored.
	unavailableAfter = 8
	unavailableFor   = time.Minute
)

// Options configure a Backfiller. Zero fields take the defaults.
type Options struct {
	// Lookback is how far back the history of a series is read.
	Lookback time.Duration
	// Step, when positive, reads history with query_range on this step; zero reads raw samples.
	Step time.Duration
	// Chunk is the time range of one raw query (default one day).
	Chunk time.Duration
	// Concurrency is the number of series backfilled at once.
	Concurrency int
	// QueueSize bounds the series waiting for a worker.
	QueueSize int
	// ProgressInterval is how often progress is logged while series are pending (default 10s).
	ProgressInterval time.Duration
	// Now is the wall clock; tests replace it.
	Now func() time.Time
}

// NewAPI returns a client of the Prometheus HTTP API at url with the HTTP client settings (auth,
// TLS, proxy) of cfg.
func NewAPI(url string, cfg config.HTTPClientConfig) (v1.API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hc, err := config.NewClientFromConfig(cfg, "backfill")
	if err != nil {
		return nil, err
	}
	c, err := api.NewClient(api.Config{Address: url, Client: hc})
	if err != nil {
		return nil, err
	}
	return v1.NewAPI(c), nil
}

// Backfiller replays the history of series into a store. It implements
// detector.BackfillRequester.
type Backfiller struct {
	api    v1.API
	store  *detector.Store
	opts   Options
	logger *slog.Logger
	queue  chan job
	m      *metrics

	mu      sync.Mutex
	pending map[string]struct{} // queued or running, by labels
	types   map[string]batch.MetricType
	// The current busy period, from the first series queued while none was pending to the last
	// one done: what progress is reported against.
	periodStart            time.Time
	periodTotal            int
	periodDone, periodFail int
	periodSamples          int
	stats                  Stats
	// failedInARow counts consecutive failed series; downUntil is the end of an outage.
	failedInARow int
	downUntil    time.Time
}

// Stats count the series backfilled since the start.
type Stats struct {
	// Done counts the series replayed, Failed those whose history could not be read.
	Done, Failed int
	// Samples counts the samples replayed.
	Samples int
}

type job struct {
	ls      labels.Labels
	key     string
	counter bool
}

// New returns a Backfiller that reads history through api into store. Run serves its queue.
func New(api v1.API, store *detector.Store, opts Options, reg prometheus.Registerer, logger *slog.Logger) *Backfiller {
	if opts.Lookback <= 0 {
		opts.Lookback = DefaultLookback
	}
	if opts.Chunk <= 0 {
		opts.Chunk = DefaultChunk
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Backfiller{
		api: api, store: store, opts: opts, logger: logger,
		queue:   make(chan job, opts.QueueSize),
		m:       newMetrics(reg),
		pending: map[string]struct{}{},
		types:   map[string]batch.MetricType{},
	}
}

func key(ls labels.Labels) string { return string(ls.Bytes(nil)) }

// RequestBackfill queues a series the store saw for the first time. It never blocks: with the
// queue full the series is not backfilled (counted as dropped) and learns from live samples.
func (b *Backfiller) RequestBackfill(ls labels.Labels, counter bool) bool {
	k := key(ls)
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.pending[k]; ok {
		return true
	}
	if b.downLocked() {
		b.m.dropped.Inc()
		return false
	}
	select {
	case b.queue <- job{ls: ls, key: k, counter: counter}:
		b.addPendingLocked(k)
		return true
	default:
		b.m.dropped.Inc()
		return false
	}
}

func (b *Backfiller) addPendingLocked(k string) {
	if len(b.pending) == 0 {
		b.periodStart, b.periodTotal, b.periodDone, b.periodFail, b.periodSamples = b.opts.Now(), 0, 0, 0, 0
	}
	b.pending[k] = struct{}{}
	b.periodTotal++
	b.m.pending.Set(float64(len(b.pending)))
}

// Stats returns the counts since the start.
func (b *Backfiller) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// Pending is the number of series queued or being backfilled.
func (b *Backfiller) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Discover queues every series that the selectors match in the lookback and the store does not
// track yet, blocking while the queue is full. Each series is backfilled with the settings of the
// rule that selects it now; series no rule selects are left out. It returns the number queued.
func (b *Backfiller) Discover(ctx context.Context, selectors []string) (int, error) {
	end := b.opts.Now()
	start := end.Add(-b.opts.Lookback)
	queued := 0
	seen := map[string]struct{}{}
	for _, sel := range selectors {
		sets, warnings, _, err := b.api.Series(ctx, []string{sel}, start, end)
		if err != nil {
			return queued, fmt.Errorf("listing the series of %s: %w", sel, err)
		}
		for _, w := range warnings {
			b.logger.Warn("Warning from Prometheus", "selector", sel, "warning", w)
		}
		for _, set := range sets {
			ls := toLabels(prommodel.Metric(set))
			k := key(ls)
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			if _, _, ok := b.store.BackfillSettings(ls); !ok || b.store.Tracks(ls) {
				continue
			}
			j := job{ls: ls, key: k, counter: b.isCounter(ctx, ls.Get(prommodel.MetricNameLabel))}
			b.mu.Lock()
			_, dup := b.pending[k]
			if !dup {
				b.addPendingLocked(k)
			}
			b.mu.Unlock()
			if dup {
				continue
			}
			select {
			case b.queue <- j:
				queued++
			case <-ctx.Done():
				b.finish(j, false, 0)
				return queued, ctx.Err()
			}
		}
	}
	return queued, nil
}

// isCounter asks for the metric's type, as a sender's metadata would tell the store; without an
// answer the naming conventions decide.
func (b *Backfiller) isCounter(ctx context.Context, name string) bool {
	b.mu.Lock()
	t, known := b.types[name]
	b.mu.Unlock()
	if !known && name != "" {
		t = batch.Unknown
		if md, err := b.api.Metadata(ctx, name, "1"); err == nil {
			for _, m := range md[name] {
				t = MetricType(m.Type)
			}
		}
		b.mu.Lock()
		b.types[name] = t
		b.mu.Unlock()
	}
	return detector.IsCounter(t, name)
}

// MetricType maps a type from Prometheus's metadata API to the detector's, for the callers that
// read history through that API (backfill here, and anomalytool's backtests).
func MetricType(t v1.MetricType) batch.MetricType {
	switch t {
	case v1.MetricTypeCounter:
		return batch.Counter
	case v1.MetricTypeGauge:
		return batch.Gauge
	case v1.MetricTypeHistogram:
		return batch.Histogram
	case v1.MetricTypeGaugeHistogram:
		return batch.GaugeHistogram
	case v1.MetricTypeSummary:
		return batch.Summary
	case v1.MetricTypeInfo:
		return batch.Info
	case v1.MetricTypeStateset:
		return batch.StateSet
	}
	return batch.Unknown
}

// Run serves the queue with Options.Concurrency workers and logs progress until ctx is done.
// Series still queued then are released: they learn from live samples.
func (b *Backfiller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range b.opts.Concurrency {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-b.queue:
					b.process(ctx, j)
				}
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(b.opts.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				b.logProgress()
			}
		}
	})
	wg.Wait()
	for {
		select {
		case j := <-b.queue:
			b.store.AbortBackfill(j.ls)
			b.finish(j, false, 0)
		default:
			return
		}
	}
}

// Wait returns once no series is pending, or with ctx's error.
func (b *Backfiller) Wait(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for b.Pending() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// downLocked reports whether the source counts as down.
func (b *Backfiller) downLocked() bool {
	return !b.downUntil.IsZero() && b.opts.Now().Before(b.downUntil)
}

func (b *Backfiller) process(ctx context.Context, j job) {
	b.mu.Lock()
	down := b.downLocked()
	b.mu.Unlock()
	if down {
		b.store.AbortBackfill(j.ls)
		b.finish(j, false, 0)
		return
	}
	settings, fp, ok := b.store.BackfillSettings(j.ls)
	if !ok {
		b.store.AbortBackfill(j.ls)
		b.finish(j, true, 0)
		return
	}
	st, last, n, err := b.replay(ctx, j, &settings)
	if err != nil {
		b.store.AbortBackfill(j.ls)
		if ctx.Err() == nil {
			b.logger.Warn("Backfill of a series failed; it learns from live samples", "series", j.ls.String(), "err", err)
		}
		b.finish(j, false, n)
		return
	}
	b.store.InstallBackfill(j.ls, fp, st, last)
	b.finish(j, true, n)
}

// replay reads the series' history in chunks, oldest first, through a fresh stream.
func (b *Backfiller) replay(ctx context.Context, j job, settings *model.Settings) (*detector.Stream, *model.Result, int, error) {
	st := &detector.Stream{Counter: j.counter}
	var (
		last   model.Result
		scored bool
		n      int
	)
	push := func(ss *prommodel.SampleStream) {
		for _, p := range ss.Values {
			r, o := st.Push(int64(p.Timestamp), float64(p.Value), settings)
			if o != detector.SkipDuplicate { // chunks may share their boundary sample
				n++
			}
			if o == detector.Scored {
				last, scored = r, true
			}
		}
	}
	sel := selector(j.ls)
	end := b.opts.Now()
	start := end.Add(-b.opts.Lookback)
	for _, r := range b.ranges(start, end) {
		var (
			val prommodel.Value
			err error
		)
		if b.opts.Step > 0 {
			val, err = b.query(ctx, func(ctx context.Context) (prommodel.Value, v1.Warnings, error) {
				v, w, _, err := b.api.QueryRange(ctx, sel, r)
				return v, w, err
			})
		} else {
			q := fmt.Sprintf("%s[%dms]", sel, r.End.Sub(r.Start).Milliseconds())
			val, err = b.query(ctx, func(ctx context.Context) (prommodel.Value, v1.Warnings, error) {
				v, w, _, err := b.api.Query(ctx, q, r.End)
				return v, w, err
			})
		}
		if err != nil {
			return nil, nil, n, err
		}
		matrix, ok := val.(prommodel.Matrix)
		if !ok {
			return nil, nil, n, fmt.Errorf("query for %s returned a %s, want a matrix", sel, val.Type())
		}
		// The selector also matches series with more labels: take the one with exactly these.
		for _, ss := range matrix {
			if labels.Equal(toLabels(ss.Metric), j.ls) {
				push(ss)
			}
		}
	}
	if !scored {
		return st, nil, n, nil
	}
	return st, &last, n, nil
}

// ranges splits [start, end] into the ranges of one query each: Options.Chunk for raw samples,
// at most maxStepsPerQuery steps on the grid start + k*step for query_range, each range starting
// one step after the previous one ends.
func (b *Backfiller) ranges(start, end time.Time) []v1.Range {
	var out []v1.Range
	if b.opts.Step <= 0 {
		for s := start; s.Before(end); s = s.Add(b.opts.Chunk) {
			out = append(out, v1.Range{Start: s, End: minTime(s.Add(b.opts.Chunk), end)})
		}
		return out
	}
	span := b.opts.Step * maxStepsPerQuery
	for s := start; !s.After(end); {
		e := minTime(s.Add(span), end)
		out = append(out, v1.Range{Start: s, End: e, Step: b.opts.Step})
		s = e.Add(b.opts.Step)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// query runs one query with a timeout, retrying what may succeed on a second try.
func (b *Backfiller) query(ctx context.Context, do func(context.Context) (prommodel.Value, v1.Warnings, error)) (prommodel.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		val, warnings, err := do(ctx)
		b.m.queries.Inc()
		if err == nil {
			for _, w := range warnings {
				b.logger.Debug("Warning from Prometheus", "warning", w)
			}
			return val, nil
		}
		b.m.queryErrors.Inc()
		var apiErr *v1.Error
		if attempt == queryRetries || ctx.Err() != nil || errors.As(err, &apiErr) && apiErr.Type == v1.ErrBadData {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func (b *Backfiller) finish(j job, ok bool, samples int) {
	b.m.samples.Add(float64(samples))
	if ok {
		b.m.done.Inc()
	} else {
		b.m.failed.Inc()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, j.key)
	b.m.pending.Set(float64(len(b.pending)))
	if ok {
		b.periodDone++
		b.stats.Done++
	} else {
		b.periodFail++
		b.stats.Failed++
	}
	b.periodSamples += samples
	b.stats.Samples += samples
	switch {
	case ok:
		b.failedInARow = 0
	case samples == 0 && !b.downLocked():
		b.failedInARow++
		if b.failedInARow >= unavailableAfter {
			b.failedInARow = 0
			b.downUntil = b.opts.Now().Add(unavailableFor)
			b.logger.Error("Backfill source looks unavailable: series are not backfilled for a while and learn from live samples",
				"series_failed_in_a_row", unavailableAfter, "retry_after", unavailableFor)
		}
	}
	if len(b.pending) == 0 && b.periodTotal > 0 {
		b.logger.Info("Backfill caught up", "series", b.periodDone+b.periodFail, "failed", b.periodFail,
			"samples", b.periodSamples, "took", b.opts.Now().Sub(b.periodStart).Round(time.Millisecond))
		b.periodTotal = 0
	}
}

func (b *Backfiller) logProgress() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 || b.periodTotal == 0 {
		return
	}
	now := b.opts.Now()
	finished := b.periodDone + b.periodFail
	pct := 100 * float64(finished) / float64(b.periodTotal)
	attrs := []any{"percent", math.Round(pct*10) / 10, "done", b.periodDone, "failed", b.periodFail,
		"pending", len(b.pending), "samples", b.periodSamples}
	if finished > 0 {
		elapsed := now.Sub(b.periodStart)
		left := time.Duration(float64(elapsed) / float64(finished) * float64(len(b.pending)))
		attrs = append(attrs, "time_left", left.Round(time.Second))
	}
	b.logger.Info("Backfill progress", attrs...)
}

// selector is the PromQL selector of exactly these label values (it also matches series with
// more labels; replay keeps only the series itself).
func selector(ls labels.Labels) string {
	var b strings.Builder
	b.WriteByte('{')
	i := 0
	ls.Range(func(l labels.Label) {
		if i > 0 {
			b.WriteByte(',')
		}
		i++
		b.WriteString(labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value).String())
	})
	b.WriteByte('}')
	return b.String()
}

func toLabels(m prommodel.Metric) labels.Labels {
	b := labels.NewScratchBuilder(len(m))
	for n, v := range m {
		b.Add(string(n), string(v))
	}
	b.Sort()
	return b.Labels()
}

type metrics struct {
	pending     prometheus.Gauge
	done        prometheus.Counter
	failed      prometheus.Counter
	dropped     prometheus.Counter
	samples     prometheus.Counter
	queries     prometheus.Counter
	queryErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "anomaly_exporter", "backfill"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "series_pending",
			Help: "Series queued for a backfill or being backfilled; their live samples wait, and they are marked learning."}),
		done:        counter("series_done_total", "Series whose history was replayed (also those without history)."),
		failed:      counter("series_failed_total", "Series whose history could not be read; they learn from live samples."),
		dropped:     counter("series_dropped_total", "New series not backfilled because the queue was full; they learn from live samples."),
		samples:     counter("samples_total", "Samples of history replayed."),
		queries:     counter("queries_total", "Queries sent to the backfill source."),
		queryErrors: counter("query_errors_total", "Queries to the backfill source that failed (each retry counts)."),
	}
	if reg != nil {
		reg.MustRegister(m.pending, m.done, m.failed, m.dropped, m.samples, m.queries, m.queryErrors)
	}
	return m
}
