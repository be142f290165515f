// Command anomaly_exporter receives Prometheus remote write, learns a seasonal baseline for every
// series it is sent, and serves anomaly scores for Prometheus to scrape. This package only wires
// flags, logging and HTTP to the remotewrite, detector and config packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/remotewrite"
)

const name = "anomaly_exporter"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// flags are the command line, parsed by kingpin.
type flags struct {
	web             *web.FlagConfig
	telemetryPath   string
	enableLifecycle bool
	enablePprof     bool
	configFile      string
	storagePath     string
	persist         persistenceFlags
	maxRequestBytes units.Base2Bytes
	maxConcurrent   int
	limits          remotewrite.Options
	protect         limitFlags
	out             outFlags
	shutdownTimeout time.Duration
	log             promslog.Config
}

func parseFlags(args []string, stdout, stderr io.Writer) (*flags, error) {
	a := kingpin.New(name, "Learns a seasonal baseline for every series it receives over Prometheus remote write and serves anomaly scores.")
	a.UsageWriter(stdout)
	a.ErrorWriter(stderr)
	a.Version(version.Print(name))
	a.HelpFlag.Short('h')
	f := &flags{web: kingpinflag.AddFlags(a, ":9700")}
	a.Flag("web.telemetry-path", "Path under which to expose the exporter's own metrics.").
		Default("/metrics").StringVar(&f.telemetryPath)
	a.Flag("web.enable-lifecycle", "Enable reload via HTTP request (POST /-/reload).").
		Default("false").BoolVar(&f.enableLifecycle)
	a.Flag("web.enable-pprof", "Serve Go's runtime profiles (CPU, heap, goroutines) under /debug/pprof/. Off by default: they reveal internals and a CPU profile costs while it runs.").
		Default("false").BoolVar(&f.enablePprof)
	a.Flag("config.file", "Configuration file (YAML) selecting the series to score and how. Empty: the embedded default, which scores every series.").
		Default("").StringVar(&f.configFile)
	a.Flag("storage.path", "Directory for the detector's state: the checkpoint of every series' baseline, restored at start.").
		Default("data/").StringVar(&f.storagePath)
	addPersistenceFlags(a, &f.persist)
	a.Flag("remote-write.max-request-bytes", "Largest remote-write request accepted, compressed or decoded; larger ones get 413.").
		Default("32MiB").BytesVar(&f.maxRequestBytes)
	a.Flag("remote-write.max-concurrent-requests", "Remote-write requests handled at once; beyond it senders get 503 with Retry-After and retry.").
		Default(fmt.Sprint(max(8, 4*runtime.GOMAXPROCS(0)))).IntVar(&f.maxConcurrent)
	a.Flag("remote-write.max-series-per-request", "Requests with more series are rejected whole with 400. 0: no limit (--remote-write.max-request-bytes bounds them).").
		Default("0").IntVar(&f.limits.MaxSeriesPerRequest)
	a.Flag("remote-write.max-labels-per-series", "Series with more labels are rejected (400, the rest of the request is kept). 0: no limit.").
		Default("128").IntVar(&f.limits.MaxLabelsPerSeries)
	a.Flag("remote-write.max-label-name-length", "Series with a longer label name, in bytes, are rejected (400, the rest is kept). 0: no limit.").
		Default("1024").IntVar(&f.limits.MaxLabelNameLength)
	a.Flag("remote-write.max-label-value-length", "Series with a longer label value, in bytes, are rejected (400, the rest is kept). 0: no limit.").
		Default("4096").IntVar(&f.limits.MaxLabelValueLength)
	addLimitFlags(a, &f.protect)
	addOutFlags(a, &f.out)
	a.Flag("web.shutdown-timeout", "How long in-flight requests may take to finish on SIGTERM.").
		Default("30s").DurationVar(&f.shutdownTimeout)
	promslogflag.AddFlags(a, &f.log)
	if _, err := a.Parse(args); err != nil {
		return nil, err
	}
	return f, nil
}

