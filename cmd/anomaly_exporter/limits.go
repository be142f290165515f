package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	prommodel "github.com/prometheus/common/model"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// limitFlags are the flags that protect the process from hostile or broken clients: HTTP
// timeouts, the heap high-water mark of the receiver, and the window of sample timestamps.
type limitFlags struct {
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	memoryLimit       units.Base2Bytes
	maxSampleAge      prommodel.Duration
	maxSampleAhead    prommodel.Duration
}

func addLimitFlags(a *kingpin.Application, f *limitFlags) {
	a.Flag("web.read-header-timeout", "How long a client may take to send a request's headers.").
		Default("10s").DurationVar(&f.readHeaderTimeout)
	a.Flag("web.read-timeout", "How long a client may take to send a whole request, body included; a slower one is disconnected. 0: no limit.").
		Default("1m").DurationVar(&f.readTimeout)
	a.Flag("web.write-timeout", "How long a request may take from the end of its headers to the end of the response (a scrape of /scores, a CPU profile). 0: no limit.").
		Default("2m").DurationVar(&f.writeTimeout)
	a.Flag("web.idle-timeout", "How long a kept-alive connection may wait for its next request.").
		Default("5m").DurationVar(&f.idleTimeout)
	a.Flag("remote-write.memory-limit", "Heap size (live objects and garbage not yet collected) above which remote-write requests get 503 with Retry-After, so that senders retry instead of the exporter running out of memory. Set it to about 80% of the memory the process may use. 0: no limit.").
		Default("0").BytesVar(&f.memoryLimit)
	a.Flag("remote-write.max-sample-age", "Samples older than this, against the wall clock, are skipped and counted (reason too_old): a sender sending seconds instead of milliseconds. Replays after an outage are younger; history goes through --backfill.url. 0: no limit.").
		Default("30d").SetValue(&f.maxSampleAge)
	a.Flag("remote-write.max-sample-ahead", "Samples further than this in the future, against the wall clock, are skipped and counted (reason too_far_in_future): one such sample would put every later sample of its series out of order. 0: no limit.").
		Default("10m").SetValue(&f.maxSampleAhead)
}

// apply sets the server's timeouts, and bounds the log lines its clients can cause.
func (f *limitFlags) apply(srv *http.Server) {
	srv.ReadHeaderTimeout = f.readHeaderTimeout
	srv.ReadTimeout = f.readTimeout
	srv.WriteTimeout = f.writeTimeout
	srv.IdleTimeout = f.idleTimeout
	if srv.ErrorLog != nil {
		srv.ErrorLog = log.New(&clientErrorFilter{w: srv.ErrorLog.Writer(), every: clientErrorLogInterval}, "", 0)
	}
}

// clientErrorLogInterval bounds the server's log lines about clients' TLS handshakes.
const clientErrorLogInterval = 10 * time.Second

// clientErrorFilter passes the http.Server's error log on, except that lines about a client's
// failed TLS handshake (plain HTTP sent to the TLS port, an untrusted certificate, a port scan),
// which any client can cause at will, are passed at most once per interval, with the count of
// those left out.
type clientErrorFilter struct {
	w      io.Writer
	every  time.Duration
	mu     sync.Mutex
	last   time.Time
	missed int
}

func (f *clientErrorFilter) Write(p []byte) (int, error) {
	if !bytes.Contains(p, []byte("TLS handshake error")) {
		return f.w.Write(p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if !f.last.IsZero() && now.Sub(f.last) < f.every {
		f.missed++
		return len(p), nil
	}
	f.last = now
	if f.missed > 0 {
		p = append(bytes.TrimRight(p, "\n"), fmt.Sprintf(" (and %d more TLS handshake errors in the last %s)\n", f.missed, f.every)...)
		f.missed = 0
	}
	if _, err := f.w.Write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// seriesLimitLogInterval bounds the log lines about the series limit.
const seriesLimitLogInterval = 10 * time.Second

// seriesLimitLogger logs, at most once per seriesLimitLogInterval, that new series were not
// tracked because the store's series limit was reached; the metric counts every sample.
type seriesLimitLogger struct {
	store  *detector.Store
	logger *slog.Logger
	last   uint64
}

func (l *seriesLimitLogger) check() {
	n := l.store.SeriesLimitSkips()
	if n == l.last {
		return
	}
	l.logger.Warn("Series limit reached: samples of new series are not scored (global.max_series in the configuration file)",
		"samples_skipped", n-l.last, "since", seriesLimitLogInterval, "series", l.store.Len())
	l.last = n
}
