package detector

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// prefixRules selects series by metric-name prefix, rule i for prefixes[i].
type prefixRules []string

func (p prefixRules) Match(ls []batch.Label) (int, bool) {
	name := metricName(ls)
	for i, pre := range p {
		if strings.HasPrefix(name, pre) {
			return i, true
		}
	}
	return 0, false
}

func testOptions(prefixes ...string) Options {
	if len(prefixes) == 0 {
		prefixes = []string{""}
	}
	st := make([]model.Settings, len(prefixes))
	for i := range st {
		st[i] = model.DefaultSettings()
		st[i].LearningPeriod = time.Hour
	}
	return Options{Rules: prefixRules(prefixes), Settings: st, StaleAfter: 5 * time.Minute, SeriesExpiry: time.Hour}
}

// testStore is a store on a fake wall clock.
type testStore struct {
	*Store
	reg   *prometheus.Registry
	clock time.Time
}

func newTestStore(t *testing.T, opts Options) *testStore {
	t.Helper()
	reg := prometheus.NewRegistry()
	ts := &testStore{Store: NewStore(opts, reg), reg: reg, clock: time.Unix(1_700_000_000, 0)}
	ts.now = func() time.Time { return ts.clock }
	return ts
}

func series(typ batch.MetricType, samples []batch.Sample, kv ...string) batch.Series {
	b := labels.NewScratchBuilder(len(kv) / 2)
	for i := 0; i < len(kv); i += 2 {
		b.Add(kv[i], kv[i+1])
	}
	b.Sort()
	var ls []batch.Label
	b.Labels().Range(func(l labels.Label) { ls = append(ls, batch.Label{Name: l.Name, Value: l.Value}) })
	return batch.Series{Labels: ls, Type: typ, Samples: samples}
}

func ramp(n int, start int64, step time.Duration, f func(i int) float64) []batch.Sample {
	out := make([]batch.Sample, n)
	for i := range out {
		out[i] = batch.Sample{T: start + int64(i)*step.Milliseconds(), V: f(i)}
	}
	return out
}

func skipped(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "anomaly_exporter_detector_samples_skipped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestStoreTracksAndScores(t *testing.T) {
	s := newTestStore(t, testOptions())
	a := series(batch.Gauge, ramp(3, 0, time.Minute, func(int) float64 { return 5 }), "__name__", "temp", "job", "a")
	b := series(batch.Gauge, ramp(3, 0, time.Minute, func(int) float64 { return 7 }), "__name__", "temp", "job", "b")
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{a, b}}))
	require.Equal(t, 2, s.Len())
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{a}}))
	require.Equal(t, 2, s.Len(), "a known series is found, not created again")
	_, ok := s.Lookup(labels.FromStrings("__name__", "temp", "job", "a"))
	require.True(t, ok)
	require.Equal(t, 2.0, testutil.ToFloat64(s.metrics.created))
	// 3 + 3 new samples, then 3 repeats of a's timestamps (duplicates/out of order are skipped).
	require.Equal(t, 6.0, testutil.ToFloat64(s.metrics.scored))
	require.Equal(t, 2.0, skipped(t, s.reg, "out_of_order"))
	require.Equal(t, 1.0, skipped(t, s.reg, "duplicate"))
}

func TestStoreRulesAndLimit(t *testing.T) {
	opts := testOptions("http_")
	opts.MaxSeries = 2
	s := newTestStore(t, opts)
	one := ramp(1, 0, time.Minute, func(int) float64 { return 1 })
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, one, "__name__", "node_load1"),
		series(batch.Gauge, one, "__name__", "http_a"),
		series(batch.Gauge, one, "__name__", "http_b"),
		series(batch.Gauge, one, "__name__", "http_c"),
	}}))
	require.Equal(t, 2, s.Len())
	require.Equal(t, 1.0, skipped(t, s.reg, "no_rule"))
	require.Equal(t, 1.0, skipped(t, s.reg, "series_limit"))
	// A request's series are taken shard by shard: which of the three is over the limit depends
	// on their hashes, but exactly one is, and it is not tracked.
	tracked := 0
	for _, n := range []string{"http_a", "http_b", "http_c"} {
		if _, ok := s.Lookup(labels.FromStrings("__name__", n)); ok {
			tracked++
		}
	}
	require.Equal(t, 2, tracked, "the series over the limit is not tracked")
}

