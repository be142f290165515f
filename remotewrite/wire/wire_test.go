package wire

import (
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// TestAppendV1Label: a series' labels written with AppendV1Label are what Prometheus's own
// protobuf code writes, for lengths that need one and two bytes of varint.
func TestAppendV1Label(t *testing.T) {
	for _, n := range []int{1, 127, 128, 300} {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: strings.Repeat("j", n)}}}
		want, err := ts.Marshal()
		require.NoError(t, err)
		var got []byte
		for _, l := range ts.Labels {
			got = AppendV1Label(got, l.Name, l.Value)
		}
		require.Equal(t, want, got, "value of %d bytes", n)
	}
}

// TestSymbols: a table starts with the empty string, gives one reference per string, and
// appends itself as a request's symbols that Prometheus's code reads back; a reset forgets
// the previous request's strings.
func TestSymbols(t *testing.T) {
	var s Symbols
	for round := range 2 {
		s.Reset()
		a, b := s.Ref("a"), s.Ref("b")
		require.Equal(t, a, s.Ref("a"))
		require.Equal(t, [2]uint32{1, 2}, [2]uint32{a, b}, "round %d", round)
		var req writev2.Request
		require.NoError(t, req.Unmarshal(s.Append(nil)))
		require.Equal(t, []string{"", "a", "b"}, req.Symbols)
		s.Release()
	}
}

// TestSnappy: what Encode returns decompresses to its input, buffer reused or grown.
func TestSnappy(t *testing.T) {
	var z Snappy
	for _, n := range []int{10, 100_000, 10} {
		in := []byte(strings.Repeat("remote write ", n))
		out, err := snappy.Decode(nil, z.Encode(in))
		require.NoError(t, err)
		require.Equal(t, in, out)
	}
}
