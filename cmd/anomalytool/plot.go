package main

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/anomaly-exporter/anomaly_exporter/backtest"
)

// maxPlotted bounds the panels of one SVG: past a few dozen series a picture stops being read,
// and every plotted series is held in memory until the end of the run.
const maxPlotted = 50

// Geometry of the SVG, in pixels. Each series gets a panel; long series are reduced to one
// column per pixel (keeping each column's extremes), so that the file stays small and a spike
// stays visible however many samples there are.
const (
	plotWidth   = 1000
	panelHeight = 230
	marginLeft  = 80
	marginRight = 20
	marginTop   = 34
	marginBot   = 28
	innerWidth  = plotWidth - marginLeft - marginRight
	innerHeight = panelHeight - marginTop - marginBot
)

// plotPoint is what the plot keeps of a scored point.
type plotPoint struct {
	t                     int64
	v, exp, lo, hi, score float64
	learning              bool
}

// plotSeries collects the scored points of one series for the SVG.
type plotSeries struct {
	title   string
	counter bool
	points  []plotPoint
}

// add keeps a scored point; skipped points have nothing to draw. A nil series keeps nothing,
// so that callers need no check when no plot was asked for.
func (s *plotSeries) add(p backtest.Point) {
	if s == nil || !p.Scored() {
		return
	}
	r := p.Result
	s.points = append(s.points, plotPoint{t: p.T, v: p.Observed, exp: r.Expected, lo: r.Lower, hi: r.Upper, score: r.Score, learning: r.Learning})
}

// writePlot writes the series as an SVG file.
func writePlot(path string, series []*plotSeries) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriter(f)
	if err := renderSVG(w, series); err != nil {
		return err
	}
	return w.Flush()
}