func TestStoreStaleAndExpiry(t *testing.T) {
	s := newTestStore(t, testOptions())
	lbls := []string{"__name__", "up", "job", "x"}
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, ramp(2, 0, time.Minute, func(int) float64 { return 1 }), lbls...),
	}}))
	require.Contains(t, scores(t, s), `anomaly_score{job="x",anomaly_metric="up"}`)

	// A stale marker ends the series' scores at once.
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, []batch.Sample{{T: 180_000, V: math.Float64frombits(value.StaleNaN)}}, lbls...),
	}}))
	require.NotContains(t, scores(t, s), "anomaly_score{")
	require.Equal(t, 1, s.Len(), "the model is kept until expiry")

	// The series comes back, then goes quiet: hidden after stale_after, forgotten after expiry.
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, []batch.Sample{{T: 240_000, V: 1}}, lbls...),
	}}))
	require.Contains(t, scores(t, s), `anomaly_score{job="x",anomaly_metric="up"}`)
	s.clock = s.clock.Add(6 * time.Minute)
	require.NotContains(t, scores(t, s), "anomaly_score{")
	require.Equal(t, 0, s.Expire())
	s.clock = s.clock.Add(time.Hour)
	require.Equal(t, 1, s.Expire())
	require.Equal(t, 0, s.Len())
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.expired))
	// Expiry finds the series' index slot from its labels (the entry keeps no xxhash): none
	// is left behind.
	for k := range s.shards {
		require.Zero(t, s.shards[k].index.len(), "shard %d", k)
	}
}

func TestStoreCounters(t *testing.T) {
	for _, tc := range []struct {
		typ     batch.MetricType
		name    string
		counter bool
	}{
		{batch.Unknown, "http_requests_total", true},
		{batch.Unknown, "rpc_duration_seconds_count", true},
		{batch.Unknown, "rpc_duration_seconds_bucket", true},
		{batch.Unknown, "node_load1", false},
		{batch.Counter, "weird_name", true},
		{batch.Gauge, "queue_total", false},
		{batch.Summary, "rpc_duration_seconds", false}, // a quantile series
		{batch.Summary, "rpc_duration_seconds_sum", true},
		{batch.GaugeHistogram, "queue_size_bucket", false},
	} {
		require.Equal(t, tc.counter, IsCounter(tc.typ, tc.name), "%s %s", tc.typ, tc.name)
	}

	s := newTestStore(t, testOptions())
	// 10/s for 3 minutes, then a reset: the first sample and the reset are skipped, the rest scored as rates.
	vals := []float64{100, 700, 1300, 1900, 50, 650}
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Unknown, ramp(len(vals), 0, time.Minute, func(i int) float64 { return vals[i] }), "__name__", "req_total"),
	}}))
	require.Equal(t, 1.0, skipped(t, s.reg, "counter_first"))
	require.Equal(t, 1.0, skipped(t, s.reg, "counter_reset"))
	require.Equal(t, 4.0, testutil.ToFloat64(s.metrics.scored))
	require.Contains(t, scores(t, s), `anomaly_value{anomaly_metric="req_total"} 10`)
}

