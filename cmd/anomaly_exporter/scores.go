package main

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// scoresHandler serves the store's output series in the text format, gzipped when the scraper
// asks for it (Prometheus always does). Gzipped, the exposition is compressed on every core
// (parallelGzip) while it is formatted.
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
		gz := newParallelGzip(w)
		err := store.WriteScores(gz)
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
