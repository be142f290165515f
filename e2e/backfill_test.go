package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// shopLevel is the history's seasonal pattern at t: a daily curve, lower at weekends, with a
// little deterministic noise.
func shopLevel(t time.Time) float64 {
	h := float64(t.Unix()%86400) / 3600
	v := 100 + 50*math.Sin(2*math.Pi*(h-9)/24)
	if wd := t.UTC().Weekday(); wd == time.Saturday || wd == time.Sunday {
		v *= 0.6
	}
	noise := float64((t.Unix()/60*7919)%13)/13*4 - 2 // within ±2
	return v + noise
}

// writeHistory writes two weeks of a gauge and a counter, one sample a minute up to end, as
// OpenMetrics for promtool, and returns the counter's last value.
func writeHistory(t *testing.T, path string, start, end time.Time) float64 {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "# TYPE shop_orders gauge")
	for ts := start; !ts.After(end); ts = ts.Add(time.Minute) {
		fmt.Fprintf(w, "shop_orders{job=\"shop\"} %s %d\n", strconv.FormatFloat(shopLevel(ts), 'f', -1, 64), ts.Unix())
	}
	fmt.Fprintln(w, "# TYPE shop_requests counter")
	total := 0.0
	for ts := start; !ts.After(end); ts = ts.Add(time.Minute) {
		total += shopLevel(ts) * 60 // a rate of shopLevel per second
		fmt.Fprintf(w, "shop_requests_total{job=\"shop\"} %s %d\n", strconv.FormatFloat(total, 'f', -1, 64), ts.Unix())
	}
	fmt.Fprintln(w, "# EOF")
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return total
}

// startPrometheusOn runs Debian's prometheus on an existing TSDB directory.
func startPrometheusOn(t *testing.T, dataDir string) string {
	t.Helper()
	bin := lookBinary(t, "prometheus", "prometheus")
	cfgPath := writeFile(t, t.TempDir(), "prometheus.yml", "global:\n  scrape_interval: 1m\n")
	addr := freePort(t)
	start(t, "prometheus", bin, "--config.file="+cfgPath, "--storage.tsdb.path="+dataDir,
		"--storage.tsdb.retention.time=60d", "--web.listen-address="+addr, "--log.level=warn")
	eventually(t, 30*time.Second, "prometheus ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := httpGet(ctx, "http://"+addr+"/-/ready")
		return err
	})
	return addr
}

const backfillConfig = `
rules:
  - name: orders          # discovered from its selector at start
    selector: '{__name__="shop_orders"}'
    learning_period: 1w
  - name: everything-else # backfilled when first seen
    learning_period: 1w
`

// TestBackfillFromPrometheus loads two weeks of a seasonal gauge and counter into a real
// Prometheus with promtool, starts the exporter with --backfill.url, and checks that right away
// the normal pattern scores below 1 and an anomaly above 1, with no learning period.
func TestBackfillFromPrometheus(t *testing.T) {
	requireE2E(t)
	promtool := lookBinary(t, "promtool", "prometheus")
	end := time.Now().Add(-2 * time.Minute).Truncate(time.Minute)
	start14 := end.Add(-14 * 24 * time.Hour)
	tmp := t.TempDir()
	om := filepath.Join(tmp, "history.om")
	lastCounter := writeHistory(t, om, start14, end)
	dataDir := filepath.Join(tmp, "tsdb")
	out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", om, dataDir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	prom := startPrometheusOn(t, dataDir)
	res, err := promQuery(prom, `count_over_time(shop_orders[15d])`)
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, fmt.Sprint(14*24*60+1), res[0].Value[1], "the history is in Prometheus")

	cfgPath := writeFile(t, tmp, "anomaly.yml", backfillConfig)
	addr, p := startExporterIn(t, cfgPath, t.TempDir(), "--backfill.url=http://"+prom, "--log.level=info")

	// The gauge is found through its rule's selector and backfilled in the background.
	eventually(t, 30*time.Second, "gauge backfilled", func() error {
		if v := metricValue(t, addr, "anomaly_exporter_backfill_series_done_total"); v < 1 {
			return fmt.Errorf("%v series done", v)
		}
		return nil
	})
	// The counter is backfilled when first seen; its first live sample waits, counted.
	counterAt := func(ts time.Time, rate float64) float64 {
		return lastCounter + rate*ts.Sub(end).Seconds()
	}
	sendOne := func(name string, ts time.Time, v float64) {
		remoteWrite(t, addr, []prompb.TimeSeries{{
			Labels:  pbLabels("__name__", name, "job", "shop"),
			Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: v}},
		}})
	}
	t1 := end.Add(time.Minute)
	sendOne("shop_requests_total", t1, counterAt(t1, shopLevel(t1)))
	eventually(t, 30*time.Second, "counter backfilled", func() error {
		if v := metricValue(t, addr, "anomaly_exporter_backfill_series_done_total"); v < 2 {
			return fmt.Errorf("%v series done", v)
		}
		if v := metricValue(t, addr, "anomaly_exporter_backfill_series_pending"); v != 0 {
			return fmt.Errorf("%v series pending", v)
		}
		return nil
	})
	require.Zero(t, metricValue(t, addr, "anomaly_exporter_backfill_series_failed_total"))
	require.GreaterOrEqual(t, metricValue(t, addr, "anomaly_exporter_backfill_samples_total"), float64(2*14*24*60))
	require.Equal(t, 1.0, metricValue(t, addr, "anomaly_exporter_detector_samples_skipped_total", "reason=backfilling"))

	score := func(name string) (float64, float64) {
		t.Helper()
		s, err := scrapeValue(addr, "/scores", "anomaly_score", "anomaly_metric="+name)
		require.NoError(t, err)
		l, err := scrapeValue(addr, "/scores", "anomaly_learning", "anomaly_metric="+name)
		require.NoError(t, err)
		return s, l
	}
	// The normal pattern, right after start: below 1, not learning.
	t2 := t1.Add(time.Minute)
	sendOne("shop_orders", t2, shopLevel(t2))
	sendOne("shop_requests_total", t2, counterAt(t2, shopLevel(t2)))
	for _, name := range []string{"shop_orders", "shop_requests_total"} {
		s, l := score(name)
		require.Zero(t, l, "%s is not learning", name)
		require.Less(t, s, 1.0, "%s: the normal pattern", name)
	}
	// An anomaly: above 1.
	t3 := t2.Add(time.Minute)
	sendOne("shop_orders", t3, shopLevel(t3)+80)
	sendOne("shop_requests_total", t3, counterAt(t2, shopLevel(t2))+(shopLevel(t3)+80)*60)
	for _, name := range []string{"shop_orders", "shop_requests_total"} {
		s, l := score(name)
		require.Zero(t, l, "%s is not learning", name)
		require.Greater(t, s, 1.0, "%s: the anomaly", name)
	}

	log, err := os.ReadFile(p.log)
	require.NoError(t, err)
	require.Contains(t, string(log), `msg="Backfill caught up"`)
}