func TestStoreReloadKeepsUnchangedModels(t *testing.T) {
	opts := testOptions("a_", "b_")
	s := newTestStore(t, opts)
	send := func(from int64) {
		require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
			series(batch.Gauge, ramp(3, from, time.Minute, func(int) float64 { return 1 }), "__name__", "a_x"),
			series(batch.Gauge, ramp(3, from, time.Minute, func(int) float64 { return 1 }), "__name__", "b_x"),
		}}))
	}
	send(0)
	entryOf := func(name string) *entry {
		ls := []batch.Label{{Name: "__name__", Value: name}}
		h := hashLabels(ls)
		return s.shards[h>>(64-shardBits)].lookup(h, ls)
	}
	require.True(t, entryOf("a_x").stream.primed)

	// Rule b changes its settings; a keeps its model, b starts over.
	next := testOptions("a_", "b_")
	next.Settings[1].Sensitivity = 2
	s.SetOptions(next)
	send(int64(10 * time.Minute / time.Millisecond))

	// References: a stream fed all six samples, and one fed only the three after the reload.
	var kept, restarted Stream
	for _, smp := range ramp(3, 0, time.Minute, func(int) float64 { return 1 }) {
		kept.Push(smp.T, smp.V, &opts.Settings[0])
	}
	for _, smp := range ramp(3, int64(10*time.Minute/time.Millisecond), time.Minute, func(int) float64 { return 1 }) {
		kept.Push(smp.T, smp.V, &next.Settings[0])
		restarted.Push(smp.T, smp.V, &next.Settings[1])
	}
	require.Equal(t, kept, entryOf("a_x").stream, "unchanged settings keep the model")
	require.Equal(t, restarted, entryOf("b_x").stream, "changed settings start over")
	require.NotEqual(t, kept.Model, restarted.Model)

	// A reload whose rules no longer select b_ forgets it on its next sample.
	s.SetOptions(testOptions("a_"))
	send(int64(20 * time.Minute / time.Millisecond))
	require.Equal(t, 1, s.Len())
	require.Nil(t, entryOf("b_x"))
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.unselected))
}

func TestShardHashCollisions(t *testing.T) {
	var sh shard
	mk := func(v string) []batch.Label { return []batch.Label{{Name: "__name__", Value: v}} }
	// Three different label sets forced onto one hash.
	for _, v := range []string{"a", "b", "c"} {
		sh.insert(42, mk(v))
	}
	for _, v := range []string{"a", "b", "c"} {
		e := sh.lookup(42, mk(v))
		require.NotNil(t, e, v)
		require.Equal(t, v, e.labels.Get("__name__"))
	}
	require.Nil(t, sh.lookup(42, mk("d")))
	// Removing the middle and the head keeps the rest reachable, and slots are reused.
	sh.remove(sh.indexOf(sh.lookup(42, mk("b")), 42), 42)
	require.Nil(t, sh.lookup(42, mk("b")))
	sh.remove(sh.indexOf(sh.lookup(42, mk("c")), 42), 42)
	require.NotNil(t, sh.lookup(42, mk("a")))
	sh.insert(42, mk("e"))
	require.EqualValues(t, 3, sh.used, "freed slots are reused")
	require.NotNil(t, sh.lookup(42, mk("e")))
	sh.remove(sh.indexOf(sh.lookup(42, mk("a")), 42), 42)
	sh.remove(sh.indexOf(sh.lookup(42, mk("e")), 42), 42)
	require.Zero(t, sh.index.len())
}

func TestExpositionLabels(t *testing.T) {
	s := newTestStore(t, testOptions())
	one := []batch.Sample{{T: 0, V: 1}}
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, one, "__name__", "m", "anomaly_metric", "mine", "exported_anomaly_metric", "old"),
		series(batch.Gauge, one, "__name__", "m", "path", "a\"b\\c\nd"),
		series(batch.Gauge, one, "__name__", "m", "service.name", "x"),
	}}))
	out := scores(t, s)
	require.Contains(t, out, `anomaly_score{exported_anomaly_metric="mine",exported_exported_anomaly_metric="old",anomaly_metric="m"} `)
	require.Contains(t, out, `anomaly_score{path="a\"b\\c\nd",anomaly_metric="m"} `)
	require.Contains(t, out, `anomaly_score{service_name="x",anomaly_metric="m"} `)
	// Every family appears once, whole, with HELP and TYPE.
	for _, f := range families {
		require.Equal(t, 1, strings.Count(out, "# TYPE "+f.name+" gauge\n"))
		require.Equal(t, 3, strings.Count(out, "\n"+f.name+"{"))
	}
}

func scores(t *testing.T, s *testStore) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, s.WriteScores(&buf))
	return buf.String()
}

