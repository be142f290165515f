package detector

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

func TestStoreSampleWindow(t *testing.T) {
	// Without a window (a new store: backtests, tests) any timestamp is scored.
	s := newTestStore(t, testOptions())
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{series(batch.Gauge, []batch.Sample{{T: 1000, V: 1}}, "__name__", "g")}}))
	require.Equal(t, 1.0, testCounter(t, s.reg, "anomaly_exporter_detector_samples_scored_total"))

	now := s.clock.UnixMilli()
	min := time.Minute.Milliseconds()
	s2 := newTestStore(t, testOptions())
	s2.SetSampleWindow(30*24*time.Hour, 10*time.Minute)
	send2 := func(samples ...batch.Sample) {
		t.Helper()
		require.NoError(t, s2.Append(&batch.Batch{Series: []batch.Series{series(batch.Gauge, samples, "__name__", "g")}}))
	}
	// A series whose only samples are outside the window is not created.
	send2(batch.Sample{T: now / 1000, V: 1}, batch.Sample{T: now + 11*min, V: 1})
	require.Equal(t, 0, s2.Len())
	require.Equal(t, 1.0, skipped(t, s2.reg, "too_old"))
	require.Equal(t, 1.0, skipped(t, s2.reg, "too_far_in_future"))

	// Within the window, from 30 days back to 10 minutes ahead, samples are scored; those
	// outside it are skipped without disturbing the ones around them.
	send2(
		batch.Sample{T: now - 30*24*60*min, V: 1},
		batch.Sample{T: now - 5*min, V: 2},
		batch.Sample{T: now + 100*365*24*60*min, V: 3},
		batch.Sample{T: now, V: 4},
		batch.Sample{T: now + 10*min, V: 5},
	)
	require.Equal(t, 1, s2.Len())
	require.Equal(t, 4.0, testCounter(t, s2.reg, "anomaly_exporter_detector_samples_scored_total"))
	require.Equal(t, 2.0, skipped(t, s2.reg, "too_far_in_future"))
	_, ok := s2.Lookup(labels.FromStrings("__name__", "g"))
	require.True(t, ok)

	// The window moves with the wall clock.
	s2.clock = s2.clock.Add(time.Hour)
	send2(batch.Sample{T: now + 50*min, V: 6})
	require.Equal(t, 5.0, testCounter(t, s2.reg, "anomaly_exporter_detector_samples_scored_total"))
	require.Equal(t, 2.0, skipped(t, s2.reg, "too_far_in_future"))
}

func testCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// TestStoreSeriesLimitUnderChurn sends ten times the series limit in new series: the store stays
// at the limit, counts every sample it did not track, keeps scoring the series it has, and its
// heap stays within what the limit's series cost.
func TestStoreSeriesLimitUnderChurn(t *testing.T) {
	const limit = 20_000
	opts := testOptions()
	opts.MaxSeries = limit
	s := newTestStore(t, opts)
	now := s.clock.UnixMilli()
	batchOf := func(lo, hi int, t0 int64) *batch.Batch {
		b := &batch.Batch{}
		for i := lo; i < hi; i++ {
			b.Series = append(b.Series, series(batch.Gauge, []batch.Sample{{T: t0, V: float64(i % 10)}},
				"__name__", "churn", "instance", "10.0."+strconv.Itoa(i>>8)+"."+strconv.Itoa(i&255)+":9100", "job", "node", "pod", "pod-"+strconv.Itoa(i)))
		}
		return b
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	for lo := 0; lo < limit; lo += 2000 {
		require.NoError(t, s.Append(batchOf(lo, lo+2000, now)))
	}
	require.Equal(t, limit, s.Len())
	atLimit := heap()
	perSeries := float64(atLimit-base) / limit

	for lo := limit; lo < 10*limit; lo += 2000 {
		require.NoError(t, s.Append(batchOf(lo, lo+2000, now)))
	}
	require.Equal(t, limit, s.Len())
	require.Equal(t, float64(9*limit), skipped(t, s.reg, "series_limit"))
	require.Equal(t, uint64(9*limit), s.SeriesLimitSkips())
	after := heap()
	t.Logf("heap: %d KiB empty, %d KiB at the limit of %d series (%.0f B/series), %d KiB after 10x the limit in new series",
		base>>10, atLimit>>10, limit, perSeries, after>>10)
	require.Less(t, float64(after), float64(atLimit)*1.1+float64(1<<20), "heap grew past the limit's budget")

	// The tracked series keep scoring.
	scored := testCounter(t, s.reg, "anomaly_exporter_detector_samples_scored_total")
	for lo := 0; lo < limit; lo += 2000 {
		require.NoError(t, s.Append(batchOf(lo, lo+2000, now+15_000)))
	}
	require.Equal(t, scored+limit, testCounter(t, s.reg, "anomaly_exporter_detector_samples_scored_total"))
	require.Equal(t, float64(9*limit), skipped(t, s.reg, "series_limit"))
}
