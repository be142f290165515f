package model

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFingerprint(t *testing.T) {
	// Every field of Settings must be part of the fingerprint: when this fails, add the new field
	// to Fingerprint and bump fingerprintVersion.
	require.Equal(t, 6, reflect.TypeFor[Settings]().NumField())

	base := DefaultSettings()
	// Pinned: the fingerprint is kept in checkpoints and must not change between releases
	// unless fingerprintVersion does.
	require.Equal(t, uint64(0x1f8c96dc02bf65c3), base.Fingerprint())

	seen := map[uint64]string{base.Fingerprint(): "default"}
	for name, change := range map[string]func(*Settings){
		"seasonality":       func(s *Settings) { s.Seasonality = SeasonDaily },
		"sensitivity":       func(s *Settings) { s.Sensitivity = 2 },
		"direction":         func(s *Settings) { s.Direction = DirectionUp },
		"min_abs_deviation": func(s *Settings) { s.MinAbsDeviation = 1 },
		"min_rel_deviation": func(s *Settings) { s.MinRelDeviation = 1 },
		"learning_period":   func(s *Settings) { s.LearningPeriod = time.Hour },
	} {
		s := base
		change(&s)
		fp := s.Fingerprint()
		require.NotContains(t, seen, fp, "%s collides with %s", name, seen[fp])
		seen[fp] = name
	}

	negZero := base
	negZero.MinAbsDeviation = math.Copysign(0, -1)
	require.Equal(t, base.Fingerprint(), negZero.Fingerprint())
}
