package backtest

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// tinyFile is 20 rows at t = 0..19 ms, so probation is 3 rows, with one window over rows 10..14.
func tinyFile(t *testing.T, detections ...int) *Labelled {
	t.Helper()
	times := make([]int64, 20)
	scores := make([]float64, 20)
	for i := range times {
		times[i] = int64(i)
	}
	for _, i := range detections {
		scores[i] = 1
	}
	l, err := Label(times, scores, []Window{{Start: 10, End: 14}})
	require.NoError(t, err)
	return l
}

func TestScorerTinyCases(t *testing.T) {
	s := sigmoid
	for _, tc := range []struct {
		name       string
		profile    Profile
		detections []int
		want       Tally
	}{
		{"nothing detected is a missed window", Standard, nil, Tally{Score: -1, Windows: 1}},
		{"a miss costs A_FN", RewardLowFN, nil, Tally{Score: -2, Windows: 1}},
		{"first row of the window is worth A_TP", Standard, []int{10}, Tally{Score: 1, Windows: 1, Detected: 1}},
		{"first row of the window is worth A_TP, any profile", RewardLowFP, []int{10}, Tally{Score: 1, Windows: 1, Detected: 1}},
		{"a later row is worth less", Standard, []int{14}, Tally{Score: s(-1.0/5) / s(-1), Windows: 1, Detected: 1}},
		{"only the earliest detection of a window counts", Standard, []int{12, 10, 13}, Tally{Score: 1, Windows: 1, Detected: 1}},
		{"FP before the first window costs A_FP", Standard, []int{5}, Tally{Score: -0.11 - 1, Windows: 1, FPRows: 1}},
		{"FP before the first window costs A_FP, any profile", RewardLowFP, []int{5}, Tally{Score: -0.22 - 1, Windows: 1, FPRows: 1}},
		{"FP after a window fades in", Standard, []int{17}, Tally{Score: 0.11*s(3.0/4) - 1, Windows: 1, FPRows: 1}},
		{"FP right after a window costs little", Standard, []int{10, 15}, Tally{Score: 1 + 0.11*s(1.0/4), Windows: 1, Detected: 1, FPRows: 1}},
		{"probation rows count for nothing", Standard, []int{0, 1, 2}, Tally{Score: -1, Windows: 1}},
		{"the first row after probation counts", Standard, []int{3}, Tally{Score: -0.11 - 1, Windows: 1, FPRows: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tinyFile(t, tc.detections...).At(tc.profile, 1)
			require.InDelta(t, tc.want.Score, got.Score, 1e-12)
			got.Score = tc.want.Score
			require.Equal(t, tc.want, got)
		})
	}
}

func TestScorerWindowsAndProbation(t *testing.T) {
	times := make([]int64, 40)
	for i := range times {
		times[i] = int64(i) * 1000
	}
	scores := make([]float64, 40)
	for _, tc := range []struct {
		name    string
		windows []Window
		want    int
		err     string
	}{
		{"window inside probation does not count", []Window{{Start: 0, End: 4000}}, 0, ""},
		{"window reaching past probation counts", []Window{{Start: 0, End: 6000}}, 1, ""},
		{"unsorted windows", []Window{{Start: 30000, End: 35000}, {Start: 10000, End: 15000}}, 2, ""},
		{"window between rows", []Window{{Start: 10500, End: 10600}}, 0, "holds no row"},
		{"overlapping windows", []Window{{Start: 10000, End: 15000}, {Start: 15000, End: 20000}}, 0, "overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Label(times, scores, tc.windows)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, 6, Probation(len(times)))
			require.Equal(t, tc.want, l.CountedWindows())
		})
	}
	require.Equal(t, 750, Probation(100000))
}

func TestScorerSkippedRowsNeverDetect(t *testing.T) {
	times := []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	scores := []float64{0, 0, 0, 0, math.NaN(), 0, 0, 0, 0, 0}
	l, err := Label(times, scores, []Window{{Start: 4, End: 6}})
	require.NoError(t, err)
	// The NaN row at the window's start is no detection even at threshold -Inf; the next row is.
	got := l.At(Standard, math.Inf(-1))
	require.Equal(t, 1, got.Detected)
	require.Less(t, got.Score, 1.0)
}

