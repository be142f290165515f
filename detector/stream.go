package detector

import (
	"math"

	"github.com/prometheus/prometheus/model/value"

	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// Outcome says what became of one raw sample pushed into a Stream.
type Outcome uint8

// Outcomes. Everything but Scored and Stale is a skip, counted by reason in the self metrics.
const (
	Scored Outcome = iota
	// Stale is a Prometheus stale marker: the series has ended.
	Stale
	// SkipNonFinite is NaN or ±Inf: never learned, never scored.
	SkipNonFinite
	// SkipOutOfOrder is a sample older than the last one seen.
	SkipOutOfOrder
	// SkipDuplicate is a second sample at the timestamp of the last one.
	SkipDuplicate
	// SkipCounterFirst is the first sample of a counter: a rate needs two.
	SkipCounterFirst
	// SkipCounterReset is a counter that went down: it restarted, and the sample only rebases it.
	SkipCounterReset
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	"scored", "stale", "non_finite", "out_of_order", "duplicate", "counter_first", "counter_reset",
}

// String is the reason label of the self metrics.
func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// Stream turns the raw samples of one series into model observations: gauges as they are,
// counters as per-second rates between consecutive samples. It is the one path from a raw
// sample to a score, shared by the server, backtests and backfill, so that they cannot disagree.
type Stream struct {
	// lastT is the timestamp (ms) of the last accepted sample; valid when primed.
	lastT int64
	// lastV is the raw value of the last accepted sample (the counter's base).
	lastV  float64
	primed bool
	// Counter scores the per-second rate instead of the value.
	Counter bool
	// Model comes last: the fields above are read with its first bytes (see touchEntry).
	Model model.Model
}

// Observed is the last value handed to the model: the sample value, or the rate of a counter
// (the model keeps it, so the stream does not: 8 bytes of every series).
func (st *Stream) Observed() float64 { return st.Model.LastValue() }

// Push feeds one raw sample. The Result is meaningful only when the Outcome is Scored.
func (st *Stream) Push(t int64, v float64, s *model.Settings) (model.Result, Outcome) {
	in := model.At(t)
	return st.PushAt(&in, v, s)
}

// PushAt is Push at in.T(), for a caller that pushes the samples of many series at one time
// (see model.Instant).
func (st *Stream) PushAt(in *model.Instant, v float64, s *model.Settings) (model.Result, Outcome) {
	t := in.T()
	if math.IsNaN(v) {
		if value.IsStaleNaN(v) {
			// A series that comes back after a stale marker starts a new counter run.
			st.primed = false
			return model.Result{}, Stale
		}
		return model.Result{}, SkipNonFinite
	}
	if math.IsInf(v, 0) {
		return model.Result{}, SkipNonFinite
	}
	if st.primed {
		switch {
		case t < st.lastT:
			return model.Result{}, SkipOutOfOrder
		case t == st.lastT:
			return model.Result{}, SkipDuplicate
		}
	}
	if !st.Counter {
		st.lastT, st.lastV, st.primed = t, v, true
		return st.Model.ObserveAt(in, v, s), Scored
	}
	prevT, prevV, primed := st.lastT, st.lastV, st.primed
	st.lastT, st.lastV, st.primed = t, v, true
	switch {
	case !primed:
		return model.Result{}, SkipCounterFirst
	case v < prevV:
		return model.Result{}, SkipCounterReset
	}
	rate := (v - prevV) / (float64(t-prevT) / 1000)
	return st.Model.ObserveAt(in, rate, s), Scored
}
