package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// scoreSink is a remote-write receiver that records, per input series, the timestamps of the
// anomaly_score samples the exporter remote-writes.
type scoreSink struct {
	mu     sync.Mutex
	scores map[string]map[int64]int // series id -> timestamp -> times received
}

func (s *scoreSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ts := range req.Timeseries {
		var name, id string
		for _, l := range ts.Labels {
			switch l.Name {
			case "__name__":
				name = l.Value
			case "id":
				id = l.Value
			}
		}
		if name != "anomaly_score" {
			continue
		}
		if s.scores[id] == nil {
			s.scores[id] = map[int64]int{}
		}
		for _, smp := range ts.Samples {
			s.scores[id][smp.Timestamp]++
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// promRange returns the raw samples' timestamps of every series a range selector selects at the
// evaluation time, by the series' id label.
func promRange(addr, selector string, at time.Time) (map[string][]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := url.Values{"query": {selector}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	b, err := httpGet(ctx, "http://"+addr+"/api/v1/query?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var resp struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, err
	}
	out := map[string][]int64{}
	for _, r := range resp.Data.Result {
		for _, v := range r.Values {
			out[r.Metric["id"]] = append(out[r.Metric["id"]], int64(v[0].(float64)*1000+0.5))
		}
	}
	return out, nil
}

// TestOverloadAndRestartLoseNothing: Prometheus remote-writes a scraped target to an exporter that
// is overloaded for a while (another sender floods it past --remote-write.max-concurrent-requests,
// so Prometheus's requests get 503 with Retry-After) and then restarts (SIGTERM, down for two
// seconds, up again from its checkpoint). Prometheus retries through both: no sample fails, and
// every sample it scraped is scored exactly once, as the scores the exporter remote-writes show.
func TestOverloadAndRestartLoseNothing(t *testing.T) {
	requireE2E(t)
	const nSeries = 20
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		b.WriteString("# TYPE steady_gauge gauge\n")
		now := float64(time.Now().UnixMilli()%600_000) / 1000
		for i := range nSeries {
			fmt.Fprintf(&b, "steady_gauge{id=\"%02d\"} %g\n", i, 100+float64(i)+now)
		}
		_, _ = io.WriteString(w, b.String())
	}))
	defer target.Close()
	sink := &scoreSink{scores: map[string]map[int64]int{}}
	out := httptest.NewServer(sink)
	defer out.Close()

	dir := t.TempDir()
	cfgPath := writeFile(t, t.TempDir(), "anomaly.yml", "rules:\n  - selector: '{job=\"steady\"}'\n    learning_period: 5s\n")
	addr := freePort(t)
	args := []string{"--web.listen-address=" + addr, "--config.file=" + cfgPath, "--storage.path=" + dir,
		"--remote-write.max-concurrent-requests=1", "--remote-write.url=" + out.URL + "/write", "--remote-write.batch-send-deadline=100ms"}
	p := start(t, "anomaly_exporter", exporterBinary(t), args...)
	waitReady(t, addr, p)

	prom := startPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: steady
    static_configs: [{targets: [%q]}]
remote_write:
  - url: http://%s/api/v1/write
    remote_timeout: 5s
    queue_config: {batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: steady_gauge
        action: keep
`, strings.TrimPrefix(target.URL, "http://"), addr))
	promMetric := func(name string) float64 {
		v, err := scrapeValue(prom, "/metrics", name)
		require.NoError(t, err)
		return v
	}
	eventually(t, 30*time.Second, "scores flowing", func() error {
		if v := metricValue(t, addr, "anomaly_exporter_detector_samples_scored_total"); v < 3*nSeries {
			return fmt.Errorf("%v samples scored", v)
		}
		return nil
	})

	// Overload: a flood of large requests keeps the one decode slot busy, until Prometheus has
	// been turned away and has retried.
	flood := func(ctx context.Context, worker int) {
		// One large body, built once: the flood costs the exporter a decode per request and this
		// process next to nothing. Its series are selected by no rule.
		ts := make([]prompb.TimeSeries, 10_000)
		for j := range ts {
			ts[j] = prompb.TimeSeries{
				Labels:  pbLabels("__name__", "flood", "job", "flood", "worker", strconv.Itoa(worker), "i", strconv.Itoa(j)),
				Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: float64(j)}},
			}
		}
		raw, err := (&prompb.WriteRequest{Timeseries: ts}).Marshal()
		if err != nil {
			return
		}
		body := snappy.Encode(nil, raw)
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/write", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-protobuf")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
	retried0 := promMetric("prometheus_remote_storage_samples_retried_total")
	fctx, stopFlood := context.WithCancel(context.Background())
	var fwg sync.WaitGroup
	for w := range 8 {
		fwg.Go(func() { flood(fctx, w) })
	}
	floodStart := time.Now()
	var overloaded atomic.Bool
	eventually(t, 45*time.Second, "Prometheus turned away and retrying", func() error {
		if promMetric("prometheus_remote_storage_samples_retried_total") > retried0 && time.Since(floodStart) > 2*time.Second {
			overloaded.Store(true)
			return nil
		}
		return fmt.Errorf("%v samples retried", promMetric("prometheus_remote_storage_samples_retried_total")-retried0)
	})
	stopFlood()
	fwg.Wait()
	shed := metricValue(t, addr, "anomaly_exporter_remote_write_requests_shed_total", "reason=concurrency")
	retriedOverload := promMetric("prometheus_remote_storage_samples_retried_total") - retried0
	t.Logf("overload for %s: %v requests shed with 503, %v of Prometheus's samples retried",
		time.Since(floodStart).Round(100*time.Millisecond), shed, retriedOverload)
	require.Positive(t, shed)

	// Restart: down for two seconds, up again from the checkpoint written at SIGTERM.
	time.Sleep(2 * time.Second)
	stopping := time.Now()
	p.stop(20 * time.Second)
	t.Logf("stopped in %s", time.Since(stopping))
	require.NoError(t, p.err, "exit status after SIGTERM")
	time.Sleep(2 * time.Second)
	starting := time.Now()
	p = start(t, "anomaly_exporter", exporterBinary(t), args...)
	waitReady(t, addr, p)
	t.Logf("ready again in %s", time.Since(starting))
	require.Positive(t, metricValue(t, addr, "anomaly_exporter_checkpoint_restored_series"))

	// Every sample Prometheus scraped until now is eventually scored, exactly once.
	time.Sleep(3 * time.Second)
	cut := time.Now()
	defer func() { t.Logf("all scored %s after the cut", time.Since(cut)) }()
	var sent, scored, twice int
	eventually(t, 60*time.Second, "every scraped sample scored", func() error {
		want, err := promRange(prom, "steady_gauge[10m]", cut)
		if err != nil {
			return err
		}
		if len(want) != nSeries {
			return fmt.Errorf("%d series in Prometheus", len(want))
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		sent, scored, twice = 0, 0, 0
		var missing []string
		for id, tss := range want {
			for _, ts := range tss {
				sent++
				switch n := sink.scores[id][ts]; {
				case n == 0:
					missing = append(missing, fmt.Sprintf("%s@%d", id, ts))
				case n > 1:
					twice++
				default:
					scored++
				}
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("%d of %d samples not scored, e.g. %v", len(missing), sent, missing[:min(3, len(missing))])
		}
		return nil
	})
	failed := promMetric("prometheus_remote_storage_samples_failed_total")
	retried := promMetric("prometheus_remote_storage_samples_retried_total") - retried0
	t.Logf("%d samples scraped and sent, %d scored once, %d twice; Prometheus: %v failed, %v retried (%v during the overload)",
		sent, scored, twice, failed, retried, retriedOverload)
	require.True(t, overloaded.Load())
	require.Zero(t, failed, "Prometheus failed to send samples")
	require.Zero(t, twice, "samples scored twice")
	require.Greater(t, retried, retriedOverload, "the restart was retried through too")
}
