package backtest

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzReader feeds arbitrary files to the CSV reader, as `anomalytool backtest` does with whatever
// an operator exported: it must return rows or errors, never panic, and whatever rows it returns
// must agree with their own fields. Reading goes on after an error, as a caller skipping bad
// lines would do, for a bounded number of reads. The seeds are in testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, scoreColumn bool) {
		r := NewReader(bytes.NewReader(data))
		if scoreColumn {
			r = NewColumnReader(bytes.NewReader(data), "anomaly_score")
		}
		lastLine := 0
		for range 1000 {
			row, err := r.Read()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				require.NotEmpty(t, err.Error())
				continue
			}
			require.Greater(t, row.Line, lastLine, "lines increase")
			lastLine = row.Line
			ts, err := ParseTimestamp(row.Timestamp)
			require.NoError(t, err)
			require.Equal(t, ts, row.T)
			if row.Value == "" {
				require.True(t, math.IsNaN(row.V))
			} else {
				v, err := strconv.ParseFloat(row.Value, 64)
				require.NoError(t, err)
				require.Equal(t, math.Float64bits(v), math.Float64bits(row.V))
			}
		}
	})
}

// FuzzParseTimestamp: every form ParseTimestamp accepts is a millisecond timestamp that Unix
// seconds written back in full parse to again.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2014-04-01 00:00:00", "2014-04-01T00:00:00.123Z", "1396310400", "1396310460.5", "-1.0005", ".5", "9223372036854775"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseTimestamp(s)
		if err != nil {
			return
		}
		back := strconv.FormatInt(ms/1000, 10) + "." + strconv.FormatInt(1000+abs(ms%1000), 10)[1:]
		if ms < 0 && ms/1000 == 0 {
			back = "-" + back
		}
		again, err := ParseTimestamp(back)
		require.NoError(t, err, "%q -> %d -> %q", s, ms, back)
		require.Equal(t, ms, again, "%q -> %q", s, back)
	})
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestReaderAfterHeaderError is the first crasher FuzzReader found: a one-column header is an
// error, and a Read after it indexed the second column of the next row. It now returns the
// header's error again.
func TestReaderAfterHeaderError(t *testing.T) {
	for _, in := range []string{"timestamp\n1396310400\n", "a,b,c\n1,2,3\n"} {
		r := NewReader(bytes.NewReader([]byte(in)))
		_, err1 := r.Read()
		require.Error(t, err1)
		_, err2 := r.Read()
		require.Equal(t, err1, err2)
	}
	// A bad row after a good header is not sticky: the rows after it are read.
	r := NewReader(bytes.NewReader([]byte("timestamp,value\n1,2,3\n2,5\n")))
	_, err := r.Read()
	require.ErrorContains(t, err, "line 2: wrong number of fields")
	row, err := r.Read()
	require.NoError(t, err)
	require.Equal(t, 5.0, row.V)
}
