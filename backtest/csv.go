package backtest

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Row is one data row of a timestamp,value CSV.
type Row struct {
	// Line is the 1-based line of the input the row was read from, for messages.
	Line int
	// T is the timestamp in milliseconds since the epoch, the unit of the detector.
	T int64
	// V is the value; NaN for an empty field, so that a gap reaches the detector as one.
	V float64
	// Timestamp and Value are the fields as written. The output echoes them, so that it joins
	// with the input exactly, whatever format or precision the input used.
	Timestamp, Value string
}

// Reader streams the rows of a CSV of timestamps and values, as written by NAB, spreadsheets or
// a Prometheus export. It holds one row at a time, so that a backtest of years of history runs in
// constant memory.
type Reader struct {
	csv    *csv.Reader
	column string
	tcol   int
	vcol   int
	// started is true once the first record has been looked at for a header.
	started bool
	// headerErr is why the header could not be used; every Read after it returns it again.
	headerErr error
}

// NewReader reads the "value" column. A header row is optional: without one, the first column is
// the timestamp and the second the value.
func NewReader(r io.Reader) *Reader { return NewColumnReader(r, "value") }

// NewColumnReader reads its values from the named header column instead of "value", so that a
// file holding several columns, such as another detector's scores, can be read as is.
func NewColumnReader(r io.Reader, column string) *Reader {
	c := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
	c.ReuseRecord = true
	c.TrimLeadingSpace = true
	c.Comment = '#'
	return &Reader{csv: c, column: column, tcol: 0, vcol: 1}
}

// Read returns the next row, or io.EOF after the last one. Errors name the input line.
func (r *Reader) Read() (Row, error) {
	if r.headerErr != nil {
		return Row{}, r.headerErr
	}
	rec, line, err := r.next()
	if err != nil {
		return Row{}, err
	}
	if !r.started {
		r.started = true
		if rec, line, err = r.header(rec, line); err != nil {
			return Row{}, err
		}
	}
	if len(rec) <= max(r.tcol, r.vcol) {
		return Row{}, fmt.Errorf("line %d: want at least %d columns", line, max(r.tcol, r.vcol)+1)
	}
	ts, vs := strings.TrimSpace(rec[r.tcol]), strings.TrimSpace(rec[r.vcol])
	t, err := ParseTimestamp(ts)
	if err != nil {
		return Row{}, fmt.Errorf("line %d: %w", line, err)
	}
	v := math.NaN()
	if vs != "" {
		if v, err = strconv.ParseFloat(vs, 64); err != nil {
			return Row{}, fmt.Errorf("line %d: value %q is not a number", line, vs)
		}
	}
	return Row{Line: line, T: t, V: v, Timestamp: ts, Value: vs}, nil
}

func (r *Reader) next() ([]string, int, error) {
	rec, err := r.csv.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, 0, fmt.Errorf("line %d: %w", pe.Line, pe.Err)
		}
		return nil, 0, err
	}
	line, _ := r.csv.FieldPos(0)
	return rec, line, nil
}

// header finds the columns from a header row, or, when the first record is data, keeps the
// default columns and returns the record to be read as data.
func (r *Reader) header(rec []string, line int) ([]string, int, error) {
	if len(rec) < 2 {
		r.headerErr = fmt.Errorf("line %d: want at least two columns, timestamp and %s", line, r.column)
		return nil, 0, r.headerErr
	}
	if _, err := ParseTimestamp(strings.TrimSpace(rec[0])); err == nil {
		if r.column != "value" {
			r.headerErr = fmt.Errorf("line %d: no header row to find column %q in", line, r.column)
			return nil, 0, r.headerErr
		}
		return rec, line, nil
	}
	r.tcol, r.vcol = -1, -1
	for i, name := range rec {
		switch name = strings.TrimSpace(name); {
		case strings.EqualFold(name, "timestamp") && r.tcol < 0:
			r.tcol = i
		case strings.EqualFold(name, r.column) && r.vcol < 0:
			r.vcol = i
		}
	}
	if r.tcol < 0 {
		r.tcol = 0 // A header such as "time,value" or "ds,y": the timestamp comes first.
	}
	if r.vcol < 0 {
		if r.column != "value" || len(rec) != 2 {
			r.headerErr = fmt.Errorf("line %d: header %q has no column %q", line, strings.Join(rec, ","), r.column)
			return nil, 0, r.headerErr
		}
		r.vcol = 1 - r.tcol
	}
	return r.next()
}

// The timestamp layout of NAB and of most spreadsheet exports: UTC, no zone. Parsing also takes
// fractional seconds after it.
const plainLayout = "2006-01-02 15:04:05"

// ParseTimestamp reads "2006-01-02 15:04:05" (UTC, optionally with fractional seconds), RFC 3339,
// or Unix seconds (optionally fractional), the forms exports of time series come in, and returns
// milliseconds since the epoch, rounded to the nearest millisecond as Prometheus does.
func ParseTimestamp(s string) (int64, error) {
	if len(s) >= 10 && s[4] == '-' {
		for _, layout := range [...]string{plainLayout, time.RFC3339Nano} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.Add(500 * time.Microsecond).UnixMilli(), nil
			}
		}
	} else if ms, ok := parseUnixSeconds(s); ok {
		return ms, nil
	}
	return 0, fmt.Errorf("timestamp %q: want %s (UTC), RFC 3339 or Unix seconds", s, plainLayout)
}

// parseUnixSeconds reads decimal seconds exactly, without going through a float, so that
// millisecond timestamps survive any magnitude.
func parseUnixSeconds(s string) (int64, bool) {
	intPart, frac, hasFrac := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	digits := strings.TrimLeft(intPart, "+-")
	if len(intPart)-len(digits) > 1 || (digits == "" && (!hasFrac || frac == "")) {
		return 0, false
	}
	var sec int64
	if digits != "" {
		var err error
		if sec, err = strconv.ParseInt(digits, 10, 64); err != nil || sec > math.MaxInt64/1000-1 {
			return 0, false
		}
	}
	var ms int64
	for i, c := range frac {
		if c < '0' || c > '9' {
			return 0, false
		}
		switch {
		case i < 3:
			ms = ms*10 + int64(c-'0')
		case i == 3 && c >= '5':
			ms++
		}
	}
	for i := len(frac); i < 3; i++ {
		ms *= 10
	}
	ms += sec * 1000
	if neg {
		ms = -ms
	}
	return ms, true
}
