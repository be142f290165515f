package backfill

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/config"
	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// fakeProm serves the four calls the backfill makes from series held in memory, with
// Prometheus's semantics: a range selector returns the raw samples in [t-range, t], query_range
// the last sample at or before each step within five minutes.
type fakeProm struct {
	v1.API // the methods not overridden panic: the backfill must not call them
	series []fakeSeries
	types  map[string]v1.MetricType

	mu      sync.Mutex
	queries []string
	fail    func(q string) error
	block   chan struct{} // when set, queries wait for it to be closed
	// started, when set, is sent to (without waiting) as a query begins, before block.
	started chan struct{}
}

type fakeSeries struct {
	ls      labels.Labels
	samples []prommodel.SamplePair
}

func (f *fakeProm) match(ms []*labels.Matcher) []fakeSeries {
	var out []fakeSeries
	for _, s := range f.series {
		ok := true
		for _, m := range ms {
			ok = ok && m.Matches(s.ls.Get(m.Name))
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

func metric(ls labels.Labels) prommodel.Metric {
	m := prommodel.Metric{}
	ls.Range(func(l labels.Label) { m[prommodel.LabelName(l.Name)] = prommodel.LabelValue(l.Value) })
	return m
}

func (f *fakeProm) record(q string) error {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	fail, block, started := f.fail, f.block, f.started
	f.mu.Unlock()
	if started != nil {
		select {
		case started <- struct{}{}:
		default:
		}
	}
	if block != nil {
		<-block
	}
	if fail != nil {
		return fail(q)
	}
	return nil
}

func (f *fakeProm) Series(_ context.Context, matches []string, start, end time.Time, _ ...v1.Option) ([]prommodel.LabelSet, v1.Warnings, v1.Infos, error) {
	var out []prommodel.LabelSet
	for _, sel := range matches {
		ms, err := promql.ParseMetricSelector(sel)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, s := range f.match(ms) {
			out = append(out, prommodel.LabelSet(metric(s.ls)))
		}
	}
	return out, nil, nil, nil
}

func (f *fakeProm) Metadata(_ context.Context, name, _ string) (map[string][]v1.Metadata, error) {
	if t, ok := f.types[name]; ok {
		return map[string][]v1.Metadata{name: {{Type: t}}}, nil
	}
	return map[string][]v1.Metadata{}, nil
}

func (f *fakeProm) Query(_ context.Context, q string, ts time.Time, _ ...v1.Option) (prommodel.Value, v1.Warnings, v1.Infos, error) {
	if err := f.record(q); err != nil {
		return nil, nil, nil, err
	}
	expr, err := promql.ParseExpr(q)
	if err != nil {
		return nil, nil, nil, &v1.Error{Type: v1.ErrBadData, Msg: err.Error()}
	}
	ms := expr.(*parser.MatrixSelector)
	vs := ms.VectorSelector.(*parser.VectorSelector)
	from, to := prommodel.TimeFromUnixNano(ts.Add(-ms.Range).UnixNano()), prommodel.TimeFromUnixNano(ts.UnixNano())
	var out prommodel.Matrix
	for _, s := range f.match(vs.LabelMatchers) {
		ss := &prommodel.SampleStream{Metric: metric(s.ls)}
		for _, p := range s.samples {
			if p.Timestamp >= from && p.Timestamp <= to {
				ss.Values = append(ss.Values, p)
			}
		}
		if len(ss.Values) > 0 {
			out = append(out, ss)
		}
	}
	return out, nil, nil, nil
}

func (f *fakeProm) QueryRange(_ context.Context, q string, r v1.Range, _ ...v1.Option) (prommodel.Value, v1.Warnings, v1.Infos, error) {
	if err := f.record(q); err != nil {
		return nil, nil, nil, err
	}
	if steps := r.End.Sub(r.Start) / r.Step; steps > 11000 {
		return nil, nil, nil, &v1.Error{Type: v1.ErrBadData, Msg: "exceeded maximum resolution of 11,000 points per timeseries"}
	}
	ms, err := promql.ParseMetricSelector(q)
	if err != nil {
		return nil, nil, nil, err
	}
	var out prommodel.Matrix
	for _, s := range f.match(ms) {
		ss := &prommodel.SampleStream{Metric: metric(s.ls)}
		for t := r.Start; !t.After(r.End); t = t.Add(r.Step) {
			pt := prommodel.TimeFromUnixNano(t.UnixNano())
			var last *prommodel.SamplePair
			for i := range s.samples {
				if s.samples[i].Timestamp <= pt && s.samples[i].Timestamp > pt.Add(-5*time.Minute) {
					last = &s.samples[i]
				}
			}
			if last != nil {
				ss.Values = append(ss.Values, prommodel.SamplePair{Timestamp: pt, Value: last.Value})
			}
		}
		if len(ss.Values) > 0 {
			out = append(out, ss)
		}
	}
	return out, nil, nil, nil
}

// promql is the PromQL parser with default options.
var promql = parser.NewParser(parser.Options{})

// The test's wall clock: history ends at now.
// (the store's own clock, which decides staleness, is the real one).
var now = time.Now().UTC().Truncate(time.Minute)

// daily is a daily pattern with a little noise, every minute over the days before now.
func daily(days int, f func(t time.Time) float64) []prommodel.SamplePair {
	var out []prommodel.SamplePair
	for t := now.Add(-time.Duration(days) * 24 * time.Hour); t.Before(now); t = t.Add(time.Minute) {
		out = append(out, prommodel.SamplePair{Timestamp: prommodel.TimeFromUnixNano(t.UnixNano()), Value: prommodel.SampleValue(f(t))})
	}
	return out
}

func wave(t time.Time) float64 {
	h := float64(t.Unix()%86400) / 3600
	return 100 + 40*math.Sin(2*math.Pi*h/24) + float64(t.Unix()/60%5)
}

// counterOf integrates a rate into a counter.
func counterOf(samples []prommodel.SamplePair) []prommodel.SamplePair {
	out := make([]prommodel.SamplePair, len(samples))
	total := 0.0
	for i, p := range samples {
		total += float64(p.Value) * 60
		out[i] = prommodel.SamplePair{Timestamp: p.Timestamp, Value: prommodel.SampleValue(total)}
	}
	return out
}

// rules selects by metric name prefix, in order; "" matches everything.
type rules []string

func (r rules) Match(ls []batch.Label) (int, bool) {
	name := ""
	for _, l := range ls {
		if l.Name == "__name__" {
			name = l.Value
		}
	}
	for i, p := range r {
		if strings.HasPrefix(name, p) {
			return i, true
		}
	}
	return 0, false
}

func storeOptions(prefixes ...string) detector.Options {
	st := make([]model.Settings, len(prefixes))
	for i := range st {
		st[i] = model.DefaultSettings()
	}
	return detector.Options{Rules: rules(prefixes), Settings: st, StaleAfter: 5 * time.Minute, SeriesExpiry: time.Hour}
}

func ls(kv ...string) labels.Labels { return labels.FromStrings(kv...) }

func batchOf(l labels.Labels, typ batch.MetricType, samples ...prommodel.SamplePair) *batch.Batch {
	var bl []batch.Label
	l.Range(func(x labels.Label) { bl = append(bl, batch.Label{Name: x.Name, Value: x.Value}) })
	s := batch.Series{Labels: bl, Type: typ}
	for _, p := range samples {
		s.Samples = append(s.Samples, batch.Sample{T: int64(p.Timestamp), V: float64(p.Value)})
	}
	return &batch.Batch{Series: []batch.Series{s}}
}

func at(t time.Time, v float64) prommodel.SamplePair {
	return prommodel.SamplePair{Timestamp: prommodel.TimeFromUnixNano(t.UnixNano()), Value: prommodel.SampleValue(v)}
}

func newTest(t *testing.T, fake *fakeProm, opts Options, prefixes ...string) (*detector.Store, *Backfiller, *prometheus.Registry, context.CancelFunc) {
	t.Helper()
	reg := prometheus.NewRegistry()
	store := detector.NewStore(storeOptions(prefixes...), reg)
	opts.Now = func() time.Time { return now }
	if opts.Lookback == 0 {
		opts.Lookback = 4 * 24 * time.Hour
	}
	bf := New(fake, store, opts, reg, nil)
	store.SetBackfill(bf)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { bf.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return store, bf, reg, cancel
}

func wait(t *testing.T, bf *Backfiller) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, bf.Wait(ctx))
}

func scores(t *testing.T, s *detector.Store) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, s.WriteScores(&b))
	return b.String()
}