func TestSweep(t *testing.T) {
	mkw := func(windows []Window, scores map[int]float64) *Labelled {
		times := make([]int64, 20)
		s := make([]float64, 20)
		for i := range times {
			times[i] = int64(i)
		}
		for i, v := range scores {
			s[i] = v
		}
		l, err := Label(times, s, windows)
		require.NoError(t, err)
		return l
	}
	mk := func(scores map[int]float64) *Labelled { return mkw([]Window{{Start: 10, End: 14}}, scores) }
	noisy := mkw(nil, map[int]float64{3: 0.7, 4: 0.7, 5: 0.7, 6: 0.7, 7: 0.7, 8: 0.7, 9: 0.7, 10: 0.7, 11: 0.7, 12: 0.7})
	for _, tc := range []struct {
		name      string
		files     []*Labelled
		profile   Profile
		threshold float64
		want      Tally
	}{
		{
			name:      "no windows: detecting nothing is best",
			files:     []*Labelled{mkw(nil, nil)},
			profile:   Standard,
			threshold: math.Inf(1),
			want:      Tally{},
		},
		{
			name:      "window start scored highest",
			files:     []*Labelled{mk(map[int]float64{10: 0.9, 5: 0.5})},
			profile:   Standard,
			threshold: 0.9,
			want:      Tally{Score: 1, Windows: 1, Detected: 1},
		},
		{
			name:      "ties go to the higher threshold",
			files:     []*Labelled{mk(map[int]float64{10: 0.9, 12: 0.8})},
			profile:   Standard,
			threshold: 0.9,
			want:      Tally{Score: 1, Windows: 1, Detected: 1},
		},
		{
			name: "one threshold for the corpus",
			files: []*Labelled{
				mk(map[int]float64{10: 0.9, 5: 0.7}),
				mk(map[int]float64{10: 0.7}),
			},
			profile:   Standard,
			threshold: 0.7,
			want:      Tally{Score: 2 - 0.11, Windows: 2, Detected: 2, FPRows: 1},
		},
		{
			name:      "FPs in another file are worth a window",
			files:     []*Labelled{mk(map[int]float64{10: 0.9}), mk(map[int]float64{10: 0.7}), noisy},
			profile:   Standard,
			threshold: 0.7,
			want:      Tally{Score: 2 - 1.1, Windows: 2, Detected: 2, FPRows: 10},
		},
		{
			name:      "costlier FPs are not",
			files:     []*Labelled{mk(map[int]float64{10: 0.9}), mk(map[int]float64{10: 0.7}), noisy},
			profile:   RewardLowFP,
			threshold: 0.9,
			want:      Tally{Score: 0, Windows: 2, Detected: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewSweep(tc.files).Best(tc.profile)
			require.Equal(t, tc.threshold, got.Threshold)
			require.InDelta(t, tc.want.Score, got.Score, 1e-12)
			got.Score = tc.want.Score
			require.Equal(t, tc.want, got.Tally)
		})
	}
}

func TestNormalised(t *testing.T) {
	for _, tc := range []struct {
		tally Tally
		p     Profile
		want  float64
	}{
		{Tally{Score: 3, Windows: 3}, Standard, 100},
		{Tally{Score: -3, Windows: 3}, Standard, 0},
		{Tally{Score: -6, Windows: 3}, RewardLowFN, 0},
		{Tally{Score: 0, Windows: 3}, RewardLowFN, 100 * 6.0 / 9},
	} {
		require.InDelta(t, tc.want, tc.tally.Normalised(tc.p), 1e-12)
	}
	require.True(t, math.IsNaN(Tally{}.Normalised(Standard)))
}

func TestReadWindows(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string][]Window
		err      string
	}{
		{
			name: "NAB form",
			in:   `{"a/x.csv": [["2014-04-01 00:00:00.000000", "2014-04-01 00:00:01.000000"]], "a/y.csv": []}`,
			want: map[string][]Window{"a/x.csv": {{Start: 1396310400000, End: 1396310401000}}, "a/y.csv": {}},
		},
		{name: "not a pair", in: `{"a/x.csv": [["2014-04-01 00:00:00"]]}`, err: "want [start, end]"},
		{name: "bad time", in: `{"a/x.csv": [["yesterday", "today"]]}`, err: `"yesterday"`},
		{name: "backwards", in: `{"a/x.csv": [["2014-04-02 00:00:00", "2014-04-01 00:00:00"]]}`, err: "ends before"},
		{name: "not JSON", in: `[`, err: "windows:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadWindows(strings.NewReader(tc.in))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// BenchmarkSweep is the threshold choice on a corpus the size of the NAB subset (41 files,
// 190k rows, 69 windows), with as many distinct scores as rows.
func BenchmarkSweep(b *testing.B) {
	files := make([]*Labelled, 41)
	for f := range files {
		n := 4650
		times := make([]int64, n)
		scores := make([]float64, n)
		for i := range times {
			times[i] = int64(i) * 300000
			scores[i] = math.Abs(math.Sin(float64(f*n+i))) * 3
		}
		ws := []Window{{Start: times[n/2], End: times[n/2+200]}, {Start: times[n-600], End: times[n-400]}}
		if f%5 == 0 {
			ws = ws[:1]
		}
		l, err := Label(times, scores, ws)
		require.NoError(b, err)
		files[f] = l
	}
	b.ReportAllocs()
	for b.Loop() {
		s := NewSweep(files)
		for _, p := range Profiles() {
			s.Best(p)
		}
	}
}
