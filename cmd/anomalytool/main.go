// Command anomalytool is to anomaly_exporter what promtool is to Prometheus: it checks
// configuration files before they are reloaded, replays history (a CSV file or a Prometheus range
// query) through the detector to show what it would have scored, and measures detection quality
// on a labelled corpus, so that a change of settings or model is judged on data, not on faith.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/config"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	stop()
	os.Exit(code)
}

// stdio are the streams of one run, replaced in tests.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// failed is an error already reported to the user; run only turns it into the exit code.
type failed struct{}

func (failed) Error() string { return "failed" }

// terminate is how kingpin's --help and --version end a run: unwound to run, which returns the
// code, so that run never exits the process and tests can call it.
type terminate int

// run parses args and runs one subcommand, returning the exit code: 0 on success, 1 on failure.
func run(ctx context.Context, args []string, std stdio) (code int) {
	defer func() {
		switch r := recover().(type) {
		case nil:
		case terminate:
			code = int(r)
		default:
			panic(r)
		}
	}()
	app := kingpin.New("anomalytool", "Tooling for anomaly_exporter: check configuration, backtest history, evaluate detection.")
	app.Version(version.Print("anomalytool"))
	app.HelpFlag.Short('h')
	app.UsageWriter(std.out)
	app.ErrorWriter(std.err)
	app.Terminate(func(code int) { panic(terminate(code)) })

	var chk checkConfigCmd
	chk.register(app.Command("check", "Check resources for validity."))
	var bt backtestCmd
	bt.register(app)
	var ev evalCmd
	ev.register(app)
	var lg loadgenCmd
	lg.register(app)
	var bf backfillCmd
	bf.register(app)

	cmd, err := app.Parse(args)
	if err != nil {
		app.Errorf("%s, try --help", err)
		return 1
	}
	switch cmd {
	case "check config":
		err = chk.run(std)
	case "backtest":
		err = bt.run(ctx, std)
	case "eval":
		err = ev.run(std)
	case "loadgen":
		err = lg.run(ctx, std)
	case "backfill":
		err = bf.run(ctx, std)
	}
	if err != nil {
		if _, ok := err.(failed); !ok {
			app.Errorf("%s", err)
		}
		return 1
	}
	return 0
}

// loadConfig is the --config file, or the embedded default that the server also runs without one.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.LoadFile(path)
}

// settingsFor finds the rule that would score a series with these labels (sorted by name) on the
// server, so that a backtest uses the settings the series would really get.
func settingsFor(cfg *config.Config, lbls []batch.Label) (*model.Settings, string, error) {
	i, ok := cfg.Match(lbls)
	if !ok {
		return nil, "", fmt.Errorf("no rule of the configuration matches %s, so the server would not score it", formatLabels(lbls))
	}
	return &cfg.Rules[i].Settings, cfg.Rules[i].Name, nil
}

// nameLabels is the label set of a series known only by its metric name.
func nameLabels(name string) []batch.Label {
	if name == "" {
		return nil
	}
	return []batch.Label{{Name: "__name__", Value: name}}
}

// formatLabels writes labels as a PromQL selector, the form operators read and paste.
func formatLabels(lbls []batch.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range lbls {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// metricNameFromFile turns a file name such as "exchange-2_cpc_results.csv" into a valid metric
// name ("exchange_2_cpc_results"), so that a CSV is matched against the rules as if its series had
// been sent under the name of the file.
func metricNameFromFile(path string) string {
	if path == "-" || path == "" {
		return ""
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	b := make([]byte, 0, len(base)+1)
	if base != "" && base[0] >= '0' && base[0] <= '9' {
		b = append(b, '_')
	}
	for _, c := range []byte(base) {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			c = '_'
		}
		b = append(b, c)
	}
	return string(b)
}
