package main

import (
	"log/slog"
	"net/http"
	"runtime"
	"strings"

	"github.com/klauspost/pgzip"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// gzipBlockSize is the block pgzip compresses on one core: a million series are over a gigabyte
// of exposition, more than one core deflates in the two seconds a scrape may take.
const gzipBlockSize = 1 << 20

// scoresHandler serves the store's output series in the text format, gzipped when the scraper
// asks for it (Prometheus always does). Gzipped, the exposition is compressed on every core
// (klauspost/pgzip, at BestSpeed) while it is formatted.
func scoresHandler(store *detector.Store, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
			if err := store.WriteScores(w); err != nil {
				// The status line is gone already; the scraper sees a truncated body and fails.
				logger.Debug("Writing /scores", "err", err)
			}
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		gz, err := pgzip.NewWriterLevel(w, pgzip.BestSpeed)
		if err == nil {
			err = gz.SetConcurrency(gzipBlockSize, runtime.GOMAXPROCS(0))
		}
		if err != nil {
			logger.Error("Writing /scores", "err", err)
			return
		}
		err = store.WriteScores(gz)
		if cerr := gz.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			logger.Debug("Writing /scores", "err", err)
		}
	})
}

func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && !strings.Contains(strings.ReplaceAll(q, " ", ""), "q=0") {
			return true
		}
	}
	return false
}
