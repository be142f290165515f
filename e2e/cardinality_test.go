package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/loadgen"
)

// rssBytes reads a process's resident set size from /proc.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kib << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// TestSeriesLimitBoundsMemory sends ten times the series limit in new series to the exporter: it
// tracks no more than the limit, counts every sample of the others, logs that at a bounded rate,
// keeps scoring the series it has, and its RSS stays within the limit's budget.
func TestSeriesLimitBoundsMemory(t *testing.T) {
	requireE2E(t)
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the exporter's RSS")
	}
	const (
		limit = 20_000
		// budget is what the limit's series may cost: their models and labels (measured at about
		// 2.5 KiB in the detector's tests), and the request buffers and runtime besides.
		perSeries = 4 << 10
		fixed     = 48 << 20
	)
	addr, p := startExporter(t, fmt.Sprintf("global:\n  max_series: %d\nrules:\n  - name: everything\n", limit))
	pid := p.cmd.Process.Pid
	idle := rssBytes(t, pid)

	start := time.Now().Add(-10 * time.Minute).Truncate(15 * time.Second)
	send := func(series int, at time.Time) *loadgen.Report {
		t.Helper()
		o := loadgen.DefaultOptions()
		o.URL = "http://" + addr + "/api/v1/write"
		o.Series, o.CounterFraction, o.Concurrency, o.Rounds, o.Start = series, 0, 2, 1, at
		r, err := loadgen.Run(context.Background(), o)
		require.NoError(t, err)
		require.Equal(t, r.Samples, r.Accepted, "every request answered 204: %s", r.FirstError)
		return r
	}

	send(limit, start)
	require.Equal(t, float64(limit), metricValue(t, addr, "anomaly_exporter_detector_series"))
	atLimit := rssBytes(t, pid)

	// The same series a step later, and ten times as many new ones.
	scored := metricValue(t, addr, "anomaly_exporter_detector_samples_scored_total")
	send(11*limit, start.Add(15*time.Second))
	after := rssBytes(t, pid)
	t.Logf("RSS: %.1f MiB idle, %.1f MiB at the limit of %d series, %.1f MiB after %d new series more (budget %.1f MiB)",
		mib(idle), mib(atLimit), limit, mib(after), 10*limit, mib(idle+limit*perSeries+fixed))

	require.Equal(t, float64(limit), metricValue(t, addr, "anomaly_exporter_detector_series"))
	require.Equal(t, float64(10*limit), metricValue(t, addr, "anomaly_exporter_detector_samples_skipped_total", "reason=series_limit"))
	require.Equal(t, scored+limit, metricValue(t, addr, "anomaly_exporter_detector_samples_scored_total"), "the tracked series keep scoring")
	require.Less(t, after, idle+limit*perSeries+fixed, "RSS over the limit's budget")
	require.Less(t, after-atLimit, int64(32<<20), "ten times the limit in new series grew RSS by more than request buffers")

	eventually(t, 15*time.Second, "the series limit logged", func() error {
		log, err := os.ReadFile(p.log)
		if err != nil {
			return err
		}
		if n := strings.Count(string(log), "Series limit reached"); n != 1 {
			return fmt.Errorf("logged %d times", n)
		}
		return nil
	})
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
