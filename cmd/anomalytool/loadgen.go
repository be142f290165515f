package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/anomaly-exporter/anomaly_exporter/backtest"
	"github.com/anomaly-exporter/anomaly_exporter/loadgen"
)

// loadgenCmd is `loadgen`: realistic remote-write traffic against a receiver, bounded in time and
// count, with a report of what was accepted, how fast and at what cost to the sender, so that the
// exporter's capacity is measured rather than guessed, and compared with Prometheus on the same load.
type loadgenCmd struct {
	opts     loadgen.Options
	protocol string
	start    string
	output   string
}

func (c *loadgenCmd) register(app *kingpin.Application) {
	d := loadgen.DefaultOptions()
	cmd := app.Command("loadgen", "Send realistic remote-write load (Kubernetes-like series, seasonal counters and gauges) to a receiver and report "+
		"samples accepted per second, status codes, latency and the generator's own CPU. Stops at --duration, --requests or --rounds, whichever comes first.")
	o := &c.opts
	cmd.Flag("url", "Remote-write endpoint to send to.").Required().PlaceHolder("http://127.0.0.1:9700/api/v1/write").StringVar(&o.URL)
	cmd.Flag("protocol", "Remote-write protocol: 1 (prometheus.WriteRequest) or 2 (io.prometheus.write.v2.Request).").Default("1").EnumVar(&c.protocol, "1", "1.0", "2", "2.0")
	cmd.Flag("series", "Distinct series sent.").Default(fmt.Sprint(d.Series)).IntVar(&o.Series)
	cmd.Flag("labels", "Labels per series, __name__ included: 8 gives __name__, code, container, instance, job, method, namespace, pod.").
		Default(fmt.Sprint(d.LabelsPerSeries)).IntVar(&o.LabelsPerSeries)
	cmd.Flag("metric-names", "Distinct metric names the series share.").Default(fmt.Sprint(d.MetricNames)).IntVar(&o.MetricNames)
	cmd.Flag("counter-fraction", "Share of metric names that are counters (*_total, monotone); the rest are gauges.").
		Default(fmt.Sprint(d.CounterFraction)).Float64Var(&o.CounterFraction)
	cmd.Flag("samples-per-series", "Consecutive samples of each series per request.").Default(fmt.Sprint(d.SamplesPerSeries)).IntVar(&o.SamplesPerSeries)
	cmd.Flag("series-per-request", "Series per request.").Default(fmt.Sprint(d.SeriesPerRequest)).IntVar(&o.SeriesPerRequest)
	cmd.Flag("concurrency", "Workers, each with one request in flight; each series is always sent by the same worker, in order.").
		Default(fmt.Sprint(d.Concurrency)).IntVar(&o.Concurrency)
	cmd.Flag("churn", "New series per round: after every round, this many series never sent before are sent once, on top of --series (pods and containers coming and going).").
		Default("0").IntVar(&o.Churn)
	cmd.Flag("hostile-interval", "Besides the load, send one broken or hostile request (corrupt snappy, garbage protobuf, a 10k-label series, a 1 MB label value, NaN, timestamps far off, a slowloris connection, ...) every interval, in turn, and report those not answered as owed. 0: none.").
		Default("0").DurationVar(&o.HostileInterval)
	cmd.Flag("rate", "Target samples per second over all workers; 0 sends as fast as the receiver answers.").Default("0").Float64Var(&o.Rate)
	cmd.Flag("duration", "Stop sending after this long (requests in flight finish); 0 for no time bound.").Default("30s").DurationVar(&o.Duration)
	cmd.Flag("requests", "Stop after this many requests in total; 0 for no bound.").Default("0").Int64Var(&o.Requests)
	cmd.Flag("rounds", "Stop after this many rounds over all series (a round sends --samples-per-series samples of every series); 0 for no bound.").
		Default("0").Int64Var(&o.Rounds)
	cmd.Flag("time.start", `Timestamp of the first sample: now, RFC 3339, "2006-01-02 15:04:05" (UTC) or Unix seconds. `+
		"To continue a previous run, pass the start it reported.").Default("now").StringVar(&c.start)
	cmd.Flag("time.step", "Sample time between consecutive samples of a series; a round advances sample time by --samples-per-series steps, "+
		"whatever the wall clock, so history can be fed time-compressed (a week of 5m data: --time.step=5m --rounds=2016).").
		Default(d.Step.String()).DurationVar(&o.Step)
	cmd.Flag("seed", "Seed of label values and values: the same seed sends the same series and values.").Default("1").Uint64Var(&o.Seed)
	cmd.Flag("timeout", "Timeout of one request.").Default(d.Timeout.String()).DurationVar(&o.Timeout)
	cmd.Flag("output", "Report format.").Default("text").EnumVar(&c.output, "text", "json")
}

func (c *loadgenCmd) run(ctx context.Context, std stdio) error {
	p, err := loadgen.ParseProtocol(c.protocol)
	if err != nil {
		return err
	}
	c.opts.Protocol = p
	if c.start != "" && c.start != "now" {
		ms, err := backtest.ParseTimestamp(c.start)
		if err != nil {
			return fmt.Errorf("loadgen: --time.start: %w", err)
		}
		c.opts.Start = time.UnixMilli(ms)
	}
	c.opts.UserAgent = "anomalytool-loadgen"

	g, err := loadgen.New(c.opts)
	if err != nil {
		return err
	}
	defer g.Close()
	fmt.Fprintf(std.err, "loadgen: %d series prepared in %s; sending remote write %s to %s\n",
		c.opts.Series, g.Prepare.Round(time.Millisecond), p, c.opts.URL)
	r, runErr := g.Run(ctx)
	if r != nil {
		if c.output == "json" {
			b, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintf(std.out, "%s\n", b)
		} else if err := r.WriteText(std.out); err != nil {
			return err
		}
	}
	switch {
	case errors.Is(runErr, context.Canceled):
		return errors.New("loadgen: interrupted; the report covers what was sent until then")
	case runErr != nil:
		return runErr
	case r.Requests > 0 && r.Accepted == 0:
		return fmt.Errorf("loadgen: the receiver accepted no sample (%s)", strings.TrimSpace(r.FirstError))
	}
	return nil
}
