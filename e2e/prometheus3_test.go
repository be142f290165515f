package e2e

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// prometheus3Binary is the Prometheus 3 that `make test` builds from tools/prometheus3 and names
// in PROMETHEUS3 (Debian's Prometheus 2.42 speaks remote write 1.0 only). Without PROMETHEUS3,
// .bin/prometheus3 as `make prometheus3` leaves it. Its absence is a failure, not a skip.
func prometheus3Binary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("PROMETHEUS3")
	if bin == "" {
		bin = filepath.Join("..", ".bin", "prometheus3")
	}
	bin, err := filepath.Abs(bin)
	require.NoError(t, err)
	_, err = os.Stat(bin)
	require.NoErrorf(t, err, "Prometheus 3 is needed for the remote-write 2.0 end-to-end test: `make prometheus3` builds "+
		".bin/prometheus3 from tools/prometheus3 (`make test` does, and sets PROMETHEUS3), or set PROMETHEUS3 "+
		"to a Prometheus 3.x binary (or run go test -short)")
	return bin
}

// appTarget is a scrape target with one series of each kind whose type a name cannot tell:
// a counter with the _total suffix, a counter without it, a gauge with it, and a plain gauge.
// Counters rise at a known rate, so that /scores shows whether the exporter scored the rate
// (a counter) or the raw value (a gauge).
func appTarget(t *testing.T) *httptest.Server {
	t0 := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := time.Since(t0).Seconds()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, `# HELP jobs_processed_total Jobs processed.
# TYPE jobs_processed_total counter
jobs_processed_total{queue="emails"} %g
# HELP emails_sent Emails sent: a counter whose name has no counter suffix.
# TYPE emails_sent counter
emails_sent{queue="emails"} %g
# HELP sessions_total Sessions open now: a gauge whose name has a counter suffix.
# TYPE sessions_total gauge
sessions_total{queue="emails"} %g
# HELP queue_depth Jobs waiting.
# TYPE queue_depth gauge
queue_depth{queue="emails"} %g
`, 1000+7*s, 500+3*s, 50+2*math.Sin(s), 20+math.Sin(s/2))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// prometheus3Config scrapes the target every second and remote-writes its four series to the
// exporter with remote write 2.0.
func prometheus3Config(target, exporter string) string {
	return fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: app
    static_configs: [{targets: [%q]}]
remote_write:
  - url: http://%s/api/v1/write
    protobuf_message: io.prometheus.write.v2.Request
    queue_config: {batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s}
    metadata_config: {send: false} # the 1.0 way; with 2.0 it is redundant, and Prometheus warns
    write_relabel_configs:
      - source_labels: [__name__]
        regex: "jobs_processed_total|emails_sent|sessions_total|queue_depth"
        action: keep
`, target, exporter)
}

// TestPrometheus3RemoteWrite2 sends a real Prometheus 3's scrapes to the exporter with remote
// write 2.0, which carries each series' metric type: the counter without a counter suffix must
// be scored on its rate and the gauge with one on its value, which names alone would get wrong.
func TestPrometheus3RemoteWrite2(t *testing.T) {
	requireE2E(t)
	bin := prometheus3Binary(t)
	exp, _ := startExporter(t, `
global:
  stale_after: 1m
rules:
  - selector: '{job="app"}'
    learning_period: 5s
`)
	target := appTarget(t)
	targetAddr := strings.TrimPrefix(target.URL, "http://")
	// Prometheus 3.15 sends the metric types of scraped series in remote write 2.0 only with
	// type-and-unit-labels, which also gives every series a __type__ label (and a __unit__ label
	// when the target declares a unit). Its metadata-wal-records does not do it: the flag does not
	// reach the TSDB that scrapes append to, so every series goes out with type unspecified.
	prom, promProc := runPrometheus(t, "prometheus3", bin, prometheus3Config(targetAddr, exp),
		"--enable-feature=type-and-unit-labels")

	// Scores for the four series on /scores, with their original labels but __type__ (and
	// __unit__), which the exporter takes as metadata and drops: the scores are gauges whatever
	// their input was, and a series keeps its identity whether its sender adds the labels or not.
	// Counters are scored on their per-second rate (7/s and 3/s, where the raw values are 500 and
	// more), gauges on their value. A counter's first sample only starts its rate, so poll.
	type want struct{ lo, hi float64 }
	wants := map[string]want{
		"jobs_processed_total": {6, 8},   // a counter by type and by name
		"emails_sent":          {2, 4},   // a counter by type only
		"sessions_total":       {47, 53}, // a gauge by type, a counter by name
		"queue_depth":          {18, 22}, // a gauge by type and by name
	}
	eventually(t, 30*time.Second, "scores of the four series on /scores", func() error {
		scores, err := scoresByMetric(exp)
		if err != nil {
			return err
		}
		for metric, w := range wants {
			s, ok := scores[metric]
			if !ok {
				return fmt.Errorf("no scores for %s yet (have %d series)", metric, len(scores))
			}
			wantLabels := map[string]string{"anomaly_metric": metric, "job": "app", "instance": targetAddr, "queue": "emails"}
			for fam, m := range s {
				if key(m.labels) != key(wantLabels) {
					return fmt.Errorf("%s of %s has labels %v, want %v", fam, metric, m.labels, wantLabels)
				}
			}
			for _, fam := range []string{"anomaly_score", "anomaly_value", "anomaly_expected", "anomaly_lower", "anomaly_upper", "anomaly_learning"} {
				if _, ok := s[fam]; !ok {
					return fmt.Errorf("no %s for %s", fam, metric)
				}
			}
			if v := s["anomaly_value"].value; v < w.lo || v > w.hi {
				return fmt.Errorf("anomaly_value of %s is %v, want it in [%v, %v]", metric, v, w.lo, w.hi)
			}
			if v := s["anomaly_score"].value; math.IsNaN(v) || v < 0 {
				return fmt.Errorf("anomaly_score of %s is %v", metric, v)
			}
		}
		return nil
	})

	// The exporter answered remote write 2.0 only, and only 204.
	// Both counts from one scrape: Prometheus keeps sending meanwhile.
	mfs, err := scrapeFamilies(exp, "/metrics")
	require.NoError(t, err)
	all, err := familySum(mfs, "anomaly_exporter_remote_write_requests_total")
	require.NoError(t, err)
	ok, err := familySum(mfs, "anomaly_exporter_remote_write_requests_total", "protocol=2.0", "code=204")
	require.NoError(t, err)
	require.Positive(t, ok, "no remote write 2.0 request answered 204")
	require.Equal(t, all, ok, "requests other than remote write 2.0 answered 204")
	received, err := scrapeValue(exp, "/metrics", "anomaly_exporter_remote_write_samples_received_total", "protocol=2.0")
	require.NoError(t, err)
	require.Positive(t, received)

	// Prometheus 3 sent samples, keeps sending them, and none failed or was retried. It reads
	// X-Prometheus-Remote-Write-Samples-Written: a 2xx that says nothing was written counts the
	// samples as failed.
	sent, err := scrapeValue(prom, "/metrics", "prometheus_remote_storage_samples_total")
	require.NoError(t, err)
	require.Positive(t, sent)
	eventually(t, 10*time.Second, "Prometheus 3 sends more samples", func() error {
		now, err := scrapeValue(prom, "/metrics", "prometheus_remote_storage_samples_total")
		if err != nil {
			return err
		}
		if now <= sent {
			return fmt.Errorf("samples sent stay at %v", now)
		}
		return nil
	})
	for _, m := range []string{"prometheus_remote_storage_samples_failed_total", "prometheus_remote_storage_samples_retried_total"} {
		v, err := scrapeValue(prom, "/metrics", m)
		require.NoError(t, err)
		require.Zero(t, v, m)
	}
	// Nor did it log a warning or an error about remote write.
	b, err := os.ReadFile(promProc.log)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		require.NotContains(t, line, "component=remote", "Prometheus 3 logged about remote write")
	}
}

// scoreSample is one output series on /scores.
type scoreSample struct {
	labels map[string]string
	value  float64
}

// scoresByMetric reads /scores: by anomaly_metric, by output family, its one series.
func scoresByMetric(exporter string) (map[string]map[string]scoreSample, error) {
	mfs, err := scrapeFamilies(exporter, "/scores")
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]scoreSample{}
	for fam, mf := range mfs {
		for _, m := range mf.GetMetric() {
			s := scoreSample{labels: map[string]string{}, value: m.GetGauge().GetValue()}
			if m.GetGauge() == nil {
				s.value = m.GetUntyped().GetValue()
			}
			for _, lp := range m.GetLabel() {
				s.labels[lp.GetName()] = lp.GetValue()
			}
			metric := s.labels["anomaly_metric"]
			if out[metric] == nil {
				out[metric] = map[string]scoreSample{}
			}
			if _, dup := out[metric][fam]; dup {
				return nil, fmt.Errorf("two %s series for %s", fam, metric)
			}
			out[metric][fam] = s
		}
	}
	return out, nil
}
