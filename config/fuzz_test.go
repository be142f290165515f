package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzLoad feeds arbitrary files to Load, as a reload does with whatever an operator or a broken
// deployment put on disk: Load must return a configuration or an error, never panic, and what it
// accepts must survive its own round trip.
func FuzzLoad(f *testing.F) {
	f.Add(DefaultYAML)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load(data)
		if err != nil {
			require.Nil(t, c)
			return
		}
		require.NotEmpty(t, c.Rules)
		for i := range c.Rules {
			require.NoError(t, c.Rules[i].Settings.Validate())
		}
		c.Match(nil)
		again, err := Load([]byte(c.String()))
		require.NoError(t, err, "%s", c)
		require.Equal(t, len(c.Rules), len(again.Rules))
		for i := range c.Rules {
			require.Equal(t, c.Rules[i].Fingerprint(), again.Rules[i].Fingerprint())
		}
	})
}
