package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// parseSVG checks that the SVG is well-formed XML with an svg root, and counts its elements by
// "name.class" for every class they carry, and by name alone.
func parseSVG(t *testing.T, r io.Reader) (map[string]int, map[string][]xml.StartElement) {
	t.Helper()
	count := map[string]int{}
	byKey := map[string][]xml.StartElement{}
	dec := xml.NewDecoder(r)
	root := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root {
			require.Equal(t, "svg", se.Name.Local)
			require.Equal(t, "http://www.w3.org/2000/svg", se.Name.Space)
			root = false
		}
		count[se.Name.Local]++
		for _, a := range se.Attr {
			if a.Name.Local == "class" {
				for _, c := range strings.Fields(a.Value) {
					key := se.Name.Local + "." + c
					count[key]++
					byKey[key] = append(byKey[key], se.Copy())
				}
			}
		}
	}
	require.False(t, root, "no root element")
	return count, byKey
}

func svgElements(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	count, _ := parseSVG(t, f)
	return count
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestRenderSVG(t *testing.T) {
	const n = 100000 // far more samples than pixels
	long := &plotSeries{title: `{__name__="x", job="<a&b>"}`}
	for i := range n {
		v := math.Sin(float64(i) / 500)
		p := plotPoint{t: int64(i) * 60000, v: v, exp: v, lo: v - 0.5, hi: v + 0.5, learning: i < 1000}
		if i == n/2 {
			p.v, p.score = 10, 20
		}
		long.points = append(long.points, p)
	}
	oneSided := &plotSeries{title: "up only", counter: true, points: []plotPoint{
		{t: 0, v: 1, exp: 1, lo: math.Inf(-1), hi: 2},
		{t: 1000, v: 5, exp: 1, lo: math.Inf(-1), hi: 2, score: 3, learning: true},
	}}
	for _, tc := range []struct {
		name   string
		series []*plotSeries
		want   map[string]int
	}{
		{name: "no series", want: map[string]int{"g.series": 0, "text": 1}},
		{name: "series without scored samples", series: []*plotSeries{{title: "empty"}}, want: map[string]int{"g.series": 1, "path.band": 0}},
		{
			name:   "long series reduced to pixel columns",
			series: []*plotSeries{long, oneSided},
			want: map[string]int{
				"g.series": 2, "path.band": 2, "polyline.expected": 2, "polyline.observed": 2,
				"circle.anomaly": 2, "circle.learning": 1, "rect.learning-span": 2, "text.title": 2,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, renderSVG(&buf, tc.series))
			require.Less(t, buf.Len(), 200_000, "the SVG stays small")
			count, byKey := parseSVG(t, bytes.NewReader(buf.Bytes()))
			for k, v := range tc.want {
				require.Equal(t, v, count[k], k)
			}
			for _, pl := range byKey["polyline.observed"] {
				require.LessOrEqual(t, len(strings.Fields(attr(pl, "points"))), 2*(innerWidth+1))
			}
			for _, c := range byKey["circle.anomaly"] {
				require.NotContains(t, attr(c, "cy"), "Inf")
				require.NotContains(t, attr(c, "cy"), "NaN")
			}
			require.NotContains(t, buf.String(), "NaN")
			require.NotContains(t, buf.String(), "Inf")
		})
	}
}

func TestTick(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 59453.2: "59450", -37531: "-37530", 0.012344: "0.01234", 1e-7: "1e-07", 3e20: "3e+20", 1.5: "1.5"} {
		require.Equal(t, want, tick(in), "%g", in)
	}
}
