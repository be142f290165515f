package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	prommodel "github.com/prometheus/common/model"

	"github.com/anomaly-exporter/anomaly_exporter/backfill"
	"github.com/anomaly-exporter/anomaly_exporter/backtest"
	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/config"
)

// maxStepsPerQuery keeps each range query under Prometheus's limit of 11000 points per series
// (it refuses a query whose range divided by its step exceeds 11000), with room to spare.
const maxStepsPerQuery = 10000

// chunks splits [start, end] into ranges of at most maxSteps steps on the grid start + k*step,
// each starting one step after the previous one ends, so that no point is fetched twice.
func chunks(start, end time.Time, step time.Duration, maxSteps int64) []v1.Range {
	var out []v1.Range
	span := step * time.Duration(maxSteps)
	for s := start; !s.After(end); {
		e := s.Add(span)
		if e.After(end) {
			e = end
		}
		out = append(out, v1.Range{Start: s, End: e, Step: step})
		s = e.Add(step)
	}
	return out
}

// parseTime reads the --start and --end forms: those of the CSV input, or "now".
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	ms, err := backtest.ParseTimestamp(s)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms).UTC(), nil
}

// promSeries is the replay of one series returned by the range query.
type promSeries struct {
	labels   []batch.Label
	file     string
	rule     string
	counter  bool
	rep      *backtest.Replayer
	sum      backtest.Summary
	plot     *plotSeries
	started  bool // the file exists and has its header
	unscored bool // no rule matches: the server would not score it either
}

// promReplay is the state of a range-query backtest across chunks: each series keeps its
// detector from one chunk to the next, as if the samples had arrived live.
type promReplay struct {
	cmd     *backtestCmd
	std     stdio
	prom    v1.API
	cfg     *config.Config
	byKey   map[string]*promSeries
	order   []*promSeries
	types   map[string]batch.MetricType
	plotted []*plotSeries
}

func (c *backtestCmd) runPrometheus(ctx context.Context, std stdio) error {
	cfg, err := loadConfig(c.configFile)
	if err != nil {
		return err
	}
	now := time.Now()
	start, err := parseTime(c.start, now)
	if err != nil {
		return fmt.Errorf("--start: %w", err)
	}
	end, err := parseTime(c.end, now)
	if err != nil {
		return fmt.Errorf("--end: %w", err)
	}
	step := time.Duration(c.step)
	switch {
	case end.Before(start):
		return fmt.Errorf("--end %s is before --start %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	case step <= 0:
		return errors.New("--step must be positive")
	}
	client, err := api.NewClient(api.Config{Address: c.promURL})
	if err != nil {
		return fmt.Errorf("--prometheus.url: %w", err)
	}
	if err := os.MkdirAll(c.outputDir, 0o755); err != nil {
		return err
	}
	rp := &promReplay{cmd: c, std: std, prom: v1.NewAPI(client), cfg: cfg,
		byKey: map[string]*promSeries{}, types: map[string]batch.MetricType{}}

	histograms := 0
	for _, r := range chunks(start, end, step, maxStepsPerQuery) {
		val, warnings, _, err := rp.prom.QueryRange(ctx, c.query, r)
		if err != nil {
			return fmt.Errorf("range query %s from %s to %s: %w", c.query, r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339), err)
		}
		for _, w := range warnings {
			fmt.Fprintf(std.err, "warning from Prometheus: %s\n", w)
		}
		matrix, ok := val.(prommodel.Matrix)
		if !ok {
			return fmt.Errorf("range query %s returned a %s, want a matrix", c.query, val.Type())
		}
		for _, ss := range matrix {
			histograms += len(ss.Histograms)
			if err := rp.replay(ctx, ss); err != nil {
				return err
			}
		}
	}
	if histograms > 0 {
		fmt.Fprintf(std.err, "%d native histogram samples not scored: query their rates or quantiles instead\n", histograms)
	}
	if len(rp.order) == 0 {
		fmt.Fprintf(std.err, "the query returned no series\n")
	}
	for _, s := range rp.order {
		if !s.unscored {
			fmt.Fprintf(std.err, "%s: %s as a %s, rule %q: %s\n", s.file, formatLabels(s.labels), kind(s.counter), s.rule, s.sum)
		}
	}
	if c.plot == "" {
		return nil
	}
	if n := len(rp.order); n > maxPlotted {
		fmt.Fprintf(std.err, "plotted the first %d of %d series\n", maxPlotted, n)
	}
	return writePlot(c.plot, rp.plotted)
}

