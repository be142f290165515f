package model

// Result is the verdict on one sample, computed from the baseline as it was before the sample.
type Result struct {
	// Score is 0 at the expected value, 1 at the edge of the band, above 1 outside it.
	Score float64
	// Expected is what the baseline expected at the sample's time.
	Expected float64
	// Lower and Upper bound the normal band.
	Lower, Upper float64
	// Learning is true while the baseline has not yet covered the learning period.
	Learning bool
}

// Model is a placeholder until the real model lands: it learns nothing and scores nothing.
type Model struct{}

// Observe scores the sample at t (milliseconds) with value v against the baseline, then learns it.
func (m *Model) Observe(t int64, v float64, s *Settings) Result { return Result{Learning: true} }
