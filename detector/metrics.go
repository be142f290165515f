package detector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// storeMetrics are the store's self metrics, updated once per batch rather than per sample.
type storeMetrics struct {
	series       prometheus.Gauge
	created      prometheus.Counter
	expired      prometheus.Counter
	unselected   prometheus.Counter
	scored       prometheus.Counter
	stale        prometheus.Counter
	skipped      [numOutcomes]prometheus.Counter
	noRule       prometheus.Counter
	overLimit    prometheus.Counter
	histograms   prometheus.Counter
	ownOutput    prometheus.Counter
	backfilling  prometheus.Counter
	tooOld       prometheus.Counter
	tooNew       prometheus.Counter
	scoringTotal prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	const ns, sub = "anomaly_exporter", "detector"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "samples_skipped_total",
		Help: "Samples received but not scored, by reason.",
	}, []string{"reason"})
	m := &storeMetrics{
		series: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "series",
			Help: "Series tracked, each with a baseline."}),
		created:      counter("series_created_total", "Series that started being tracked."),
		expired:      counter("series_expired_total", "Series forgotten after receiving no sample for the series expiry."),
		unselected:   counter("series_unselected_total", "Series forgotten because no rule selects them after a config reload."),
		scored:       counter("samples_scored_total", "Samples scored against a baseline."),
		stale:        counter("stale_markers_total", "Stale markers received for tracked series; each ends the series' scores."),
		scoringTotal: counter("scoring_seconds_total", "Time spent scoring received batches."),
		noRule:       skipped.WithLabelValues("no_rule"),
		overLimit:    skipped.WithLabelValues("series_limit"),
		histograms:   skipped.WithLabelValues("native_histogram"),
		ownOutput:    skipped.WithLabelValues("own_output"),
		backfilling:  skipped.WithLabelValues("backfilling"),
		tooOld:       skipped.WithLabelValues("too_old"),
		tooNew:       skipped.WithLabelValues("too_far_in_future"),
	}
	for o := SkipNonFinite; o < numOutcomes; o++ {
		m.skipped[o] = skipped.WithLabelValues(o.String())
	}
	if reg != nil {
		reg.MustRegister(m.series, m.created, m.expired, m.unselected, m.scored, m.stale, m.scoringTotal, skipped)
	}
	return m
}

func (m *storeMetrics) observe(st *appendStats, took time.Duration, series int64) {
	add := func(c prometheus.Counter, n int) {
		if n > 0 {
			c.Add(float64(n))
		}
	}
	add(m.scored, st.outcomes[Scored])
	add(m.stale, st.outcomes[Stale])
	for o := SkipNonFinite; o < numOutcomes; o++ {
		add(m.skipped[o], st.outcomes[o])
	}
	add(m.noRule, st.noRule)
	add(m.overLimit, st.overLimit)
	add(m.histograms, st.histos)
	add(m.ownOutput, st.ownOutput)
	add(m.backfilling, st.backfilling)
	add(m.tooOld, st.tooOld)
	add(m.tooNew, st.tooNew)
	add(m.created, st.created)
	add(m.unselected, st.dropped)
	m.scoringTotal.Add(took.Seconds())
	if st.created > 0 || st.dropped > 0 {
		m.series.Set(float64(series))
	}
}
