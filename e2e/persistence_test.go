package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/config"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// remoteWrite sends series to the exporter with remote write 1.0 and expects a 204.
func remoteWrite(t *testing.T, addr string, ts []prompb.TimeSeries) {
	t.Helper()
	req := &prompb.WriteRequest{Timeseries: ts}
	raw, err := req.Marshal()
	require.NoError(t, err)
	hreq, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

func pbLabels(kv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// startExporterIn runs the exporter on the storage directory dir and waits until it is ready.
func startExporterIn(t *testing.T, cfgPath, dir string, extra ...string) (string, *process) {
	t.Helper()
	addr := freePort(t)
	args := append([]string{"--web.listen-address=" + addr, "--config.file=" + cfgPath, "--storage.path=" + dir}, extra...)
	p := start(t, "anomaly_exporter", exporterBinary(t), args...)
	waitReady(t, addr, p)
	return addr, p
}

func waitReady(t *testing.T, addr string, p *process) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := httpGet(ctx, "http://"+addr+"/-/ready")
		cancel()
		if err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("exporter exited before it was ready: %v", p.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func metricValue(t *testing.T, addr, name string, match ...string) float64 {
	t.Helper()
	v, err := scrapeValue(addr, "/metrics", name, match...)
	require.NoError(t, err)
	return v
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

const persistConfig = `
rules:
  - selector: '{job="persist"}'
    learning_period: 2h
`

// TestRestartKeepsBaselines: series sent, the exporter stopped with SIGTERM and started again on
// the same directory scores the next samples exactly as if it had not stopped, with no learning.
func TestRestartKeepsBaselines(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	cfgPath := writeFile(t, t.TempDir(), "anomaly.yml", persistConfig)
	cfg, err := config.LoadFile(cfgPath)
	require.NoError(t, err)
	settings := cfg.Rules[0].Settings

	type ser struct {
		name    string
		counter bool
		f       func(i int) float64
		ref     detector.Stream
	}
	all := []*ser{
		{name: "temperature", f: func(i int) float64 { return 20 + 5*math.Sin(float64(i)/60) + float64(i%3) }},
		{name: "queue_length", f: func(i int) float64 { return float64(100 + i%17) }},
		{name: "requests_total", counter: true, f: func(i int) float64 { return float64(i*600 + i*i%50) }},
	}
	for _, s := range all {
		s.ref.Counter = s.counter
	}
	t0 := time.Now().Add(-7 * time.Hour).Truncate(time.Minute).UnixMilli()
	send := func(addr string, from, to int) {
		var ts []prompb.TimeSeries
		for _, s := range all {
			one := prompb.TimeSeries{Labels: pbLabels("__name__", s.name, "job", "persist")}
			for i := from; i < to; i++ {
				tm, v := t0+int64(i)*60_000, s.f(i)
				one.Samples = append(one.Samples, prompb.Sample{Timestamp: tm, Value: v})
				s.ref.Push(tm, v, &settings)
			}
			ts = append(ts, one)
		}
		remoteWrite(t, addr, ts)
	}

	addr, p := startExporterIn(t, cfgPath, dir, "--storage.checkpoint-interval=0")
	for i := 0; i < 6*60; i += 120 {
		send(addr, i, i+120)
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("exporter did not exit after SIGTERM")
	}
	require.NoError(t, p.err, "exit status after SIGTERM")
	require.FileExists(t, filepath.Join(dir, detector.CheckpointFileName))
	log, err := os.ReadFile(p.log)
	require.NoError(t, err)
	require.Contains(t, string(log), `msg="Wrote the checkpoint"`)
	require.Contains(t, string(log), "series=3")

	addr, _ = startExporterIn(t, cfgPath, dir, "--storage.checkpoint-interval=0")
	require.Equal(t, 3.0, metricValue(t, addr, "anomaly_exporter_checkpoint_restored_series"))
	require.Zero(t, metricValue(t, addr, "anomaly_exporter_checkpoint_restore_failures_total"))
	// The scores are there at once, and not learning.
	learning, err := scrapeValue(addr, "/scores", "anomaly_learning")
	require.NoError(t, err)
	require.Zero(t, learning)
	scoresBefore, err := scrapeValue(addr, "/scores", "anomaly_score", "job=persist")
	require.NoError(t, err)
	require.Positive(t, scoresBefore)

	// The next sample of each series scores exactly as the uninterrupted reference does.
	send(addr, 6*60, 6*60+1)
	for _, s := range all {
		want, o := s.ref.Push(t0+int64(6*60+1)*60_000, s.f(6*60+1), &settings)
		require.Equal(t, detector.Scored, o)
		remoteWrite(t, addr, []prompb.TimeSeries{{
			Labels:  pbLabels("__name__", s.name, "job", "persist"),
			Samples: []prompb.Sample{{Timestamp: t0 + int64(6*60+1)*60_000, Value: s.f(6*60 + 1)}},
		}})
		got, err := scrapeValue(addr, "/scores", "anomaly_score", "anomaly_metric="+s.name)
		require.NoError(t, err)
		require.Equal(t, want.Score, got, s.name)
		require.False(t, want.Learning)
		l, err := scrapeValue(addr, "/scores", "anomaly_learning", "anomaly_metric="+s.name)
		require.NoError(t, err)
		require.Zero(t, l, s.name)
		require.Less(t, got, 1.0, s.name)
	}
}

// TestCorruptCheckpointIsMovedAside: the exporter starts empty, says why, and keeps the file.
func TestCorruptCheckpointIsMovedAside(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	writeFile(t, dir, detector.CheckpointFileName, "ANOMCKPT and then garbage")
	cfgPath := writeFile(t, t.TempDir(), "anomaly.yml", persistConfig)
	addr, p := startExporterIn(t, cfgPath, dir)
	require.Equal(t, 1.0, metricValue(t, addr, "anomaly_exporter_checkpoint_restore_failures_total"))
	aside, err := filepath.Glob(filepath.Join(dir, detector.CheckpointFileName+".corrupt-*"))
	require.NoError(t, err)
	require.Len(t, aside, 1)
	log, err := os.ReadFile(p.log)
	require.NoError(t, err)
	require.Contains(t, string(log), "Could not restore the checkpoint; starting with no baselines")
	require.Contains(t, string(log), "moved to "+aside[0])
	remoteWrite(t, addr, []prompb.TimeSeries{{Labels: pbLabels("__name__", "x", "job", "persist"), Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}}})
}

// TestKillDuringCheckpoints kills the exporter with SIGKILL at random moments while it writes a
// checkpoint every few tens of milliseconds: the checkpoint on disk is always complete, and the
// next start always restores every series.
func TestKillDuringCheckpoints(t *testing.T) {
	requireE2E(t)
	const (
		nSeries    = 20_000
		iterations = 30
	)
	dir := t.TempDir()
	cfgPath := writeFile(t, t.TempDir(), "anomaly.yml", persistConfig)
	path := filepath.Join(dir, detector.CheckpointFileName)
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	step := 0
	sendAll := func(addr string) {
		step++
		ts := make([]prompb.TimeSeries, 0, nSeries)
		for i := range nSeries {
			ts = append(ts, prompb.TimeSeries{
				Labels:  pbLabels("__name__", "kill_test", "job", "persist", "instance", fmt.Sprintf("host-%05d", i)),
				Samples: []prompb.Sample{{Timestamp: t0 + int64(step)*1000, Value: float64(i + step)}},
			})
		}
		remoteWrite(t, addr, ts)
	}

	extra := []string{"--storage.checkpoint-interval=30ms", "--log.level=warn"} // a line per checkpoint otherwise
	addr, p := startExporterIn(t, cfgPath, dir, extra...)
	sendAll(addr)
	eventually(t, 20*time.Second, "first complete checkpoint", func() error {
		if v := metricValue(t, addr, "anomaly_exporter_checkpoint_last_series"); v != nSeries {
			return fmt.Errorf("last checkpoint has %v series", v)
		}
		return nil
	})

	duringWrite := 0
	for i := range iterations {
		time.Sleep(time.Duration(rng.IntN(120)) * time.Millisecond)
		if _, err := os.Stat(path + ".tmp"); err == nil {
			duringWrite++
		}
		require.NoError(t, p.cmd.Process.Kill())
		<-p.done

		// What is on disk is a whole checkpoint with every series.
		store := detector.NewStore(detector.Options{Rules: cfg(t, cfgPath), Settings: nil}, nil)
		st, err := detector.LoadCheckpointFile(store, path)
		require.NoError(t, err, "iteration %d", i)
		require.Equal(t, nSeries, st.Series, "iteration %d", i)

		addr, p = startExporterIn(t, cfgPath, dir, extra...)
		require.Equal(t, float64(nSeries), metricValue(t, addr, "anomaly_exporter_checkpoint_restored_series"), "iteration %d", i)
		require.Zero(t, metricValue(t, addr, "anomaly_exporter_checkpoint_restore_failures_total"), "iteration %d", i)
		sendAll(addr)
	}
	aside, err := filepath.Glob(path + ".corrupt-*")
	require.NoError(t, err)
	require.Empty(t, aside)
	t.Logf("%d of %d kills landed while a checkpoint was being written", duringWrite, iterations)
	require.Positive(t, duringWrite, "no kill landed during a checkpoint: the test proved nothing")
}

func cfg(t *testing.T, path string) *config.Config {
	t.Helper()
	c, err := config.LoadFile(path)
	require.NoError(t, err)
	return c
}
