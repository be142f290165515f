package backtest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// Point is one replayed row: the input and what the detector made of it.
type Point struct {
	Row
	// Outcome says whether the sample was scored or why it was skipped.
	Outcome detector.Outcome
	// Result is the detector's verdict; meaningful only when Outcome is detector.Scored.
	Result model.Result
	// Observed is what the model saw when scored: the value, or a counter's per-second rate, the
	// unit Expected, Lower and Upper are in.
	Observed float64
}

// Scored reports whether the detector scored the point. Skipped points (duplicates, NaN, the
// first sample of a counter) keep their row in every output, so outputs line up with inputs.
func (p Point) Scored() bool { return p.Outcome == detector.Scored }

// Replayer feeds the samples of one series to the detector in the order given, through the same
// detector.Stream the server uses, so that a backtest cannot disagree with live scoring.
type Replayer struct {
	stream   detector.Stream
	settings *model.Settings
}

// NewReplayer starts a series with an empty baseline. Counter selects rate scoring as for a
// Prometheus counter; settings are those of the configuration rule the series matches.
func NewReplayer(counter bool, settings *model.Settings) *Replayer {
	return &Replayer{stream: detector.Stream{Counter: counter}, settings: settings}
}

// Push scores one row against what the series has learned so far, then learns it.
func (r *Replayer) Push(row Row) Point {
	res, out := r.stream.Push(row.T, row.V, r.settings)
	p := Point{Row: row, Outcome: out, Result: res, Observed: math.NaN()}
	if out == detector.Scored {
		p.Observed = r.stream.Observed()
	}
	return p
}

// Header is the column row of a backtest's output.
var Header = []string{"timestamp", "value", "score", "expected", "lower", "upper", "learning"}

// Writer writes replayed points as CSV, one line per input row, with empty result fields for the
// rows the detector skipped.
type Writer struct {
	csv *csv.Writer
	rec []string
}

// NewWriter writes the header row.
func NewWriter(w io.Writer) (*Writer, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return nil, err
	}
	return &Writer{csv: cw, rec: make([]string, len(Header))}, nil
}

// ContinueWriter writes to an output whose header is already there, for an output written in
// parts, such as a range query fetched in chunks.
func ContinueWriter(w io.Writer) *Writer {
	return &Writer{csv: csv.NewWriter(w), rec: make([]string, len(Header))}
}

// Write buffers one point; Flush writes it out.
func (w *Writer) Write(p Point) error {
	w.rec[0], w.rec[1] = p.Timestamp, p.Value
	if p.Scored() {
		w.rec[2] = FormatFloat(p.Result.Score)
		w.rec[3] = FormatFloat(p.Result.Expected)
		w.rec[4] = FormatFloat(p.Result.Lower)
		w.rec[5] = FormatFloat(p.Result.Upper)
		w.rec[6] = strconv.FormatBool(p.Result.Learning)
	} else {
		clear(w.rec[2:])
	}
	return w.csv.Write(w.rec)
}

// Flush writes out what is buffered and reports any write error so far.
func (w *Writer) Flush() error {
	w.csv.Flush()
	return w.csv.Error()
}

// FormatFloat writes a number as plainly as it allows: positional notation for the magnitudes
// of metrics, exponents only for the very small or very large.
func FormatFloat(f float64) string {
	if a := math.Abs(f); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Summary counts what a replay did, for the operator's one-line report.
type Summary struct {
	// Rows is the number of input rows.
	Rows int
	// Outcomes counts the rows by what the detector made of them.
	Outcomes map[detector.Outcome]int
	// Learning counts the scored rows whose series was still learning.
	Learning int
	// Above1 counts the scored rows, learning or not, with a score above 1: outside the band.
	Above1 int
}

// Add counts one point.
func (s *Summary) Add(p Point) {
	if s.Outcomes == nil {
		s.Outcomes = make(map[detector.Outcome]int)
	}
	s.Rows++
	s.Outcomes[p.Outcome]++
	if p.Scored() {
		if p.Result.Learning {
			s.Learning++
		}
		if p.Result.Score > 1 {
			s.Above1++
		}
	}
}

// String reads like "4032 rows: 4031 scored (288 learning, 12 above 1), 1 duplicate".
func (s Summary) String() string {
	str := fmt.Sprintf("%d rows: %d scored (%d learning, %d above 1)", s.Rows, s.Outcomes[detector.Scored], s.Learning, s.Above1)
	for o := detector.Scored + 1; o.String() != "unknown"; o++ {
		if n := s.Outcomes[o]; n > 0 {
			str += fmt.Sprintf(", %d %s", n, o)
		}
	}
	return str
}

// Replay streams a timestamp,value CSV through a new series and writes one output row per input
// row, in input order. It stops at the first unreadable row, naming its line.
func Replay(in io.Reader, out io.Writer, counter bool, settings *model.Settings) (Summary, error) {
	var sum Summary
	r := NewReader(in)
	w, err := NewWriter(out)
	if err != nil {
		return sum, err
	}
	rep := NewReplayer(counter, settings)
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sum, err
		}
		p := rep.Push(row)
		sum.Add(p)
		if err := w.Write(p); err != nil {
			return sum, err
		}
	}
	return sum, w.Flush()
}
