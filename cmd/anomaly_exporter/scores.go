package main

import (
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// gzipPool keeps gzip writers across scrapes: each holds about 800 KiB of compression state.
var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// scoresHandler serves the store's output series in the text format, gzipped when the scraper
// asks for it (Prometheus always does).
func scoresHandler(store *detector.Store, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		var out io.Writer = w
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzipPool.Get().(*gzip.Writer)
			gz.Reset(w)
			defer func() {
				if err := gz.Close(); err != nil {
					logger.Debug("Writing /scores", "err", err)
				}
				gzipPool.Put(gz)
			}()
			out = gz
		}
		if err := store.WriteScores(out); err != nil {
			// The status line is gone already; the scraper sees a truncated body and fails.
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