// renderSVG draws one panel per series: the normal band, the expected value (dashed), the value
// the model saw (for a counter its rate), grey spans while the series was learning, and a red dot
// on every point scored above 1, with its time, value and score as a tooltip.
func renderSVG(w io.Writer, series []*plotSeries) error {
	p := &svgPrinter{w: w}
	height := max(len(series), 1) * panelHeight
	p.printf(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", plotWidth, height, plotWidth, height)
	p.printf(`<style>.band{fill:#cfe0f5;stroke:none}.expected{fill:none;stroke:#2b6cb0;stroke-width:1;stroke-dasharray:4 3}` +
		`.observed{fill:none;stroke:#222;stroke-width:1}.anomaly{fill:#d62728}.anomaly.learning{fill:#f5a25d}` +
		`.learning-span{fill:#eee}.axis{stroke:#999;fill:none}.title{font-weight:bold}</style>` + "\n")
	p.printf(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	if len(series) == 0 {
		p.printf(`<text x="%d" y="%d">no series</text>`+"\n", marginLeft, marginTop)
	}
	for i, s := range series {
		p.panel(s, i*panelHeight)
	}
	p.printf("</svg>\n")
	return p.err
}

type svgPrinter struct {
	w   io.Writer
	err error
}

func (p *svgPrinter) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *svgPrinter) text(x, y float64, anchor, class, s string) {
	p.printf(`<text x="%.1f" y="%.1f" text-anchor="%s"`, x, y, anchor)
	if class != "" {
		p.printf(` class="%s"`, class)
	}
	p.printf(">%s</text>\n", escape(s))
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // A strings.Builder does not fail.
	return b.String()
}

// column is the summary of the points that fall on one pixel column.
type column struct {
	used              bool
	first             int // index of the first point, to keep the line in time order
	minV, maxV        float64
	minAt, maxAt      int
	expSum            float64
	expN              int
	lo, hi            float64
	anomaly           int // index of the highest score above 1, or -1
	learning, settled bool
}

func (p *svgPrinter) panel(s *plotSeries, top int) {
	p.printf(`<g class="series" transform="translate(0,%d)">`+"\n", top)
	defer p.printf("</g>\n")
	title := s.title
	if s.counter {
		title += " (per-second rate)"
	}
	p.text(marginLeft, 18, "start", "title", title)
	pts := s.points
	if len(pts) == 0 {
		p.text(marginLeft, marginTop+20, "start", "", "no scored samples")
		return
	}
	t0, t1 := pts[0].t, pts[len(pts)-1].t
	for _, q := range pts {
		t0, t1 = min(t0, q.t), max(t1, q.t)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, q := range pts {
		for _, v := range [...]float64{q.v, q.exp, q.lo, q.hi} {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	if pad := (hi - lo) * 0.05; pad > 0 {
		lo, hi = lo-pad, hi+pad
	} else {
		lo, hi = lo-1, hi+1
	}
	x := func(t int64) float64 {
		if t1 == t0 {
			return marginLeft + innerWidth/2
		}
		return marginLeft + float64(t-t0)/float64(t1-t0)*innerWidth
	}
	y := func(v float64) float64 {
		v = math.Max(lo, math.Min(hi, v)) // also clamps ±Inf band edges
		return marginTop + (hi-v)/(hi-lo)*innerHeight
	}

	cols := make([]column, innerWidth+1)
	for i, q := range pts {
		c := &cols[int(x(q.t)-marginLeft)]
		if !c.used {
			*c = column{used: true, first: i, minV: q.v, maxV: q.v, minAt: i, maxAt: i, lo: q.lo, hi: q.hi, anomaly: -1}
		}
		if q.v < c.minV {
			c.minV, c.minAt = q.v, i
		}
		if q.v > c.maxV {
			c.maxV, c.maxAt = q.v, i
		}
		if !math.IsNaN(q.exp) {
			c.expSum += q.exp
			c.expN++
		}
		c.lo, c.hi = math.Min(c.lo, q.lo), math.Max(c.hi, q.hi)
		if q.score > 1 && (c.anomaly < 0 || q.score > pts[c.anomaly].score) {
			c.anomaly = i
		}
		if q.learning {
			c.learning = true
		} else {
			c.settled = true
		}
	}

	// Learning spans first, so that everything else is drawn over them.
	spanStart := -1
	for i := 0; i <= len(cols); i++ {
		learning := i < len(cols) && cols[i].used && cols[i].learning
		switch {
		case learning && spanStart < 0:
			spanStart = i
		case !learning && spanStart >= 0 && (i == len(cols) || cols[i].used):
			p.printf(`<rect class="learning-span" x="%d" y="%d" width="%d" height="%d"><title>learning</title></rect>`+"\n",
				marginLeft+spanStart, marginTop, max(i-spanStart, 1), innerHeight)
			spanStart = -1
		}
	}

	// The band: along the upper edge, then back along the lower one.
	p.printf(`<path class="band" d="`)
	sep := "M"
	for i := range cols {
		if c := &cols[i]; c.used {
			p.printf("%s%d %.1f", sep, marginLeft+i, y(c.hi))
			sep = " L"
		}
	}
	for i := len(cols) - 1; i >= 0; i-- {
		if c := &cols[i]; c.used {
			p.printf(" L%d %.1f", marginLeft+i, y(c.lo))
		}
	}
	p.printf(` Z"/>` + "\n")

	p.printf(`<polyline class="expected" points="`)
	sep = ""
	for i := range cols {
		if c := &cols[i]; c.used && c.expN > 0 {
			p.printf("%s%d,%.1f", sep, marginLeft+i, y(c.expSum/float64(c.expN)))
			sep = " "
		}
	}
	p.printf(`"/>` + "\n")

	p.printf(`<polyline class="observed" points="`)
	sep = ""
	for i := range cols {
		c := &cols[i]
		if !c.used {
			continue
		}
		a, b := c.minAt, c.maxAt
		if a > b {
			a, b = b, a
		}
		for j, at := range [...]int{a, b} {
			if j == 1 && a == b {
				break
			}
			p.printf("%s%d,%.1f", sep, marginLeft+i, y(pts[at].v))
			sep = " "
		}
	}
	p.printf(`"/>` + "\n")

	for i := range cols {
		c := &cols[i]
		if !c.used || c.anomaly < 0 {
			continue
		}
		q := pts[c.anomaly]
		class := "anomaly"
		if q.learning {
			class += " learning"
		}
		p.printf(`<circle class="%s" cx="%d" cy="%.1f" r="2.5"><title>%s value %s score %s</title></circle>`+"\n",
			class, marginLeft+i, y(q.v), time.UnixMilli(q.t).UTC().Format(time.RFC3339), backtest.FormatFloat(q.v), strconv.FormatFloat(q.score, 'f', 2, 64))
	}

	// Axes: the value range on the left, the time range below.
	p.printf(`<rect class="axis" x="%d" y="%d" width="%d" height="%d"/>`+"\n", marginLeft, marginTop, innerWidth, innerHeight)
	for _, v := range [...]float64{hi, (lo + hi) / 2, lo} {
		p.text(marginLeft-6, y(v)+4, "end", "", tick(v))
	}
	const layout = "2006-01-02 15:04"
	p.text(marginLeft, panelHeight-10, "start", "", time.UnixMilli(t0).UTC().Format(layout))
	p.text(marginLeft+innerWidth, panelHeight-10, "end", "", time.UnixMilli(t1).UTC().Format(layout)+" UTC")
}

// tick writes an axis value with four significant digits, without an exponent for the magnitudes
// metrics usually have.
func tick(v float64) string {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	if a := math.Abs(r); a == 0 || (a >= 1e-4 && a < 1e15) {
		return strconv.FormatFloat(r, 'f', -1, 64)
	}
	return strconv.FormatFloat(r, 'g', -1, 64)
}