// defaultGCPercent is the garbage collector's GOGC unless the environment sets one. The heap is
// almost all long-lived series state, about 900 bytes per series, and remote write leaves little
// garbage (about 2 KiB per request, most of it net/http's), so collecting whenever the heap has
// grown by a tenth keeps the process within a tenth of its live state, where Go's default of 100
// would let it double; a collection marks a million series in about 25 ms.
const defaultGCPercent = 10

func run(args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	f.log.Writer = stderr
	logger := promslog.New(&f.log)
	logger.Info("Starting "+name, "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext())
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, f, logger); err != nil {
		logger.Error("Exiting", "err", err)
		return 1
	}
	logger.Info("Exited cleanly")
	return 0
}

func serve(ctx context.Context, f *flags, logger *slog.Logger) (err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector(name),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	store := detector.NewStore(detector.Options{Rules: matchNothing{}}, reg)
	store.SetSampleWindow(time.Duration(f.protect.maxSampleAge), time.Duration(f.protect.maxSampleAhead))
	rl := newReloader(f.configFile, store, reg, logger)
	if err := rl.reload(); err != nil {
		return fmt.Errorf("loading configuration: %w", err)
	}
	persist, err := newPersistence(&f.persist, f.configFile, f.storagePath, store, reg, logger)
	if err != nil {
		return err
	}
	out, err := newScoreSenders(&f.out, store, reg, logger)
	if err != nil {
		return err
	}
	// When serve returns, the server has stopped: flush the scores of its last requests.
	defer out.close(f.shutdownTimeout, logger)

	mux := http.NewServeMux()
	rwOpts := f.limits
	rwOpts.MaxRequestBytes, rwOpts.MaxConcurrentRequests = int64(f.maxRequestBytes), f.maxConcurrent
	rwOpts.MemoryLimit = int64(f.protect.memoryLimit)
	mux.Handle("/api/v1/write", persist.gate(remotewrite.NewHandler(rwOpts, store, reg, logger)))
	mux.Handle("/scores", scoresHandler(store, logger))
	mux.Handle(f.telemetryPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError), Registry: reg,
	}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !persist.ready.Load() {
			http.Error(w, "Not ready: restoring the detector's state.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready.")
	})
	mux.Handle("/-/reload", rl.handler(f.enableLifecycle))
	if f.enablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "Anomaly Exporter",
		Description: "Seasonal baselines and anomaly scores for every series received over Prometheus remote write",
		Version:     version.Info(),
		Profiling:   fmt.Sprint(f.enablePprof),
		Links: []web.LandingLinks{
			{Address: "/scores", Text: "Scores", Description: "Anomaly scores, expected values and normal bands (scrape with honor_labels: true)"},
			{Address: f.telemetryPath, Text: "Metrics", Description: "The exporter's own metrics"},
			{Address: "/api/v1/write", Text: "Remote write", Description: "POST remote write 1.0 or 2.0 here"},
		},
	})
	if err != nil {
		return err
	}
	mux.Handle("/", landing)

	srv := &http.Server{
		Handler:  mux,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}
	f.protect.apply(srv)
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, f.web, logger) }()
	persist.start(ctx)
	defer func() {
		if perr := persist.stop(); perr != nil && err == nil {
			err = perr
		}
	}()
	checkpoints, stopCheckpoints := persist.ticker()
	defer stopCheckpoints()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	expiry := time.NewTicker(time.Minute)
	defer expiry.Stop()
	limitLog := &seriesLimitLogger{store: store, logger: logger}
	limitTicker := time.NewTicker(seriesLimitLogInterval)
	defer limitTicker.Stop()
	for {
		select {
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-hup:
			if err := rl.reload(); err != nil {
				logger.Error("Reloading configuration failed; the previous one stays in force", "err", err)
			}
		case <-checkpoints:
			persist.checkpointAsync()
		case <-expiry.C:
			if n := store.Expire(); n > 0 {
				logger.Debug("Expired series", "count", n)
			}
		case <-limitTicker.C:
			limitLog.check()
		case <-ctx.Done():
			logger.Info("Shutting down; waiting for in-flight requests", "timeout", f.shutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
			defer cancel()
			return srv.Shutdown(sctx)
		}
	}
}