func TestFirstSightBackfill(t *testing.T) {
	gauge := ls("__name__", "temp", "job", "a")
	ctr := ls("__name__", "req_total", "job", "a")
	hist := daily(3, wave)
	fake := &fakeProm{series: []fakeSeries{
		{gauge, hist},
		{ctr, counterOf(hist)},
		{ls("__name__", "temp", "job", "a", "extra", "x"), daily(3, func(time.Time) float64 { return 1e6 })},
	}, block: make(chan struct{})}
	store, bf, reg, _ := newTest(t, fake, Options{Concurrency: 2}, "")

	// While the history is read, live samples wait, counted, and the series says it is learning.
	live := at(now, wave(now))
	require.NoError(t, store.Append(batchOf(gauge, batch.Gauge, live)))
	require.NoError(t, store.Append(batchOf(ctr, batch.Counter, at(now, float64(counterOf(hist)[len(hist)-1].Value)+wave(now)*60))))
	require.Equal(t, 2, bf.Pending())
	out := scores(t, store)
	require.Contains(t, out, `anomaly_learning{job="a",anomaly_metric="temp"} 1`)
	require.Contains(t, out, `anomaly_score{job="a",anomaly_metric="temp"} 0`)
	require.Equal(t, 2.0, skippedBackfilling(t, reg))
	close(fake.block)
	wait(t, bf)
	require.Equal(t, 2.0, testutil.ToFloat64(bf.m.done))
	require.Zero(t, testutil.ToFloat64(bf.m.pending))
	require.Equal(t, float64(2*len(hist)), testutil.ToFloat64(bf.m.samples), "the series with an extra label is not mixed in")

	// The installed model is exactly that of a stream fed the history.
	settings := model.DefaultSettings()
	ref := detector.Stream{}
	for _, p := range hist {
		ref.Push(int64(p.Timestamp), float64(p.Value), &settings)
	}
	next := now.Add(time.Minute)
	want, o := ref.Push(next.UnixMilli(), wave(next), &settings)
	require.Equal(t, detector.Scored, o)
	require.NoError(t, store.Append(batchOf(gauge, batch.Gauge, at(next, wave(next)))))
	got, ok := store.Lookup(gauge)
	require.True(t, ok)
	require.Equal(t, want, got)
	require.False(t, got.Learning, "three days of history cover the day of learning")
	require.Less(t, got.Score, 1.0)

	// The counter was read raw and turned into rates: its next rate is normal, a burst is not.
	last := float64(counterOf(hist)[len(hist)-1].Value) + wave(now)*60
	require.NoError(t, store.Append(batchOf(ctr, batch.Counter, at(next, last+wave(next)*60))))
	r, ok := store.Lookup(ctr)
	require.True(t, ok)
	require.False(t, r.Learning)
	require.Less(t, r.Score, 1.0)
	require.NoError(t, store.Append(batchOf(ctr, batch.Counter, at(next.Add(time.Minute), last+wave(next)*60+5*wave(next)*60))))
	r, _ = store.Lookup(ctr)
	require.Greater(t, r.Score, 1.0)

	// Raw samples were read a day at a time.
	require.Len(t, fake.queries, 2*4)
	require.Contains(t, fake.queries, `{__name__="temp",job="a"}[86400000ms]`)
}