func TestStoreRemembersFamilyTypes(t *testing.T) {
	s := newTestStore(t, testOptions())
	vals := []float64{100, 700, 1300}
	// Metadata arrives on its own, as Prometheus sends it over RW 1.0.
	require.NoError(t, s.Append(&batch.Batch{Metadata: []batch.Metadata{
		{Family: "jobs_processed", Type: batch.Counter}, {Family: "queue_total", Type: batch.Gauge},
	}}))
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Unknown, ramp(3, 0, time.Minute, func(i int) float64 { return vals[i] }), "__name__", "jobs_processed"),
		series(batch.Unknown, ramp(3, 0, time.Minute, func(i int) float64 { return vals[i] }), "__name__", "queue_total"),
		series(batch.Unknown, ramp(3, 0, time.Minute, func(i int) float64 { return vals[i] }), "__name__", "other_total"),
	}}))
	out := scores(t, s)
	require.Contains(t, out, `anomaly_value{anomaly_metric="jobs_processed"} 10`+"\n", "a counter by metadata, despite its name")
	require.Contains(t, out, `anomaly_value{anomaly_metric="queue_total"} 1300`+"\n", "a gauge by metadata, despite its name")
	require.Contains(t, out, `anomaly_value{anomaly_metric="other_total"} 10`+"\n", "no metadata: the naming convention")
}

func TestStoreSkipsOwnOutput(t *testing.T) {
	s := newTestStore(t, testOptions())
	one := ramp(1, 0, time.Minute, func(int) float64 { return 1 })
	// What a sender selecting by job sends back of our output is never scored.
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, one, "__name__", "anomaly_score", "anomaly_metric", "http_a"),
		series(batch.Gauge, one, "__name__", "http_anomaly_score", "anomaly_metric", "http_a"), // not ours
		series(batch.Gauge, one, "__name__", "cluster_namespace_job:anomaly_anomalous_series:count", "job", "x"),
		series(batch.Gauge, one, "__name__", "instance:anomaly_exporter_detector_samples_scored:rate5m"), // ours, but self metrics
		series(batch.Gauge, one, "__name__", "ALERTS", "alertname", "AnomalyDetected", "alertstate", "firing"),
		series(batch.Gauge, one, "__name__", "ALERTS", "alertname", "HighLatency", "alertstate", "firing"),
	}}))
	require.Equal(t, 3.0, skipped(t, s.reg, "own_output"))
	require.Equal(t, 3, s.Len())
}

// TestChunkFillsPages: a chunk of entries is a whole number of the Go heap's 8 KiB pages, so
// that no memory is lost per chunk; an entry whose size breaks it (the model grew by a few
// bytes) is better padded or trimmed than left to waste the rest of a page per 256 series.
// The entry is sized for the default build, whose labels.Labels is a string; in the others
// (slicelabels, dedupelabels) it is larger by the difference, and a chunk leaves part of a
// page unused.
func TestChunkFillsPages(t *testing.T) {
	size := chunkSize * (unsafe.Sizeof(entry{}) - (unsafe.Sizeof(labels.Labels{}) - unsafe.Sizeof("")))
	require.Zero(t, size%8192, "a chunk is %d bytes: %d entries of %d", size, chunkSize, unsafe.Sizeof(entry{}))
}

// TestStoreSameSeriesTwiceInOneRequest: a series that a request carries twice is one series;
// the second occurrence finds the entry the first created, though the look-ahead of the index
// ran before either was scored.
func TestStoreSameSeriesTwiceInOneRequest(t *testing.T) {
	s := newTestStore(t, testOptions())
	first := series(batch.Gauge, ramp(2, 0, time.Minute, func(int) float64 { return 5 }), "__name__", "temp", "job", "a")
	again := series(batch.Gauge, ramp(2, 120_000, time.Minute, func(int) float64 { return 6 }), "__name__", "temp", "job", "a")
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{first, again}}))
	require.Equal(t, 1, s.Len())
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.created))
	require.Equal(t, 4.0, testutil.ToFloat64(s.metrics.scored))
}
