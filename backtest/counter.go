package backtest

import (
	"strings"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// IsCounter says whether a series is scored on its per-second rate, by the same rule the server
// applies to what it is sent: the metric type when known, else the naming conventions of
// Prometheus and OpenMetrics (_total, and the _count, _sum and _bucket of histograms and
// summaries). A backtest that guessed differently would score another signal than the server.
func IsCounter(t batch.MetricType, name string) bool {
	counterName := strings.HasSuffix(name, "_total")
	partName := strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_bucket")
	switch t {
	case batch.Counter:
		return true
	case batch.Gauge, batch.GaugeHistogram, batch.Info, batch.StateSet:
		return false
	case batch.Histogram, batch.Summary:
		return partName
	}
	return counterName || partName
}
