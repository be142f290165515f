package detector

import (
	"time"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// SetSampleWindow bounds the timestamps of the samples Append scores against the wall clock:
// samples older than maxAge or more than maxAhead in the future are skipped and counted (reasons
// too_old and too_far_in_future); 0 leaves that side unbounded, as a new Store does.
//
// It is meant for live traffic, where the wall clock is a fair reference. A sample far in the
// future would otherwise end its series: every later, correct sample would be out of order until
// the clock caught up. A sample decades old comes from a sender sending seconds instead of
// milliseconds, whose series would be learned on a clock running a thousand times too fast.
// History replayed on purpose (backfill, backtests) does not go through Append's window.
func (s *Store) SetSampleWindow(maxAge, maxAhead time.Duration) {
	s.maxAge.Store(max(maxAge.Milliseconds(), 0))
	s.maxAhead.Store(max(maxAhead.Milliseconds(), 0))
}

// SeriesLimitSkips returns how many samples of new series were not tracked so far because the
// series limit was reached; the server logs its growth at a bounded rate.
func (s *Store) SeriesLimitSkips() uint64 { return s.limitSkips.Load() }

// inWindow reports whether every sample is within the Append's window, the usual case.
func (st *appendStats) inWindow(samples []batch.Sample) bool {
	for i := range samples {
		if t := samples[i].T; t < st.minT || t > st.maxT {
			return false
		}
	}
	return true
}

// keepInWindow returns the samples within the window, in scratch space valid until the next
// call, and counts the others.
func (st *appendStats) keepInWindow(samples []batch.Sample) []batch.Sample {
	st.scratch = st.scratch[:0]
	for _, smp := range samples {
		switch {
		case smp.T < st.minT:
			st.tooOld++
		case smp.T > st.maxT:
			st.tooNew++
		default:
			st.scratch = append(st.scratch, smp)
		}
	}
	return st.scratch
}
