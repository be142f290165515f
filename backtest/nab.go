package backtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
)

// Profile is a NAB application profile: what a timely detection, a false alarm and a miss are
// worth. Different teams weigh pages against misses differently, so NAB scores each profile.
type Profile struct {
	// Name is NAB's name for the profile.
	Name string
	// TP is A_TP, the worth of a detection at the very start of a window.
	TP float64
	// FP is A_FP, the cost of a detection far from any window.
	FP float64
	// FN is A_FN, the cost of a window without a detection.
	FN float64
}

// NAB's three profiles.
var (
	Standard    = Profile{Name: "standard", TP: 1, FP: 0.11, FN: 1}
	RewardLowFP = Profile{Name: "reward_low_FP_rate", TP: 1, FP: 0.22, FN: 1}
	RewardLowFN = Profile{Name: "reward_low_FN_rate", TP: 1, FP: 0.11, FN: 2}
)

// Profiles lists NAB's profiles in the order NAB reports them.
func Profiles() []Profile { return []Profile{Standard, RewardLowFP, RewardLowFN} }

// Window is a labelled anomaly: the span, inclusive at both ends, in which a detection is a true
// positive. Times are milliseconds since the epoch.
type Window struct {
	Start, End int64
}

// ReadWindows reads NAB's combined_windows.json: for each "category/file.csv", the list of its
// windows as [start, end] timestamp pairs; an empty list for a file without anomalies.
func ReadWindows(r io.Reader) (map[string][]Window, error) {
	var raw map[string][][]string
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("windows: %w", err)
	}
	out := make(map[string][]Window, len(raw))
	for key, pairs := range raw {
		ws := make([]Window, 0, len(pairs))
		for _, p := range pairs {
			if len(p) != 2 {
				return nil, fmt.Errorf("windows of %s: want [start, end], got %q", key, p)
			}
			start, err := ParseTimestamp(p[0])
			if err != nil {
				return nil, fmt.Errorf("windows of %s: %w", key, err)
			}
			end, err := ParseTimestamp(p[1])
			if err != nil {
				return nil, fmt.Errorf("windows of %s: %w", key, err)
			}
			if end < start {
				return nil, fmt.Errorf("windows of %s: window %q ends before it starts", key, p)
			}
			ws = append(ws, Window{Start: start, End: end})
		}
		out[key] = ws
	}
	return out, nil
}

// Probation is the number of leading rows NAB ignores in a file of n rows: every detector needs
// time to learn, and none is judged on it.
func Probation(n int) int { return min(n*15/100, 750) }

// sigmoid is NAB's scaled sigmoid: near 1 far before a window's end, -1 far after it.
func sigmoid(y float64) float64 {
	if y > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*y)) - 1
}

// row is one row that can be a detection: past probation and with a score.
type row struct {
	score float64
	// u is the worth of a detection at this row before the profile's weights: in a window,
	// S(y)/S(-1) (1 at its first row), to be multiplied by A_TP; outside, S(y) or -1, to be
	// multiplied by A_FP.
	u float64
	// window is the index of the row's window, or -1 outside every window.
	window int32
}

// Labelled is the scorer's view of one file: its rows past probation, each with its score and what
// a detection there is worth, and how many windows count.
type Labelled struct {
	rows    []row
	windows int
	// Rows is the number of rows in the file, probation included.
	Rows int
}

// CountedWindows is the number of windows that count: those with at least one row past
// probation. A window that ends within probation is no test of the detector.
func (l *Labelled) CountedWindows() int { return l.windows }

// Label prepares a file for scoring. times are the row timestamps in file order, scores the
// detector's score per row: NaN where no detection is possible (a row the detector skipped).
// A window starts at the first row at or after its start, and its last row is the first row at
// its end (the last row before it, when no row is at its end), as NAB finds them.
func Label(times []int64, scores []float64, windows []Window) (*Labelled, error) {
	if len(times) != len(scores) {
		return nil, fmt.Errorf("%d timestamps but %d scores", len(times), len(scores))
	}
	ws := slices.SortedFunc(slices.Values(windows), func(a, b Window) int { return cmp.Compare(a.Start, b.Start) })
	last := make([]int, len(ws)) // b_k, the window's last row
	for k, w := range ws {
		if k > 0 && w.Start <= ws[k-1].End {
			return nil, fmt.Errorf("windows overlap at %d", w.Start)
		}
		last[k] = -1
		for i, t := range times {
			if t == w.End {
				last[k] = i
				break
			}
			if t >= w.Start && t < w.End {
				last[k] = i
			}
		}
		if last[k] < 0 {
			return nil, fmt.Errorf("window %d..%d (ms) holds no row", w.Start, w.End)
		}
	}

	l := &Labelled{Rows: len(times)}
	probation := Probation(len(times))
	maxTP := sigmoid(-1)
	counted := make([]int32, len(ws)) // dense index + 1 of each window that counts
	cur, next := -1, 0
	prevEnd, prevWidth := -1, 0
	width := 0
	for i, t := range times {
		if cur >= 0 && t > ws[cur].End {
			prevEnd, prevWidth, cur = i-1, width, -1
		}
		if cur < 0 && next < len(ws) && t >= ws[next].Start {
			cur, next = next, next+1
			width = max(last[cur]-i+1, 1)
		}
		r := row{score: scores[i], window: -1}
		switch {
		case cur >= 0:
			r.u = sigmoid(-float64(last[cur]-i+1)/float64(width)) / maxTP
		case prevEnd < 0:
			r.u = -1
		default:
			r.u = sigmoid(math.Abs(float64(prevEnd-i)) / float64(prevWidth-1))
		}
		if i < probation {
			continue
		}
		if cur >= 0 {
			if counted[cur] == 0 {
				l.windows++
				counted[cur] = int32(l.windows)
			}
			r.window = counted[cur] - 1
		}
		if !math.IsNaN(r.score) {
			l.rows = append(l.rows, r)
		}
	}
	return l, nil
}

