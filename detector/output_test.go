package detector

import (
	"bytes"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// collect is an Output that keeps every point it is given.
type collect struct {
	mu     sync.Mutex
	points []Point
	calls  int
}

func (c *collect) WritePoints(ps []Point) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.points = append(c.points, ps...)
	c.calls++
}

// line renders output family f of a point as /scores renders it, from the point's labels.
func line(p *Point, f int) string {
	var b strings.Builder
	b.WriteString(families[f].name + "{")
	lbls := p.AppendLabels(nil)
	// /scores writes the input labels in input order and anomaly_metric last; compare as sets.
	sort.Slice(lbls, func(i, j int) bool { return lbls[i].Name < lbls[j].Name })
	for i, l := range lbls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name + "=" + strconv.Quote(l.Value))
	}
	b.WriteString("} " + strconv.FormatFloat(p.Value(f), 'g', -1, 64))
	return b.String()
}

// scoresLines parses /scores into the same canonical lines: labels sorted, values as written.
func scoresLines(t *testing.T, s *Store) []string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, s.WriteScores(&buf))
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		name, rest, _ := strings.Cut(l, "{")
		body, val, _ := strings.Cut(rest, "} ")
		ls, err := parseLabelList(body)
		require.NoError(t, err, l)
		sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
		var b strings.Builder
		b.WriteString(name + "{")
		for i, l := range ls {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.Name + "=" + strconv.Quote(l.Value))
		}
		b.WriteString("} " + val)
		out = append(out, b.String())
	}
	sort.Strings(out)
	return out
}

// parseLabelList reads `a="x",b="y",` as the text format writes it.
func parseLabelList(s string) ([]labels.Label, error) {
	var out []labels.Label
	for s != "" {
		n, rest, _ := strings.Cut(s, "=")
		// The value is a Go-compatible quoted string up to the next unescaped quote.
		end := 1
		for end < len(rest) && rest[end] != '"' {
			if rest[end] == '\\' {
				end++
			}
			end++
		}
		v, err := strconv.Unquote(rest[:end+1])
		if err != nil {
			return nil, err
		}
		out = append(out, labels.Label{Name: n, Value: v})
		s = strings.TrimPrefix(rest[end+1:], ",")
	}
	return out, nil
}

// The points an Output receives carry exactly the series and values of /scores: same labels
// (less __name__, collisions renamed, odd names sanitised), same values.
func TestOutputMatchesScores(t *testing.T) {
	s := newTestStore(t, testOptions())
	s.clock = time.UnixMilli(1_700_000_000_000).Add(72 * time.Hour)
	c := &collect{}
	s.SetOutput(c)
	in := goldenInput()
	one := []batch.Sample{{T: 1_700_000_000_000 + 72*3600*1000, V: 1}}
	in.Series = append(in.Series,
		series(batch.Gauge, one, "__name__", "m", "service.name", "x", "job", "otel"),
		series(batch.Gauge, one, "__name__", "m", "anomaly_metric", "a", "exported_anomaly_metric", "b", "job", "clash"),
	)
	require.NoError(t, s.Append(in))
	require.Equal(t, 1, c.calls, "one call per Append")

	// The last point of each series that did not end.
	last := map[uint64]*Point{}
	ended := map[uint64]bool{}
	for i := range c.points {
		p := &c.points[i]
		last[p.Hash()] = p
		ended[p.Hash()] = p.Stale
	}
	var got []string
	for h, p := range last {
		if ended[h] {
			continue
		}
		for f := range families {
			got = append(got, line(p, f))
		}
	}
	sort.Strings(got)
	require.Equal(t, scoresLines(t, s.Store), got)
	require.Len(t, got, 5*NumFamilies)

	// Sorted for remote write, with the sanitised and renamed names.
	var odd, clash []labels.Label
	for _, p := range last {
		switch p.InputLabels().Get("job") {
		case "otel":
			odd = p.AppendLabels(nil)
		case "clash":
			clash = p.AppendLabels(nil)
		}
	}
	require.Equal(t, []labels.Label{{Name: "anomaly_metric", Value: "m"}, {Name: "job", Value: "otel"}, {Name: "service_name", Value: "x"}}, odd)
	require.Equal(t, []labels.Label{
		{Name: "anomaly_metric", Value: "m"}, {Name: "exported_anomaly_metric", Value: "a"},
		{Name: "exported_exported_anomaly_metric", Value: "b"}, {Name: "job", Value: "clash"},
	}, clash)
}

// Every scored sample is a point at its own timestamp; skipped samples are not; a stale marker
// ends a scored series once.
func TestOutputPoints(t *testing.T) {
	s := newTestStore(t, testOptions())
	c := &collect{}
	s.SetOutput(c)
	stale := math.Float64frombits(value.StaleNaN)
	t0 := int64(1_700_000_000_000)
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, []batch.Sample{{T: t0, V: 1}, {T: t0 + 1000, V: 2}, {T: t0 + 1000, V: 3}, {T: t0 + 2000, V: math.NaN()}, {T: t0 + 3000, V: stale}, {T: t0 + 4000, V: stale}},
			"__name__", "g", "job", "a"),
		series(batch.Counter, []batch.Sample{{T: t0, V: 10}, {T: t0 + 2000, V: 14}}, "__name__", "c_total", "job", "a"),
		series(batch.Gauge, []batch.Sample{{T: t0, V: stale}}, "__name__", "never", "job", "a"),
	}}))
	type pt struct {
		metric string
		t      int64
		stale  bool
		value  float64
	}
	var got []pt
	for _, p := range c.points {
		got = append(got, pt{p.InputLabels().Get("__name__"), p.T, p.Stale, p.Value(1)})
		for f := range NumFamilies {
			require.Equal(t, p.Stale, value.IsStaleNaN(p.Value(f)), "family %d", f)
		}
	}
	require.Len(t, got, 4)
	// The series of a request are scored shard by shard, the samples of each in their order.
	slices.SortStableFunc(got, func(a, b pt) int { return -strings.Compare(a.metric, b.metric) })
	require.Equal(t, pt{"g", t0, false, 1}, got[0])
	require.Equal(t, pt{"g", t0 + 1000, false, 2}, got[1])
	require.Equal(t, "g", got[2].metric)
	require.Equal(t, t0+3000, got[2].t)
	require.True(t, got[2].stale)
	require.Equal(t, pt{"c_total", t0 + 2000, false, 2}, got[3], "counters: the rate at the second sample")

	// An Append that scores nothing calls nothing; without an Output nothing is collected.
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{series(batch.Gauge, []batch.Sample{{T: t0, V: math.Inf(1)}}, "__name__", "g", "job", "b")}}))
	require.Equal(t, 1, c.calls)
	s.SetOutput(nil)
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{series(batch.Gauge, []batch.Sample{{T: t0 + 9000, V: 1}}, "__name__", "g", "job", "a")}}))
	require.Equal(t, 1, c.calls)

	fams := Families()
	require.Len(t, fams, NumFamilies)
	require.Equal(t, "anomaly_score", fams[0].Name)
	require.Equal(t, "anomaly_learning", fams[NumFamilies-1].Name)
}

// discard is an Output that drops everything, to measure the store's share.
type discard struct{}

func (discard) WritePoints([]Point) {}

// BenchmarkAppendOutput is BenchmarkAppend with an Output set: the cost of collecting points.
func BenchmarkAppendOutput(b *testing.B) {
	s := NewStore(testOptions(), nil)
	s.SetOutput(discard{})
	benchAppend(b, s)
}
