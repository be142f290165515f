package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/anomaly-exporter/anomaly_exporter/backtest"
	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// alertThreshold is the score at which the mixin's alerts fire: the edge of the normal band.
const alertThreshold = 1.0

// evalCmd is `eval`: detection quality on a labelled corpus, scored by NAB's rules, so that a
// change to the model or to the default settings is judged by a number anyone can reproduce.
type evalCmd struct {
	data       string
	windows    string
	configFile string
	verbose    bool
}

func (c *evalCmd) register(app *kingpin.Application) {
	cmd := app.Command("eval", "Backtest every CSV of a labelled corpus in NAB's layout (DIR/<category>/<file>.csv) and score the detections with NAB's rules, "+
		"for each of NAB's profiles at the one threshold that is best for the whole corpus, and at the alerting threshold 1.0. "+
		"Each file is matched against the rules as the metric named after it; rows of a series still learning never count as detections, as they page no one.")
	cmd.Flag("data", "Corpus directory: DIR/<category>/<file>.csv.").Required().PlaceHolder("DIR").StringVar(&c.data)
	cmd.Flag("windows", `Labelled anomaly windows, as NAB's combined_windows.json: {"category/file.csv": [[start, end], ...]}.`).Required().PlaceHolder("FILE.json").StringVar(&c.windows)
	cmd.Flag("config", "Configuration file whose rules choose the settings (default: the embedded default configuration).").PlaceHolder("FILE").StringVar(&c.configFile)
	cmd.Flag("verbose", "Also report every file.").BoolVar(&c.verbose)
}

func (c *evalCmd) run(std stdio) error {
	cfg, err := loadConfig(c.configFile)
	if err != nil {
		return err
	}
	wf, err := os.Open(c.windows)
	if err != nil {
		return err
	}
	windows, err := backtest.ReadWindows(wf)
	wf.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", c.windows, err)
	}
	files, err := backtest.LoadCorpus(c.data, windows)
	if err != nil {
		return err
	}
	began := time.Now()
	ev, err := backtest.Evaluate(files, runtime.GOMAXPROCS(0), func(f backtest.CorpusFile) ([]int64, []float64, error) {
		metric := metricNameFromFile(f.Path)
		settings, _, err := settingsFor(cfg, nameLabels(metric))
		if err != nil {
			return nil, nil, err
		}
		return backtest.AlertScoresFile(f.Path, detector.IsCounter(batch.Unknown, metric), settings)
	})
	if err != nil {
		return err
	}
	return writeReport(std.out, ev, c.verbose, time.Since(began))
}

// writeReport prints the corpus result first, then per category (and file), for each profile at
// its own threshold and at the alerting threshold.
func writeReport(out io.Writer, ev *backtest.Evaluation, verbose bool, took time.Duration) error {
	rows := 0
	for _, f := range ev.Files {
		rows += f.Rows
	}
	fmt.Fprintf(out, "%d files, %d windows, %d rows, evaluated in %s\n\n", len(ev.Files), ev.Choices[0].Windows, rows, took.Round(time.Millisecond))

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "profile\tthreshold\tscore\twindows\tfp_rows")
	for _, c := range ev.Choices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\n", c.Name, formatThreshold(c.Threshold), formatScore(c.Normalised(c.Profile)), c.Detected, c.Windows, c.FPRows)
	}
	at1 := ev.Tally(backtest.Standard, alertThreshold, nil)
	fmt.Fprintf(tw, "at threshold %.1f:\twindows %d/%d, fp_rows %d, standard score %s\n", alertThreshold, at1.Detected, at1.Windows, at1.FPRows, formatScore(at1.Normalised(backtest.Standard)))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)

	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "category")
	for _, c := range ev.Choices {
		fmt.Fprintf(tw, "\t%s\twindows\tfp_rows", c.Name)
	}
	fmt.Fprintf(tw, "\twindows@%.1f\tfp_rows@%.1f\n", alertThreshold, alertThreshold)
	line := func(name string, keep func(backtest.FileResult) bool) {
		fmt.Fprint(tw, name)
		for _, c := range ev.Choices {
			t := ev.Tally(c.Profile, c.Threshold, keep)
			fmt.Fprintf(tw, "\t%s\t%d/%d\t%d", formatScore(t.Normalised(c.Profile)), t.Detected, t.Windows, t.FPRows)
		}
		t := ev.Tally(backtest.Standard, alertThreshold, keep)
		fmt.Fprintf(tw, "\t%d/%d\t%d\n", t.Detected, t.Windows, t.FPRows)
	}
	for i, f := range ev.Files {
		if i == 0 || ev.Files[i-1].Category != f.Category {
			line(f.Category, func(g backtest.FileResult) bool { return g.Category == f.Category })
		}
		if verbose {
			line("  "+f.Key[len(f.Category)+1:], func(g backtest.FileResult) bool { return g.Key == f.Key })
		}
	}
	line("total", nil)
	return tw.Flush()
}

// formatThreshold shows "none" for the choice of detecting nothing.
func formatThreshold(t float64) string {
	if math.IsInf(t, 1) {
		return "none"
	}
	return strconv.FormatFloat(t, 'g', 6, 64)
}

// formatScore shows "-" where there are no windows to score.
func formatScore(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return strconv.FormatFloat(s, 'f', 2, 64)
}
