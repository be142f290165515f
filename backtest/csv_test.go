package backtest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

func TestParseTimestamp(t *testing.T) {
	const apr1 = int64(1396310400000) // 2014-04-01T00:00:00Z
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "2014-04-01 00:00:00", want: apr1},
		{in: "2014-04-01 00:05:00.000000", want: apr1 + 300000},
		{in: "2014-04-01 00:00:00.1234", want: apr1 + 123},
		{in: "2014-04-01T00:00:00Z", want: apr1},
		{in: "2014-04-01T02:00:00+02:00", want: apr1},
		{in: "2014-04-01T00:00:00.5Z", want: apr1 + 500},
		{in: "1396310400", want: apr1},
		{in: "1396310400.5", want: apr1 + 500},
		{in: "1396310400.123", want: apr1 + 123},
		{in: "1396310400.1235", want: apr1 + 124},
		{in: "1396310400.", want: apr1},
		{in: "-1.5", want: -1500},
		{in: ".25", want: 250},
		{in: "0", want: 0},
		{in: "", err: true},
		{in: "yesterday", err: true},
		{in: "2014-04-01", err: true},
		{in: "2014-04-01 25:00:00", err: true},
		{in: "1396310400.1x", err: true},
		{in: "1e9", err: true},
		{in: "--1", err: true},
		{in: ".", err: true},
		{in: "99999999999999999999", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTimestamp(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func readAll(in string) ([]Row, error) {
	r := NewReader(strings.NewReader(in))
	var rows []Row
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
	}
}

func TestReader(t *testing.T) {
	const apr1 = int64(1396310400000)
	for _, tc := range []struct {
		name string
		in   string
		want []Row
		err  string
	}{
		{
			name: "NAB header and timestamps",
			in:   "timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,2\n",
			want: []Row{
				{Line: 2, T: apr1, V: 1.5, Timestamp: "2014-04-01 00:00:00", Value: "1.5"},
				{Line: 3, T: apr1 + 300000, V: 2, Timestamp: "2014-04-01 00:05:00", Value: "2"},
			},
		},
		{
			name: "no header, Unix seconds, CRLF",
			in:   "1396310400,1\r\n1396310460.5,2\r\n",
			want: []Row{
				{Line: 1, T: apr1, V: 1, Timestamp: "1396310400", Value: "1"},
				{Line: 2, T: apr1 + 60500, V: 2, Timestamp: "1396310460.5", Value: "2"},
			},
		},
		{
			name: "RFC 3339, columns found by name, blank lines and comments",
			in:   "# exported\nvalue,timestamp\n\n3,2014-04-01T00:00:00Z\n",
			want: []Row{{Line: 4, T: apr1, V: 3, Timestamp: "2014-04-01T00:00:00Z", Value: "3"}},
		},
		{
			name: "other header names for two columns",
			in:   "time,y\n1396310400,7\n",
			want: []Row{{Line: 2, T: apr1, V: 7, Timestamp: "1396310400", Value: "7"}},
		},
		{
			name: "duplicates are passed on, for the detector to skip",
			in:   "timestamp,value\n1396310400,1\n1396310400,2\n",
			want: []Row{
				{Line: 2, T: apr1, V: 1, Timestamp: "1396310400", Value: "1"},
				{Line: 3, T: apr1, V: 2, Timestamp: "1396310400", Value: "2"},
			},
		},
		{
			name: "header only",
			in:   "timestamp,value\n",
		},
		{
			name: "empty input",
			in:   "",
		},
		{
			name: "bad timestamp names its line",
			in:   "timestamp,value\n1396310400,1\nnoon,2\n",
			err:  `line 3: timestamp "noon"`,
		},
		{
			name: "bad value names its line",
			in:   "timestamp,value\n1396310400,1\n1396310460,1\n1396310520,lots\n",
			err:  `line 4: value "lots" is not a number`,
		},
		{
			name: "missing field names its line",
			in:   "timestamp,value\n1396310400,1\n1396310460\n",
			err:  "line 3: wrong number of fields",
		},
		{
			name: "one column",
			in:   "timestamp\n1396310400\n",
			err:  "line 1: want at least two columns",
		},
		{
			name: "header without the value column",
			in:   "timestamp,a,b\n1396310400,1,2\n",
			err:  `line 1: header "timestamp,a,b" has no column "value"`,
		},
		{
			name: "bad quoting names its line",
			in:   "timestamp,value\n\"1396310400,1\n",
			err:  "line 2",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestReaderEmptyAndNonFiniteValues(t *testing.T) {
	got, err := readAll("timestamp,value\n1,\n2,NaN\n3,+Inf\n")
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.True(t, math.IsNaN(got[0].V))
	require.True(t, math.IsNaN(got[1].V))
	require.True(t, math.IsInf(got[2].V, 1))
}

func TestColumnReader(t *testing.T) {
	r := NewColumnReader(strings.NewReader("timestamp,value,anomaly_score\n1,5,0.25\n"), "anomaly_score")
	row, err := r.Read()
	require.NoError(t, err)
	require.Equal(t, 0.25, row.V)
	_, err = NewColumnReader(strings.NewReader("1,5,0.25\n"), "anomaly_score").Read()
	require.ErrorContains(t, err, "no header row")
}

func TestReplay(t *testing.T) {
	settings := model.DefaultSettings()
	in := "timestamp,value\n" +
		"2014-04-01 00:00:00,1\n" +
		"2014-04-01 00:05:00,2\n" +
		"2014-04-01 00:05:00,3\n" + // duplicate
		"2014-04-01 00:10:00,NaN\n" +
		"2014-04-01 00:04:00,4\n" + // out of order
		"2014-04-01 00:15:00,5\n"
	for _, tc := range []struct {
		name    string
		counter bool
		scored  []bool
		skipped map[detector.Outcome]int
	}{
		{
			name:    "gauge",
			scored:  []bool{true, true, false, false, false, true},
			skipped: map[detector.Outcome]int{detector.SkipDuplicate: 1, detector.SkipNonFinite: 1, detector.SkipOutOfOrder: 1},
		},
		{
			name:    "counter",
			counter: true,
			scored:  []bool{false, true, false, false, false, true},
			skipped: map[detector.Outcome]int{detector.SkipCounterFirst: 1, detector.SkipDuplicate: 1, detector.SkipNonFinite: 1, detector.SkipOutOfOrder: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			sum, err := Replay(strings.NewReader(in), &out, tc.counter, &settings)
			require.NoError(t, err)
			recs, err := csv.NewReader(&out).ReadAll()
			require.NoError(t, err)
			require.Equal(t, Header, recs[0])
			inRecs, err := csv.NewReader(strings.NewReader(in)).ReadAll()
			require.NoError(t, err)
			require.Len(t, recs, len(inRecs), "one output row per input row")
			scored := 0
			for i, rec := range recs[1:] {
				require.Equal(t, inRecs[i+1], rec[:2], "input echoed")
				for _, f := range rec[2:] {
					require.Equal(t, tc.scored[i], f != "", "row %d field %q", i, f)
				}
				if tc.scored[i] {
					scored++
				}
			}
			require.Equal(t, 6, sum.Rows)
			require.Equal(t, scored, sum.Outcomes[detector.Scored])
			for o, n := range tc.skipped {
				require.Equal(t, n, sum.Outcomes[o], o.String())
			}
		})
	}
}

func TestReplayStopsAtBadRow(t *testing.T) {
	settings := model.DefaultSettings()
	_, err := Replay(strings.NewReader("timestamp,value\n1,1\nx,2\n"), io.Discard, false, &settings)
	require.ErrorContains(t, err, "line 3")
}

func TestFormatFloat(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 1.5: "1.5", -123456789: "-123456789", 1e-7: "1e-07", 1e22: "1e+22", 0.001: "0.001"} {
		require.Equal(t, want, FormatFloat(in))
	}
}