func skippedBackfilling(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "anomaly_exporter_detector_samples_skipped_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "backfilling" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestDiscover(t *testing.T) {
	fake := &fakeProm{series: []fakeSeries{
		{ls("__name__", "app_load", "job", "a"), daily(2, wave)},
		{ls("__name__", "app_requests", "job", "a"), counterOf(daily(2, wave))},
		{ls("__name__", "app_load", "job", "known"), daily(2, wave)},
		{ls("__name__", "app_old", "job", "a"), daily(1, wave)[:10]},
		{ls("__name__", "other", "job", "a"), daily(2, wave)},
	}, types: map[string]v1.MetricType{"app_requests": v1.MetricTypeCounter}}
	store, bf, _, _ := newTest(t, fake, Options{}, "app_")
	// A series the store has (restored from a checkpoint) keeps its model.
	require.NoError(t, store.Append(batchOf(ls("__name__", "app_load", "job", "known"), batch.Gauge, at(now, 1))))
	wait(t, bf)

	n, err := bf.Discover(context.Background(), []string{`{__name__=~"app_.*"}`, `{job="a"}`})
	require.NoError(t, err)
	require.Equal(t, 3, n, "app_load, app_requests and app_old; other is selected by no rule")
	wait(t, bf)
	require.Equal(t, 4, store.Len())

	// Found in history, never sent yet: scored from history, seen at the time of its last sample.
	r, ok := store.Lookup(ls("__name__", "app_load", "job", "a"))
	require.True(t, ok)
	require.False(t, r.Learning)
	out := scores(t, store)
	require.Contains(t, out, `anomaly_score{job="a",anomaly_metric="app_load"}`)
	require.NotContains(t, out, `anomaly_metric="app_old"`, "its last sample is older than stale_after")
	// The metadata said counter: the expected value is a rate of about wave's level, not a
	// counter's value.
	r, ok = store.Lookup(ls("__name__", "app_requests", "job", "a"))
	require.True(t, ok)
	require.InDelta(t, 100, r.Expected, 60)
}

