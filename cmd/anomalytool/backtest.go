package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kingpin/v2"
	prommodel "github.com/prometheus/common/model"

	"github.com/anomaly-exporter/anomaly_exporter/backtest"
	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// backtestCmd is `backtest`: what the detector would have said, sample by sample, about history
// from a CSV file or from Prometheus, with the settings the configuration gives the series.
type backtestCmd struct {
	cmd        *kingpin.CmdClause
	input      string
	inputSet   bool
	output     string
	configFile string
	typ        string
	metric     string
	plot       string

	promURL      string
	query        string
	start        string
	end          string
	step         prommodel.Duration
	outputDir    string
	outputDirSet bool
}

func (c *backtestCmd) register(app *kingpin.Application) {
	c.cmd = app.Command("backtest", "Replay history through the detector: a CSV of timestamp,value rows (--input), or a Prometheus range query (--prometheus.url). "+
		"Writes timestamp,value,score,expected,lower,upper,learning per input row; rows the detector skips (duplicate timestamps, NaN, a counter's first sample) keep their row with empty result fields. "+
		"For counters, expected, lower and upper are per-second rates.")
	cmd := c.cmd
	cmd.Flag("input", `CSV file of timestamp,value rows, "-" for standard input. Timestamps: "2006-01-02 15:04:05" (UTC), RFC 3339 or Unix seconds.`).PlaceHolder("FILE.csv").IsSetByUser(&c.inputSet).StringVar(&c.input)
	cmd.Flag("output", `Where to write the scored CSV, "-" for standard output.`).Default("-").PlaceHolder("OUT.csv").StringVar(&c.output)
	cmd.Flag("config", "Configuration file whose rules choose the settings of each series (default: the embedded default configuration).").PlaceHolder("FILE").StringVar(&c.configFile)
	cmd.Flag("type", "How to score the series: counter (on its per-second rate), gauge (on its value), or auto as the server decides: metric metadata when Prometheus has it, else the naming conventions (_total, _count, _sum, _bucket are counters).").
		Default("auto").EnumVar(&c.typ, "auto", "gauge", "counter")
	cmd.Flag("metric", "Metric name the CSV's series is matched against the rules with, as {__name__=\"NAME\"} (default: the input file's name).").PlaceHolder("NAME").StringVar(&c.metric)
	cmd.Flag("plot", "Also draw each series, its expected value, normal band and points scored above 1 into this SVG file.").PlaceHolder("OUT.svg").StringVar(&c.plot)

	cmd.Flag("prometheus.url", "Prometheus to take the history from, with a range query.").PlaceHolder("URL").StringVar(&c.promURL)
	cmd.Flag("query", "Series selector or expression of the range query; each series it returns is replayed on its own.").PlaceHolder("SELECTOR").StringVar(&c.query)
	cmd.Flag("start", "Start of the range: RFC 3339, \"2006-01-02 15:04:05\" (UTC) or Unix seconds.").PlaceHolder("T").StringVar(&c.start)
	cmd.Flag("end", "End of the range, in the same forms, or now.").Default("now").PlaceHolder("T").StringVar(&c.end)
	cmd.Flag("step", "Resolution of the range query. Long ranges are fetched in chunks under Prometheus's limit of 11000 points per series.").Default("1m").SetValue(&c.step)
	cmd.Flag("output-dir", "Directory for the CSV files of a range query, one per series.").Default(".").PlaceHolder("DIR").IsSetByUser(&c.outputDirSet).StringVar(&c.outputDir)
}

func (c *backtestCmd) run(ctx context.Context, std stdio) error {
	// kingpin reads a lone "-" as an empty value: "--input -" arrives as "".
	if c.inputSet && c.input == "" {
		c.input = "-"
	}
	if c.output == "" {
		c.output = "-"
	}
	switch {
	case c.input != "" && c.promURL != "":
		return errors.New("backtest: --input and --prometheus.url exclude each other")
	case c.input != "":
		if c.query != "" || c.start != "" || c.outputDirSet {
			return errors.New("backtest: --query, --start and --output-dir go with --prometheus.url, not --input")
		}
		return c.runCSV(std)
	case c.promURL != "":
		if c.query == "" || c.start == "" {
			return errors.New("backtest: --prometheus.url needs --query and --start")
		}
		if c.metric != "" || c.output != "-" {
			return errors.New("backtest: --metric and --output go with --input; a range query's series have their own names and files (--output-dir)")
		}
		return c.runPrometheus(ctx, std)
	}
	return errors.New("backtest: give --input FILE.csv or --prometheus.url URL")
}

// counter decides rate or value scoring per --type.
func (c *backtestCmd) counter(t batch.MetricType, name string) bool {
	switch c.typ {
	case "counter":
		return true
	case "gauge":
		return false
	}
	return detector.IsCounter(t, name)
}

func kind(counter bool) string {
	if counter {
		return "counter"
	}
	return "gauge"
}

func (c *backtestCmd) runCSV(std stdio) (err error) {
	cfg, err := loadConfig(c.configFile)
	if err != nil {
		return err
	}
	metric := c.metric
	if metric == "" {
		metric = metricNameFromFile(c.input)
	}
	lbls := nameLabels(metric)
	settings, rule, err := settingsFor(cfg, lbls)
	if err != nil {
		return err
	}
	counter := c.counter(batch.Unknown, metric)

	in := std.in
	if c.input != "-" {
		f, err := os.Open(c.input)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	out := std.out
	if c.output != "-" {
		f, err := os.Create(c.output)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		out = f
	}

	r := backtest.NewReader(in)
	w, err := backtest.NewWriter(out)
	if err != nil {
		return err
	}
	rep := backtest.NewReplayer(counter, settings)
	var sum backtest.Summary
	var plotted *plotSeries
	if c.plot != "" {
		plotted = &plotSeries{title: formatLabels(lbls), counter: counter}
	}
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c.input, err)
		}
		p := rep.Push(row)
		sum.Add(p)
		if err := w.Write(p); err != nil {
			return err
		}
		plotted.add(p)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(std.err, "%s: %s as a %s, rule %q: %s\n", c.input, formatLabels(lbls), kind(counter), rule, sum)
	if plotted != nil {
		return writePlot(c.plot, []*plotSeries{plotted})
	}
	return nil
}