// Tally is the outcome of one threshold on some files.
type Tally struct {
	// Score is NAB's raw score, the sum of the worth of every detection and miss.
	Score float64
	// Windows is the number of windows that count; Detected how many of them have a detection.
	Windows, Detected int
	// FPRows is the number of detections outside every window.
	FPRows int
}

// Add sums tallies, for categories and totals.
func (t Tally) Add(o Tally) Tally {
	return Tally{Score: t.Score + o.Score, Windows: t.Windows + o.Windows, Detected: t.Detected + o.Detected, FPRows: t.FPRows + o.FPRows}
}

// Normalised puts the score on NAB's scale, where never detecting anything is 0 and detecting every
// window at its first row with no false positive is 100. It is NaN without windows, where the
// scale has no width.
func (t Tally) Normalised(p Profile) float64 {
	if t.Windows == 0 {
		return math.NaN()
	}
	k := float64(t.Windows)
	null := -p.FN * k
	return 100 * (t.Score - null) / (p.TP*k - null)
}

// At scores the file with detections at every row whose score is at least threshold.
func (l *Labelled) At(p Profile, threshold float64) Tally {
	t := Tally{Windows: l.windows}
	best := make([]float64, l.windows)
	hit := make([]bool, l.windows)
	for _, r := range l.rows {
		if r.score < threshold {
			continue
		}
		if r.window < 0 {
			t.FPRows++
			t.Score += p.FP * r.u
		} else if !hit[r.window] || r.u > best[r.window] {
			if !hit[r.window] {
				t.Detected++
			}
			hit[r.window], best[r.window] = true, r.u
		}
	}
	for w := range best {
		if hit[w] {
			t.Score += p.TP * best[w]
		} else {
			t.Score -= p.FN
		}
	}
	return t
}

// Sweep holds the rows of a whole corpus ordered by score, to choose one threshold for all files
// as NAB does: an operator sets one alert threshold, not one per series.
type Sweep struct {
	rows    []row // by descending score; window indices unique across the corpus
	windows int
}

// NewSweep collects the files' rows. Sorting them once lets each profile's best threshold be
// found in one pass, whatever the number of distinct scores.
func NewSweep(files []*Labelled) *Sweep {
	s := &Sweep{}
	n := 0
	for _, f := range files {
		n += len(f.rows)
	}
	s.rows = make([]row, 0, n)
	for _, f := range files {
		for _, r := range f.rows {
			if r.window >= 0 {
				r.window += int32(s.windows)
			}
			s.rows = append(s.rows, r)
		}
		s.windows += f.windows
	}
	slices.SortFunc(s.rows, func(a, b row) int { return cmp.Compare(b.score, a.score) })
	return s
}

// Choice is the best threshold of a profile and what it achieves.
type Choice struct {
	Profile
	// Threshold is the lowest score that is a detection; +Inf when detecting nothing is best.
	Threshold float64
	Tally
}

// Best finds the threshold that maximises the corpus score among every distinct score and "no
// detections". Ties go to the higher threshold, which pages less, as in NAB.
func (s *Sweep) Best(p Profile) Choice {
	cur := Tally{Score: -p.FN * float64(s.windows), Windows: s.windows}
	best := Choice{Profile: p, Threshold: math.Inf(1), Tally: cur}
	top := make([]float64, s.windows)
	hit := make([]bool, s.windows)
	for i := 0; i < len(s.rows); {
		t := s.rows[i].score
		for ; i < len(s.rows) && s.rows[i].score == t; i++ {
			r := s.rows[i]
			switch w := r.window; {
			case w < 0:
				cur.FPRows++
				cur.Score += p.FP * r.u
			case !hit[w]:
				hit[w], top[w] = true, r.u
				cur.Detected++
				cur.Score += p.FN + p.TP*r.u
			case r.u > top[w]:
				cur.Score += p.TP * (r.u - top[w])
				top[w] = r.u
			}
		}
		if cur.Score > best.Score {
			best.Threshold, best.Tally = t, cur
		}
	}
	return best
}
