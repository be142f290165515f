package e2e

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// prometheusConfig scrapes the exporter's own /metrics (the input) and its /scores (the output,
// with honor_labels so that scores keep the input's job and instance), and remote-writes the
// input, never the scores, back to the exporter: the loop a user sets up.
func prometheusConfig(exporter string) string {
	return fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: exporter
    static_configs: [{targets: [%[1]q]}]
  - job_name: anomaly-scores
    honor_labels: true
    metrics_path: /scores
    static_configs: [{targets: [%[1]q]}]
remote_write:
  - url: http://%[1]s/api/v1/write
    queue_config: {batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s}
    write_relabel_configs:
      - source_labels: [job]
        regex: exporter
        action: keep
      - source_labels: [__name__]
        regex: "anomaly_(score|value|expected|lower|upper|learning)"
        action: drop
`, exporter)
}

// testConfig scores every input series with a learning period short enough for a test.
const testConfig = `
global:
  stale_after: 1m
rules:
  - selector: '{job="exporter"}'
    learning_period: 5s
`

func TestPrometheusRemoteWriteAndScores(t *testing.T) {
	requireE2E(t)
	exp, _ := startExporter(t, testConfig)
	prom := startPrometheus(t, prometheusConfig(exp))

	// Issue 2: samples arrive, and Prometheus reports no failed samples.
	eventually(t, 60*time.Second, "exporter receives samples", func() error {
		v, err := scrapeValue(exp, "/metrics", "anomaly_exporter_remote_write_samples_received_total")
		if err != nil {
			return err
		}
		if v < 500 {
			return fmt.Errorf("received %v samples", v)
		}
		return nil
	})
	sent, err := scrapeValue(prom, "/metrics", "prometheus_remote_storage_samples_total")
	if err != nil { // 2.42 names it ..._samples_total; newer ones ..._samples_sent_total
		sent, err = scrapeValue(prom, "/metrics", "prometheus_remote_storage_samples_sent_total")
	}
	require.NoError(t, err)
	require.Positive(t, sent)
	failed, err := scrapeValue(prom, "/metrics", "prometheus_remote_storage_samples_failed_total")
	require.NoError(t, err)
	require.Zero(t, failed, "Prometheus failed to send samples")
	ok204, err := scrapeValue(exp, "/metrics", "anomaly_exporter_remote_write_requests_total", "code=204")
	require.NoError(t, err)
	require.Positive(t, ok204)

	// Issue 3: anomaly_score in PromQL, one series per input series, with its original labels.
	// Inputs whose value is NaN are never scored; counters need two samples, so poll.
	eventually(t, 60*time.Second, "one anomaly_score per input series", func() error {
		inputs, err := promQuery(prom, `{job="exporter"}`)
		if err != nil {
			return err
		}
		scores, err := promQuery(prom, `anomaly_score{job="exporter"}`)
		if err != nil {
			return err
		}
		want := map[string]bool{}
		for _, s := range inputs {
			if v, _ := strconv.ParseFloat(s.Value[1].(string), 64); math.IsNaN(v) {
				continue
			}
			lbls := map[string]string{"anomaly_metric": s.Metric["__name__"]}
			for k, v := range s.Metric {
				if k != "__name__" {
					lbls[k] = v
				}
			}
			want[key(lbls)] = true
		}
		labelSets := make([]map[string]string, len(scores))
		for i, s := range scores {
			labelSets[i] = s.Metric
		}
		missing, extra := exactlyOnce(want, labelSets)
		if len(want) < 50 || len(missing) > 0 || len(extra) > 0 {
			return fmt.Errorf("%d inputs, %d scores; missing %d (e.g. %v); extra %d (e.g. %v)",
				len(want), len(scores), len(missing), first(missing), len(extra), first(extra))
		}
		return nil
	})

	// Every score is a finite number >= 0, and the band brackets the expected value.
	for _, q := range []string{`anomaly_score{job="exporter"} < 0`, `anomaly_lower{job="exporter"} > anomaly_expected`, `anomaly_upper{job="exporter"} < anomaly_expected`} {
		res, err := promQuery(prom, q)
		require.NoError(t, err)
		require.Empty(t, res, q)
	}
}

// exactlyOnce compares output label sets (their __name__ ignored) with the wanted keys: missing
// are the wanted ones not seen exactly once, extra the ones seen but not wanted.
func exactlyOnce(want map[string]bool, labelSets []map[string]string) (missing, extra []string) {
	got := map[string]int{}
	for _, m := range labelSets {
		ls := make(map[string]string, len(m))
		for k, v := range m {
			if k != "__name__" {
				ls[k] = v
			}
		}
		got[key(ls)]++
	}
	for k := range want {
		if got[k] != 1 {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	return missing, extra
}

func key(m map[string]string) string {
	ks := make([]string, 0, len(m))
	for k, v := range m {
		ks = append(ks, k+"="+v)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	sort.Strings(s)
	return s[0]
}
