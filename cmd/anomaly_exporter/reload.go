package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/config"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// reloader loads the configuration file into the store, on start, SIGHUP and POST /-/reload.
// A file that fails to load leaves the previous configuration in force.
type reloader struct {
	path   string
	store  *detector.Store
	logger *slog.Logger
	mu     sync.Mutex

	success   prometheus.Gauge
	successTS prometheus.Gauge
}

func newReloader(path string, store *detector.Store, reg prometheus.Registerer, logger *slog.Logger) *reloader {
	r := &reloader{
		path: path, store: store, logger: logger,
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "anomaly_exporter", Name: "config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		successTS: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "anomaly_exporter", Name: "config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	reg.MustRegister(r.success, r.successTS)
	return r
}

func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg := config.Default()
	if r.path != "" {
		var err error
		if cfg, err = config.LoadFile(r.path); err != nil {
			r.success.Set(0)
			return err
		}
	}
	r.store.SetOptions(cfg.StoreOptions())
	r.success.Set(1)
	r.successTS.SetToCurrentTime()
	file := r.path
	if file == "" {
		file = "(embedded default)"
	}
	r.logger.Info("Loaded configuration", "file", file, "rules", len(cfg.Rules))
	return nil
}

// handler serves /-/reload. Like Prometheus, state-changing endpoints exist only when the operator
// enabled them, and only for POST (or PUT).
func (r *reloader) handler(enabled bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !enabled {
			http.Error(w, "Lifecycle API is not enabled.", http.StatusForbidden)
			return
		}
		if req.Method != http.MethodPost && req.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "Only POST or PUT requests allowed.", http.StatusMethodNotAllowed)
			return
		}
		if err := r.reload(); err != nil {
			r.logger.Error("Reloading configuration failed; the previous one stays in force", "err", err)
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Configuration reloaded.")
	})
}

// matchNothing stands in for the rules until the first configuration is loaded.
type matchNothing struct{}

func (matchNothing) Match([]batch.Label) (int, bool) { return 0, false }
