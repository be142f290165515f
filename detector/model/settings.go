package model

import (
	"fmt"
	"time"
)

// Seasonality says which seasons a model may use. Auto lets each series find out which of them
// are really there; the others force a choice the operator already knows.
type Seasonality uint8

// Seasonality values, in the spelling of the configuration file.
const (
	SeasonAuto Seasonality = iota
	SeasonNone
	SeasonDaily
	SeasonWeekly
	SeasonDailyWeekly
)

var seasonalityNames = [...]string{"auto", "none", "daily", "weekly", "daily+weekly"}

// String returns the configuration spelling.
func (s Seasonality) String() string {
	if int(s) < len(seasonalityNames) {
		return seasonalityNames[s]
	}
	return fmt.Sprintf("Seasonality(%d)", s)
}

// ParseSeasonality reads the configuration spelling.
func ParseSeasonality(v string) (Seasonality, error) {
	for i, n := range seasonalityNames {
		if n == v {
			return Seasonality(i), nil
		}
	}
	return 0, fmt.Errorf("unknown seasonality %q (want auto, none, daily, weekly or daily+weekly)", v)
}

// Direction says which deviations count: a latency that drops is rarely a page.
type Direction uint8

// Direction values, in the spelling of the configuration file.
const (
	DirectionBoth Direction = iota
	DirectionUp
	DirectionDown
)

var directionNames = [...]string{"both", "up", "down"}

// String returns the configuration spelling.
func (d Direction) String() string {
	if int(d) < len(directionNames) {
		return directionNames[d]
	}
	return fmt.Sprintf("Direction(%d)", d)
}

// ParseDirection reads the configuration spelling.
func ParseDirection(v string) (Direction, error) {
	for i, n := range directionNames {
		if n == v {
			return Direction(i), nil
		}
	}
	return 0, fmt.Errorf("unknown direction %q (want both, up or down)", v)
}

// Settings are the per-rule knobs of the model. The zero value is not usable; start from
// DefaultSettings.
type Settings struct {
	// Seasonality chooses the seasons the model may use.
	Seasonality Seasonality
	// Sensitivity scales the normal band inversely: 2 halves its width, 0.5 doubles it.
	Sensitivity float64
	// Direction says which side of the band counts.
	Direction Direction
	// MinAbsDeviation is the smallest half-width of the band in the series' own unit, so that a
	// nearly constant series does not alert on noise.
	MinAbsDeviation float64
	// MinRelDeviation is the smallest half-width as a fraction of |expected|.
	MinRelDeviation float64
	// LearningPeriod is how much sample time a series must cover before its scores are trusted.
	LearningPeriod time.Duration
}

// DefaultSettings are what a rule gets for every field it leaves out.
func DefaultSettings() Settings {
	return Settings{
		Seasonality:     SeasonAuto,
		Sensitivity:     1,
		Direction:       DirectionBoth,
		MinAbsDeviation: 0,
		MinRelDeviation: 0,
		LearningPeriod:  24 * time.Hour,
	}
}

// Validate reports the first setting that cannot work.
func (s Settings) Validate() error {
	switch {
	case s.Seasonality > SeasonDailyWeekly:
		return fmt.Errorf("invalid seasonality %d", s.Seasonality)
	case s.Direction > DirectionDown:
		return fmt.Errorf("invalid direction %d", s.Direction)
	case !(s.Sensitivity > 0) || s.Sensitivity > 1e6:
		return fmt.Errorf("sensitivity must be positive, got %g", s.Sensitivity)
	case s.MinAbsDeviation < 0 || s.MinAbsDeviation != s.MinAbsDeviation:
		return fmt.Errorf("min_abs_deviation must be >= 0, got %g", s.MinAbsDeviation)
	case s.MinRelDeviation < 0 || s.MinRelDeviation != s.MinRelDeviation:
		return fmt.Errorf("min_rel_deviation must be >= 0, got %g", s.MinRelDeviation)
	case s.LearningPeriod < 0:
		return fmt.Errorf("learning_period must be >= 0, got %s", s.LearningPeriod)
	}
	return nil
}
