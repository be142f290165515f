package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/tsdb/fileutil"

	"github.com/anomaly-exporter/anomaly_exporter/backfill"
	"github.com/anomaly-exporter/anomaly_exporter/config"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// persistenceFlags are the flags of checkpoints and backfill.
type persistenceFlags struct {
	checkpointInterval time.Duration
	backfillURL        string
	backfillConfig     string
	backfillLookback   prommodel.Duration
	backfillStep       prommodel.Duration
	backfillConc       int
	backfillQueue      int
}

func addPersistenceFlags(a *kingpin.Application, f *persistenceFlags) {
	a.Flag("storage.checkpoint-interval", "How often the detector's state is checkpointed to --storage.path (also on SIGTERM). 0: only on SIGTERM.").
		Default("5m").DurationVar(&f.checkpointInterval)
	a.Flag("backfill.url", "Prometheus-compatible HTTP API (e.g. http://prometheus:9090) to read the history of series from before they are scored: those the rules' selectors match at start, and every series seen for the first time later. Empty: no backfill.").
		PlaceHolder("URL").StringVar(&f.backfillURL)
	a.Flag("backfill.config.file", "HTTP client configuration (Prometheus's http_config: authorization, basic_auth, oauth2, tls_config, proxy_url) for --backfill.url.").
		PlaceHolder("FILE").StringVar(&f.backfillConfig)
	a.Flag("backfill.lookback", "How much history to read per series; 3 weeks covers the weekly season.").
		Default("3w").SetValue(&f.backfillLookback)
	a.Flag("backfill.step", "Read history with query_range on this step instead of raw samples; set it no lower than the scrape interval. 0: raw samples.").
		Default("0s").SetValue(&f.backfillStep)
	a.Flag("backfill.concurrency", "Series backfilled at once.").
		Default(fmt.Sprint(backfill.DefaultConcurrency)).IntVar(&f.backfillConc)
	a.Flag("backfill.queue-size", "Series waiting for their backfill at most; a new series that finds the queue full is not backfilled and learns from live samples.").
		Default(fmt.Sprint(backfill.DefaultQueueSize)).IntVar(&f.backfillQueue)
}

// persistence restores the store from its checkpoint at start, writes checkpoints periodically
// and at shutdown, and runs the backfill.
type persistence struct {
	f          *persistenceFlags
	configFile string
	store      *detector.Store
	ckpt       *detector.Checkpointer
	bf         *backfill.Backfiller
	logger     *slog.Logger

	lock     fileutil.Releaser // of --storage.path, held until the last checkpoint is written
	ready    atomic.Bool       // restored: samples may come in
	saving   atomic.Bool
	wg       sync.WaitGroup
	cancelBF context.CancelFunc
}

func newPersistence(f *persistenceFlags, configFile, dir string, store *detector.Store, reg prometheus.Registerer, logger *slog.Logger) (*persistence, error) {
	lock, err := lockStorage(dir)
	if err != nil {
		return nil, err
	}
	ckpt, err := detector.NewCheckpointer(store, dir, reg)
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("--storage.path: %w", err)
	}
	p := &persistence{f: f, configFile: configFile, store: store, ckpt: ckpt, logger: logger, lock: lock}
	if f.backfillURL == "" {
		return p, nil
	}
	httpCfg := commoncfg.DefaultHTTPClientConfig
	if f.backfillConfig != "" {
		c, _, err := commoncfg.LoadHTTPConfigFile(f.backfillConfig)
		if err != nil {
			return nil, fmt.Errorf("--backfill.config.file: %w", err)
		}
		httpCfg = *c
	}
	api, err := backfill.NewAPI(f.backfillURL, httpCfg)
	if err != nil {
		return nil, fmt.Errorf("--backfill.url: %w", err)
	}
	p.bf = backfill.New(api, store, backfill.Options{
		Lookback:    time.Duration(f.backfillLookback),
		Step:        time.Duration(f.backfillStep),
		Concurrency: f.backfillConc,
		QueueSize:   f.backfillQueue,
	}, reg, logger.With("component", "backfill"))
	return p, nil
}

