package batch

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEncodedLabelsRoundTrip: what AppendEncoded writes, AppendDecoded, LabelsOf and MetricName
// read back, with short strings and strings long enough for the four-byte length.
func TestEncodedLabelsRoundTrip(t *testing.T) {
	for _, ls := range [][]Label{
		{{"__name__", "up"}},
		{{"__name__", "http_requests_total"}, {"job", "api"}, {"method", "GET"}},
		{{"Zone", "a"}, {"__name__", strings.Repeat("n", 300)}, {strings.Repeat("k", 254), strings.Repeat("v", 255)}},
		{{"job", "no-name"}},
	} {
		data := AppendEncoded([]byte("prefix"), ls)[len("prefix"):]
		require.Equal(t, ls, AppendDecoded(nil, data))
		lazy := Series{LabelsData: data}
		require.Equal(t, ls, lazy.LabelsOf(nil))
		eager := Series{Labels: ls, LabelsData: data}
		require.Equal(t, ls, eager.LabelsOf(nil))
		want := ""
		for _, l := range ls {
			if l.Name == "__name__" {
				want = l.Value
			}
		}
		require.Equal(t, want, lazy.MetricName())
		require.Equal(t, want, eager.MetricName())
	}
}