func TestQueueFullAndFailures(t *testing.T) {
	fake := &fakeProm{series: []fakeSeries{{ls("__name__", "a"), daily(2, wave)}}, block: make(chan struct{})}
	store, bf, _, _ := newTest(t, fake, Options{Concurrency: 1, QueueSize: 1}, "")
	// One series runs (blocked), one waits in the queue, the third finds the queue full.
	for _, n := range []string{"a", "b", "c"} {
		require.NoError(t, store.Append(batchOf(ls("__name__", n), batch.Gauge, at(now, 1))))
		if n == "a" {
			require.Eventually(t, func() bool { return len(bf.queue) == 0 }, 5*time.Second, time.Millisecond)
		}
	}
	require.Equal(t, 1.0, testutil.ToFloat64(bf.m.dropped))
	require.Equal(t, 2, bf.Pending())
	// The dropped series is scored live at once.
	require.NoError(t, store.Append(batchOf(ls("__name__", "c"), batch.Gauge, at(now.Add(time.Minute), 1))))
	r, ok := store.Lookup(ls("__name__", "c"))
	require.True(t, ok)
	require.True(t, r.Learning)
	require.False(t, math.IsNaN(r.Expected))

	// b's queries fail: it is released and learns live.
	fake.mu.Lock()
	fake.fail = func(q string) error {
		if strings.Contains(q, `"b"`) {
			return &v1.Error{Type: v1.ErrBadData, Msg: "no"}
		}
		return nil
	}
	fake.mu.Unlock()
	close(fake.block)
	wait(t, bf)
	require.Equal(t, 1.0, testutil.ToFloat64(bf.m.failed))
	require.Equal(t, 1.0, testutil.ToFloat64(bf.m.done))
	require.NoError(t, store.Append(batchOf(ls("__name__", "b"), batch.Gauge, at(now.Add(time.Minute), 1))))
	r, ok = store.Lookup(ls("__name__", "b"))
	require.True(t, ok)
	require.True(t, r.Learning, "no history: it learns")
}

func TestRetries(t *testing.T) {
	calls := 0
	fake := &fakeProm{series: []fakeSeries{{ls("__name__", "a"), daily(1, wave)}}}
	fake.fail = func(string) error {
		calls++
		if calls == 1 {
			return errors.New("connection reset")
		}
		return nil
	}
	store, bf, _, _ := newTest(t, fake, Options{Lookback: 12 * time.Hour}, "")
	require.NoError(t, store.Append(batchOf(ls("__name__", "a"), batch.Gauge, at(now, 1))))
	wait(t, bf)
	require.Equal(t, 1.0, testutil.ToFloat64(bf.m.done))
	require.Equal(t, 1.0, testutil.ToFloat64(bf.m.queryErrors))
}

func TestQueryRangeSteps(t *testing.T) {
	fake := &fakeProm{series: []fakeSeries{{ls("__name__", "a"), daily(8, wave)}}}
	store, bf, _, _ := newTest(t, fake, Options{Step: time.Minute, Lookback: 8 * 24 * time.Hour}, "")
	require.NoError(t, store.Append(batchOf(ls("__name__", "a"), batch.Gauge, at(now, 1))))
	wait(t, bf)
	require.Equal(t, 1.0, testutil.ToFloat64(bf.m.done))
	require.Len(t, fake.queries, 2, "8 days of minutes in queries of at most 10000 steps")
	require.Equal(t, float64(8*24*60+1), testutil.ToFloat64(bf.m.samples), "both ends of the range")
}

