package backtest

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// nabDir is the NAB subset shared beside the repository.
const nabDir = "../../shared/nab"

// columnScores reads the timestamps and one score column of a results file of another detector.
func columnScores(name, column string) ([]int64, []float64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := NewColumnReader(f, column)
	var times []int64
	var scores []float64
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return times, scores, nil
		}
		if err != nil {
			return nil, nil, err
		}
		times = append(times, row.T)
		scores = append(scores, row.V)
	}
}

// TestNumentaHTM checks the scorer against the published NAB scores of Numenta's HTM detector on
// this subset: a scorer that reproduces them to two decimals implements NAB's rules.
func TestNumentaHTM(t *testing.T) {
	if _, err := os.Stat(nabDir); err != nil {
		t.Skipf("NAB subset not found at %s: %v", nabDir, err)
	}
	wf, err := os.Open(filepath.Join(nabDir, "labels", "combined_windows.json"))
	require.NoError(t, err)
	defer wf.Close()
	windows, err := ReadWindows(wf)
	require.NoError(t, err)
	files, err := LoadCorpus(filepath.Join(nabDir, "data"), windows)
	require.NoError(t, err)
	require.Len(t, files, 41)

	ev, err := Evaluate(files, runtime.GOMAXPROCS(0), func(f CorpusFile) ([]int64, []float64, error) {
		return columnScores(filepath.Join(nabDir, "results", "numenta", f.Category, "numenta_"+filepath.Base(f.Path)), "anomaly_score")
	})
	require.NoError(t, err)

	want := map[string]float64{"standard": 68.58, "reward_low_FP_rate": 62.21, "reward_low_FN_rate": 72.77}
	require.Len(t, ev.Choices, 3)
	for _, c := range ev.Choices {
		t.Logf("%s: threshold %v score %.4f windows %d/%d fp_rows %d", c.Name, c.Threshold, c.Normalised(c.Profile), c.Detected, c.Windows, c.FPRows)
		require.Equal(t, 69, c.Windows)
		require.InDelta(t, want[c.Name], c.Normalised(c.Profile), 0.005, c.Name)
		// The per-file tallies at the chosen threshold add up to the sweep's.
		total := ev.Tally(c.Profile, c.Threshold, nil)
		require.InDelta(t, c.Score, total.Score, 1e-9)
		require.Equal(t, c.Detected, total.Detected)
		require.Equal(t, c.FPRows, total.FPRows)
	}
}