// replay pushes one chunk of one series through its detector and appends the rows to its file.
// The file is opened per chunk rather than held open, so that a query returning thousands of
// series does not run out of file descriptors.
func (rp *promReplay) replay(ctx context.Context, ss *prommodel.SampleStream) error {
	key := ss.Metric.String()
	s := rp.byKey[key]
	if s == nil {
		s = rp.newSeries(ctx, ss.Metric)
		rp.byKey[key] = s
		rp.order = append(rp.order, s)
	}
	if s.unscored || len(ss.Values) == 0 {
		return nil
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if !s.started {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(s.file, flags, 0o644)
	if err != nil {
		return err
	}
	w := backtest.ContinueWriter(f)
	if !s.started {
		if w, err = backtest.NewWriter(f); err != nil {
			f.Close()
			return err
		}
	}
	s.started = true
	for _, sp := range ss.Values {
		t := int64(sp.Timestamp)
		row := backtest.Row{
			T:         t,
			V:         float64(sp.Value),
			Timestamp: time.UnixMilli(t).UTC().Format(time.RFC3339Nano),
			Value:     backtest.FormatFloat(float64(sp.Value)),
		}
		p := s.rep.Push(row)
		s.sum.Add(p)
		s.plot.add(p)
		if err := w.Write(p); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// newSeries finds the rule and the type of a series seen for the first time.
func (rp *promReplay) newSeries(ctx context.Context, m prommodel.Metric) *promSeries {
	c := rp.cmd
	s := &promSeries{labels: sortedLabels(m)}
	s.file = filepath.Join(c.outputDir, seriesFileName(m))
	settings, rule, err := settingsFor(rp.cfg, s.labels)
	if err != nil {
		fmt.Fprintf(rp.std.err, "skipped: %s\n", err)
		s.unscored = true
		return s
	}
	name := string(m[prommodel.MetricNameLabel])
	t := batch.Unknown
	if c.typ == "auto" && name != "" {
		var known bool
		if t, known = rp.types[name]; !known {
			t = rp.metadataType(ctx, name)
			rp.types[name] = t
		}
	}
	s.rule, s.counter = rule, c.counter(t, name)
	s.rep = backtest.NewReplayer(s.counter, settings)
	if c.plot != "" && len(rp.plotted) < maxPlotted {
		s.plot = &plotSeries{title: formatLabels(s.labels), counter: s.counter}
		rp.plotted = append(rp.plotted, s.plot)
	}
	return s
}

// metadataType asks Prometheus for the metric's type, as the server reads it from remote-write
// metadata. Without an answer the naming conventions decide, as on the server.
func (rp *promReplay) metadataType(ctx context.Context, name string) batch.MetricType {
	md, err := rp.prom.Metadata(ctx, name, "1")
	if err != nil {
		fmt.Fprintf(rp.std.err, "no metadata for %s (%v): its name decides whether it is a counter\n", name, err)
		return batch.Unknown
	}
	for _, m := range md[name] {
		if t := backfill.MetricType(m.Type); t != batch.Unknown {
			return t
		}
	}
	return batch.Unknown
}

// sortedLabels converts a result's labels to the sorted form rules are matched against.
func sortedLabels(m prommodel.Metric) []batch.Label {
	out := make([]batch.Label, 0, len(m))
	for n, v := range m {
		out = append(out, batch.Label{Name: string(n), Value: string(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// seriesFileName names a series' output after its labels, readable in a directory listing, with
// a hash of the full label set so that series whose labels differ only in characters a file name
// cannot hold, or beyond its length, still get their own file.
func seriesFileName(m prommodel.Metric) string {
	var b strings.Builder
	b.WriteString(string(m[prommodel.MetricNameLabel]))
	for _, l := range sortedLabels(m) {
		if l.Name == prommodel.MetricNameLabel {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('_')
		}
		b.WriteString(l.Name + "_" + l.Value)
	}
	name := []byte(b.String())
	for i, c := range name {
		if !(c == '_' || c == '-' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			name[i] = '_'
		}
	}
	if len(name) > 120 {
		name = name[:120]
	}
	if len(name) == 0 {
		name = []byte("series")
	}
	h := fnv.New32a()
	h.Write([]byte(m.String()))
	return fmt.Sprintf("%s-%08x.csv", name, h.Sum32())
}
