package detector

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// TestEncodedLabelsAreLabelsData: the encoding Append writes for a request's labels is the one
// labels.Labels keeps, for short strings and for those whose length needs the long prefix (255
// and more), appended after bytes already in the buffer; in a stringlabels build it is byte for
// byte the string of labels.Labels, so a series is found by comparing the two. In the other
// builds (make test runs them too) labelsData and labelsFromData must still agree with it.
func TestEncodedLabelsAreLabelsData(t *testing.T) {
	for _, long := range []int{0, 254, 255, 256, 70_000} {
		ls := labels.FromStrings("__name__", "up", "instance", strings.Repeat("i", long), "job", "")
		prefix := []byte("prefix")
		enc := batch.AppendEncoded(prefix, toBatchLabels(ls))
		require.Equal(t, "prefix", string(enc[:6]))
		if stringLabels {
			require.Equal(t, *(*string)(unsafe.Pointer(&ls)), string(enc[6:]), "value of %d bytes", long)
		}
		require.Equal(t, labelsData(ls, nil), string(enc[6:]))
		require.True(t, labels.Equal(ls, labelsFromData(enc[6:], toBatchLabels(ls))))
	}
}
