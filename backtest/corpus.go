package backtest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"

	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// CorpusFile is one series of a labelled corpus in NAB's layout.
type CorpusFile struct {
	// Key is "category/file.csv", the file's key in the windows file.
	Key string
	// Category is the directory the file is in: NAB reports per category, as kinds of data
	// (artificial, cloud metrics, ad exchange, ...) behave differently.
	Category string
	// Path is where the file is read from.
	Path string
	// Windows are the file's labelled anomalies.
	Windows []Window
}

// LoadCorpus lists DIR/<category>/<file>.csv in a stable order and attaches each file's windows.
// A file missing from the windows is an error, since scoring it as anomaly-free would be a guess;
// windows of files not in DIR are ignored, so a subset of a corpus can be evaluated.
func LoadCorpus(dir string, windows map[string][]Window) ([]CorpusFile, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*", "*.csv"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no %s in %s", filepath.Join("<category>", "<file>.csv"), dir)
	}
	slices.Sort(paths)
	files := make([]CorpusFile, 0, len(paths))
	for _, p := range paths {
		cat := filepath.Base(filepath.Dir(p))
		key := path.Join(cat, filepath.Base(p))
		ws, ok := windows[key]
		if !ok {
			return nil, fmt.Errorf("%s has no entry in the windows (want [] for a file without anomalies)", key)
		}
		files = append(files, CorpusFile{Key: key, Category: cat, Path: p, Windows: ws})
	}
	return files, nil
}

// ScoreFunc produces the timestamps of a file's rows and a score per row, NaN where no detection
// is possible.
type ScoreFunc func(CorpusFile) (times []int64, scores []float64, err error)

// FileResult is one evaluated file.
type FileResult struct {
	CorpusFile
	*Labelled
}

// Evaluation is a scored corpus: each file labelled, and each profile's corpus-wide threshold.
type Evaluation struct {
	// Files are in the order of the corpus.
	Files []FileResult
	// Choices hold the best threshold of each of Profiles().
	Choices []Choice
}

// Evaluate scores every file with score, workers files at a time, and chooses each profile's
// threshold over the whole corpus.
func Evaluate(files []CorpusFile, workers int, score ScoreFunc) (*Evaluation, error) {
	ev := &Evaluation{Files: make([]FileResult, len(files))}
	errs := make([]error, len(files))
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for i := range work {
				f := files[i]
				times, scores, err := score(f)
				if err == nil {
					ev.Files[i].Labelled, err = Label(times, scores, f.Windows)
				}
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", f.Key, err)
				}
				ev.Files[i].CorpusFile = f
			}
		})
	}
	for i := range files {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	labelled := make([]*Labelled, len(ev.Files))
	for i, f := range ev.Files {
		labelled[i] = f.Labelled
	}
	sweep := NewSweep(labelled)
	for _, p := range Profiles() {
		ev.Choices = append(ev.Choices, sweep.Best(p))
	}
	return ev, nil
}

// Tally sums the files that keep reports true at one threshold.
func (ev *Evaluation) Tally(p Profile, threshold float64, keep func(FileResult) bool) Tally {
	var t Tally
	for _, f := range ev.Files {
		if keep == nil || keep(f) {
			t = t.Add(f.At(p, threshold))
		}
	}
	return t
}

// AlertScores replays a CSV through a new series of the detector and returns what an alert rule
// sees of each row: its score, or NaN where the detector skipped the row or the series was still
// learning, since a learning series pages no one.
func AlertScores(in io.Reader, counter bool, settings *model.Settings) (times []int64, scores []float64, err error) {
	r := NewReader(in)
	rep := NewReplayer(counter, settings)
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return times, scores, nil
		}
		if err != nil {
			return nil, nil, err
		}
		p := rep.Push(row)
		s := math.NaN()
		if p.Scored() && !p.Result.Learning {
			s = p.Result.Score
		}
		times = append(times, row.T)
		scores = append(scores, s)
	}
}

// AlertScoresFile is AlertScores on a file.
func AlertScoresFile(name string, counter bool, settings *model.Settings) ([]int64, []float64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return AlertScores(f, counter, settings)
}