func TestRanges(t *testing.T) {
	b := &Backfiller{opts: Options{Chunk: 24 * time.Hour}}
	start := now.Add(-50 * time.Hour)
	rs := b.ranges(start, now)
	require.Len(t, rs, 3)
	require.Equal(t, start, rs[0].Start)
	require.Equal(t, rs[0].End, rs[1].Start, "range selectors are closed on the left in Prometheus 2, the stream drops the repeat")
	require.Equal(t, now, rs[2].End)

	b.opts.Step = time.Minute
	rs = b.ranges(now.Add(-20002*time.Minute), now)
	require.Len(t, rs, 3)
	for _, r := range rs {
		require.LessOrEqual(t, r.End.Sub(r.Start)/r.Step, time.Duration(maxStepsPerQuery))
	}
	require.Equal(t, rs[2].Start, rs[2].End, "the last point alone")
	require.Equal(t, rs[0].End.Add(time.Minute), rs[1].Start)
}

func TestSelector(t *testing.T) {
	require.Equal(t, `{__name__="m",path="a\"b\\c","service.name"="x"}`, selector(ls("__name__", "m", "path", `a"b\c`, "service.name", "x")))
	_, err := promql.ParseMetricSelector(selector(ls("__name__", "m", "path", `a"b\c`, "service.name", "x")))
	require.NoError(t, err)
}

func TestSettingsChangedDuringBackfill(t *testing.T) {
	fake := &fakeProm{series: []fakeSeries{{ls("__name__", "a"), daily(2, wave)}}, block: make(chan struct{}), started: make(chan struct{}, 1)}
	store, bf, _, _ := newTest(t, fake, Options{}, "")
	require.NoError(t, store.Append(batchOf(ls("__name__", "a"), batch.Gauge, at(now, 1))))
	// The settings change once the backfill has read them: its first query has begun. (Changed
	// before that, the backfill would replay with the new ones and rightly keep its model.)
	select {
	case <-fake.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the backfill did not query")
	}
	opts := storeOptions("")
	opts.Settings[0].Sensitivity = 2
	store.SetOptions(opts)
	close(fake.block)
	wait(t, bf)
	fake.mu.Lock()
	queries := len(fake.queries)
	fake.mu.Unlock()
	// The history was replayed with the old settings: the next sample drops it, and the series
	// is backfilled again, with the new ones. (Its score right after that sample is a race
	// between the two.)
	require.NoError(t, store.Append(batchOf(ls("__name__", "a"), batch.Gauge, at(now.Add(time.Minute), 1))))
	wait(t, bf)
	require.Equal(t, 2.0, testutil.ToFloat64(bf.m.done), "backfilled again")
	require.Len(t, fake.queries, 2*queries)
	r, ok := store.Lookup(ls("__name__", "a"))
	require.True(t, ok)
	require.False(t, r.Learning, "the second backfill's model, two days of history")
}

func TestNewAPIUsesHTTPConfig(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":[]}`)
	}))
	defer srv.Close()
	cfg, err := config.LoadHTTPConfig("authorization:\n  credentials: s3cret\n")
	require.NoError(t, err)
	a, err := NewAPI(srv.URL, *cfg)
	require.NoError(t, err)
	_, _, _, err = a.Series(context.Background(), []string{`{job="x"}`}, now.Add(-time.Hour), now)
	require.NoError(t, err)
	require.Equal(t, "Bearer s3cret", gotAuth)
}

func TestSourceDown(t *testing.T) {
	fake := &fakeProm{fail: func(string) error { return &v1.Error{Type: v1.ErrBadData, Msg: "down"} }, block: make(chan struct{})}
	store, bf, _, _ := newTest(t, fake, Options{Concurrency: 1}, "")
	for i := range 20 {
		require.NoError(t, store.Append(batchOf(ls("__name__", fmt.Sprint("s", i)), batch.Gauge, at(now, 1))))
	}
	require.Equal(t, 20, bf.Pending())
	close(fake.block)
	wait(t, bf)
	require.Equal(t, 20.0, testutil.ToFloat64(bf.m.failed))
	fake.mu.Lock()
	require.Len(t, fake.queries, unavailableAfter, "after that many failures the rest are released without a query")
	fake.mu.Unlock()
	// Meanwhile a new series is scored live at once.
	require.NoError(t, store.Append(batchOf(ls("__name__", "new"), batch.Gauge, at(now, 1))))
	require.Zero(t, bf.Pending())
	r, ok := store.Lookup(ls("__name__", "new"))
	require.True(t, ok)
	require.False(t, math.IsNaN(r.Expected))
}
