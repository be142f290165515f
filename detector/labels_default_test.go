//go:build !slicelabels && !dedupelabels

package detector

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStringLabelsByDefault: the default build of Prometheus's labels package keeps a series'
// labels as one string in the encoding the store compares and hashes, which the store's fast
// paths (no encoding per comparison, /scores copying labels from it) depend on.
func TestStringLabelsByDefault(t *testing.T) {
	require.True(t, stringLabels, "this build's labels.Labels is not the stringlabels one")
}
