package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/alecthomas/kingpin/v2"
	commoncfg "github.com/prometheus/common/config"
	prommodel "github.com/prometheus/common/model"

	"github.com/anomaly-exporter/anomaly_exporter/backfill"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// backfillCmd is `backfill`: the server's warm start from history, offline, into a checkpoint
// file that the server restores at start.
type backfillCmd struct {
	promURL     string
	httpConfig  string
	configFile  string
	match       []string
	lookback    prommodel.Duration
	step        prommodel.Duration
	concurrency int
	output      string
}

func (c *backfillCmd) register(app *kingpin.Application) {
	cmd := app.Command("backfill", "Read the history of series from Prometheus, replay it through the detector with the settings of the rules, and write a checkpoint: "+
		"copy it to the exporter's --storage.path as \""+detector.CheckpointFileName+"\" (with the exporter stopped) for it to start with learned baselines. "+
		"The same as the exporter's --backfill.url, offline, for installations with many series.")
	cmd.Flag("prometheus.url", "Prometheus-compatible HTTP API to read history from.").Required().PlaceHolder("URL").StringVar(&c.promURL)
	cmd.Flag("http.config.file", "HTTP client configuration (authorization, basic_auth, oauth2, tls_config, proxy_url) for --prometheus.url.").PlaceHolder("FILE").StringVar(&c.httpConfig)
	cmd.Flag("config", "The exporter's configuration file: its rules choose the series and their settings (default: the embedded default configuration).").PlaceHolder("FILE").StringVar(&c.configFile)
	cmd.Flag("match", "Series selector of the series to backfill (repeatable; default: the selectors of the rules). Each series gets the settings of the rule that selects it.").PlaceHolder("SELECTOR").StringsVar(&c.match)
	cmd.Flag("lookback", "How much history to read per series.").Default("3w").SetValue(&c.lookback)
	cmd.Flag("step", "Read history with query_range on this step instead of raw samples; no lower than the scrape interval. 0: raw samples.").Default("0s").SetValue(&c.step)
	cmd.Flag("concurrency", "Series read at once.").Default(fmt.Sprint(backfill.DefaultConcurrency)).IntVar(&c.concurrency)
	cmd.Flag("output", "Checkpoint file to write.").Required().PlaceHolder("CHECKPOINT").StringVar(&c.output)
}

func (c *backfillCmd) run(ctx context.Context, std stdio) error {
	cfg, err := loadConfig(c.configFile)
	if err != nil {
		return err
	}
	selectors := c.match
	if len(selectors) == 0 {
		for _, r := range cfg.Rules {
			if r.Selector != "" {
				selectors = append(selectors, r.Selector)
			}
		}
	}
	if len(selectors) == 0 {
		return errors.New("backfill: no rule of the configuration has a selector; say which series to read with --match")
	}
	httpCfg := commoncfg.DefaultHTTPClientConfig
	if c.httpConfig != "" {
		hc, _, err := commoncfg.LoadHTTPConfigFile(c.httpConfig)
		if err != nil {
			return fmt.Errorf("--http.config.file: %w", err)
		}
		httpCfg = *hc
	}
	api, err := backfill.NewAPI(c.promURL, httpCfg)
	if err != nil {
		return fmt.Errorf("--prometheus.url: %w", err)
	}

	store := detector.NewStore(cfg.StoreOptions(), nil)
	logger := slog.New(slog.NewTextHandler(std.err, nil))
	bf := backfill.New(api, store, backfill.Options{
		Lookback:         time.Duration(c.lookback),
		Step:             time.Duration(c.step),
		Concurrency:      c.concurrency,
		QueueSize:        10 * max(c.concurrency, 1),
		ProgressInterval: 5 * time.Second,
	}, nil, logger)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { bf.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	n, err := bf.Discover(ctx, selectors)
	if err != nil {
		return err
	}
	if err := bf.Wait(ctx); err != nil {
		return err
	}
	cancel()
	<-done
	st := bf.Stats()
	w, err := detector.WriteCheckpointFile(store, c.output)
	if err != nil {
		return err
	}
	fmt.Fprintf(std.err, "%d series found, %d backfilled with %d samples, %d failed in %s; wrote %d series (%d bytes) to %s\n",
		n, st.Done, st.Samples, st.Failed, time.Since(start).Round(time.Millisecond), w.Series, w.Bytes, w.Path)
	if st.Failed > 0 {
		fmt.Fprintf(std.err, "the history of %d series could not be read: they are not in the checkpoint and will learn from live samples\n", st.Failed)
		return failed{}
	}
	return nil
}
