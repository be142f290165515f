package main

import (
	"bytes"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

func TestClientErrorFilter(t *testing.T) {
	var out bytes.Buffer
	srv := &http.Server{ErrorLog: log.New(&out, "", 0)}
	f := &limitFlags{readTimeout: time.Minute}
	f.apply(srv)
	require.Equal(t, time.Minute, srv.ReadTimeout)
	filter := srv.ErrorLog.Writer().(*clientErrorFilter)
	filter.every = time.Hour

	for range 100 {
		srv.ErrorLog.Printf("http: TLS handshake error from 127.0.0.1:1: client sent an HTTP request to an HTTPS server")
	}
	srv.ErrorLog.Printf("http: panic serving 127.0.0.1:2: boom")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2, "one handshake error line; every other error line")
	require.Contains(t, lines[1], "panic serving")

	filter.last = time.Now().Add(-2 * time.Hour)
	srv.ErrorLog.Printf("http: TLS handshake error from 127.0.0.1:3: EOF")
	require.Contains(t, out.String(), "EOF (and 99 more TLS handshake errors in the last 1h0m0s)\n")
}

func TestSeriesLimitLogger(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&out, nil))
	store := detector.NewStore(detector.Options{Rules: everything{}, Settings: []model.Settings{model.DefaultSettings()}, MaxSeries: 1}, nil)
	l := &seriesLimitLogger{store: store, logger: logger}
	l.check()
	require.Empty(t, out.String(), "nothing to say before the limit is reached")
	b := &batch.Batch{}
	for _, name := range []string{"a", "b", "c"} {
		b.Series = append(b.Series, batch.Series{Labels: []batch.Label{{Name: "__name__", Value: name}}, Samples: []batch.Sample{{T: 1, V: 1}}})
	}
	require.NoError(t, store.Append(b))
	l.check()
	l.check()
	require.Equal(t, 1, strings.Count(out.String(), "Series limit reached"), out.String())
	require.Contains(t, out.String(), "samples_skipped=2")
	require.Contains(t, out.String(), "series=1")
}

type everything struct{}

func (everything) Match([]batch.Label) (int, bool) { return 0, true }