// gate answers remote write with 503 and Retry-After until the checkpoint is restored: the sender
// retries, and no sample is scored by a model about to be replaced.
func (p *persistence) gate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.ready.Load() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "Not ready: restoring the detector's state.", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// start restores the checkpoint, then starts the backfill in the background; the exporter is
// ready when it returns.
func (p *persistence) start(ctx context.Context) {
	st, err := p.ckpt.Restore()
	switch {
	case err != nil:
		p.logger.Error("Could not restore the checkpoint; starting with no baselines", "err", err)
	case st.Series == 0 && st.Bytes == 0:
		p.logger.Info("No checkpoint to restore; starting with no baselines", "path", st.Path)
	default:
		p.logger.Info("Restored the checkpoint", "path", st.Path, "series", st.Series, "bytes", st.Bytes, "took", st.Duration.Round(time.Millisecond))
	}
	if p.bf != nil {
		bctx, cancel := context.WithCancel(ctx)
		p.cancelBF = cancel
		p.store.SetBackfill(p.bf)
		p.wg.Go(func() { p.bf.Run(bctx) })
		p.wg.Go(func() { p.discover(bctx) })
	}
	p.ready.Store(true)
}

// discover queues the history of the series the rules' selectors match.
func (p *persistence) discover(ctx context.Context) {
	cfg := config.Default()
	if p.configFile != "" {
		var err error
		if cfg, err = config.LoadFile(p.configFile); err != nil {
			p.logger.Error("Backfill: reading the rules", "err", err)
			return
		}
	}
	var selectors []string
	for _, r := range cfg.Rules {
		if r.Selector == "" {
			p.logger.Info("Backfill: a rule without selector selects every series; they are backfilled when first seen", "rule", r.Name)
			continue
		}
		selectors = append(selectors, r.Selector)
	}
	p.logger.Info("Backfill: reading history", "url", p.f.backfillURL, "lookback", p.f.backfillLookback, "selectors", len(selectors))
	if len(selectors) == 0 {
		return
	}
	n, err := p.bf.Discover(ctx, selectors)
	if err != nil && ctx.Err() == nil {
		p.logger.Error("Backfill: listing series failed; series are still backfilled when first seen", "err", err)
	}
	p.logger.Info("Backfill: series of the rules' selectors queued", "series", n)
}

// tick is the periodic checkpoint's channel; nil when they are off.
func (p *persistence) ticker() (<-chan time.Time, func()) {
	if p.f.checkpointInterval <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(p.f.checkpointInterval)
	return t.C, t.Stop
}

// checkpointAsync writes a checkpoint in the background unless one is being written.
func (p *persistence) checkpointAsync() {
	if !p.saving.CompareAndSwap(false, true) {
		p.logger.Warn("Skipping a checkpoint: the previous one is still being written")
		return
	}
	p.wg.Go(func() {
		defer p.saving.Store(false)
		_ = p.save()
	})
}

func (p *persistence) save() error {
	st, err := p.ckpt.Save()
	if err != nil {
		p.logger.Error("Writing the checkpoint failed; the previous one stays in place", "path", st.Path, "err", err)
		return err
	}
	p.logger.Info("Wrote the checkpoint", "path", st.Path, "series", st.Series, "bytes", st.Bytes, "took", st.Duration.Round(time.Millisecond))
	return nil
}

// stop ends the backfill and writes the last checkpoint; call it once no more samples come in.
// Before the restore, it writes nothing, so that a checkpoint is never replaced by an empty state.
func (p *persistence) stop() error {
	if p.cancelBF != nil {
		p.cancelBF()
	}
	p.wg.Wait()
	defer p.lock.Release()
	if !p.ready.Load() {
		return nil
	}
	if err := p.save(); err != nil {
		return errors.New("the final checkpoint failed")
	}
	return nil
}

// lockFileName is the lock file in --storage.path, named as Prometheus names its own.
const lockFileName = "lock"

// lockStorage takes an exclusive lock on dir, as Prometheus does on its data directory: two
// exporters pointed at one --storage.path would overwrite each other's checkpoints, each
// restoring the other's series at its next start. The operating system releases the lock when
// the process ends, however it ends, so a lock file left by a crash does not block a restart.
func lockStorage(dir string) (fileutil.Releaser, error) {
	lock, _, err := fileutil.Flock(filepath.Join(dir, lockFileName))
	if err != nil {
		return nil, fmt.Errorf("--storage.path: locking %s (is another anomaly_exporter using it?): %w", dir, err)
	}
	return lock, nil
}
