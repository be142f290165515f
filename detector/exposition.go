package detector

import (
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"unsafe"

	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// MetricLabel is the label that carries the scored series' metric name on every output series,
// so that one alert rule covers every scored metric and a dashboard can select by metric.
const MetricLabel = "anomaly_metric"

// exportedPrefix renames an input label that collides with one of ours, as Prometheus renames a
// scraped label that collides with a target label.
const exportedPrefix = "exported_"

// family is one output metric family and how to read its value from a series' last result and
// last observed value.
type family struct {
	name, help string
	value      func(r *model.Result, observed float64) float64
}

var families = [NumFamilies]family{
	{"anomaly_score", "Anomaly score of the last sample: 0 at the expected value, 1 at the edge of the normal band, above 1 outside it.",
		func(r *model.Result, _ float64) float64 { return r.Score }},
	{"anomaly_value", "The last value scored: the sample value, or the per-second rate for counters.",
		func(_ *model.Result, observed float64) float64 { return observed }},
	{"anomaly_expected", "What the baseline expected at the time of the last sample.",
		func(r *model.Result, _ float64) float64 { return r.Expected }},
	{"anomaly_lower", "Lower edge of the normal band at the time of the last sample.",
		func(r *model.Result, _ float64) float64 { return r.Lower }},
	{"anomaly_upper", "Upper edge of the normal band at the time of the last sample.",
		func(r *model.Result, _ float64) float64 { return r.Upper }},
	{"anomaly_learning", "1 while the series' baseline has not yet covered its learning period, else 0.",
		func(r *model.Result, _ float64) float64 {
			if r.Learning {
				return 1
			}
			return 0
		}},
}

// snap is what the exposition copies out of a shard under its lock.
type snap struct {
	labels labels.Labels
	value  float64
	flags  uint8
}

// labelsAheadScrape is how many series ahead of the one being written AppendPart prefetches
// labels.
const labelsAheadScrape = 8

// prefetchLabelsOf prefetches the string of ls (stringlabels builds only).
func prefetchLabelsOf(ls labels.Labels) {
	if !stringLabels {
		return // the labels are not one string: nothing to prefetch in one go
	}
	if d := labelsData(ls, nil); len(d) > 0 {
		prefetch(uintptr(unsafe.Pointer(unsafe.StringData(d))), uintptr(len(d)))
	}
}

// DefaultPartSeries is the number of series a part of a Scrape aims at when its caller names
// none: about 180 KiB of exposition per thousand series, so a part is about 1 MiB, large enough
// that its fixed costs (a compressor's reset, a hand-off between goroutines) are lost in it and
// a fresh compressor's first window barely shows in the ratio, small enough that a few parts in
// flight per core are a few MiB whatever the series count.
const DefaultPartSeries = 6000

// Scrape is one exposition of the store's scores, cut into parts that can be formatted
// concurrently and whose concatenation, in order, is the exposition: a scrape of a million
// series is over a gigabyte of text, more than one core formats and compresses in the time a
// scrape may take. A part is one family over a run of entry slots, the shards' slots taken in
// order, the family's # HELP and # TYPE lines at the start of its first part. The wall clock
// and each shard's slot count are read once, by Store.Scrape, so that every part hides the same
// stale series and the parts of a family neither overlap nor leave a gap (a series added since
// waits for the next scrape). AppendPart may be called from several goroutines at once, and in
// any order; each shard's lock is held only while its values are copied.
type Scrape struct {
	s           *Store
	staleCutoff int64
	ranges      int                   // parts per family
	start       *[numShards + 1]int64 // start[k]: the slots of the shards before k; start[numShards]: all
}

// Scrape starts an exposition whose parts hold about partSeries series each (DefaultPartSeries
// if partSeries <= 0), judged from the number of series tracked now.
func (s *Store) Scrape(partSeries int) Scrape {
	if partSeries <= 0 {
		partSeries = DefaultPartSeries
	}
	rs := s.opts.Load()
	now := s.now().Unix()
	staleCutoff := int64(-1 << 62)
	if rs.StaleAfter > 0 {
		staleCutoff = now - int64(rs.StaleAfter.Seconds())
	}
	start := new([numShards + 1]int64)
	for k := range s.shards {
		sh := &s.shards[k]
		sh.mu.Lock()
		start[k+1] = start[k] + int64(sh.used)
		sh.mu.Unlock()
	}
	n := int(max(s.series.Load(), 0))
	ranges := max((n+partSeries-1)/partSeries, 1)
	return Scrape{s: s, staleCutoff: staleCutoff, ranges: ranges, start: start}
}

// Parts is the number of parts of the exposition, never less than the number of families.
func (sc Scrape) Parts() int { return len(families) * sc.ranges }

// AppendPart appends part i (0 <= i < Parts()) of the exposition to dst and returns the result.
func (sc Scrape) AppendPart(dst []byte, i int) []byte {
	f := &families[i/sc.ranges]
	r := int64(i % sc.ranges)
	if r == 0 {
		dst = append(dst, "# HELP "...)
		dst = append(dst, f.name...)
		dst = append(dst, ' ')
		dst = append(dst, f.help...)
		dst = append(dst, "\n# TYPE "...)
		dst = append(dst, f.name...)
		dst = append(dst, " gauge\n"...)
	}
	sp := snapPool.Get().(*[]snap)
	snaps, most := (*sp)[:0], 0
	slots := sc.start[numShards]
	lo, hi := r*slots/int64(sc.ranges), (r+1)*slots/int64(sc.ranges)
	for k := range numShards {
		from, to := max(lo, sc.start[k]), min(hi, sc.start[k+1])
		if from >= to {
			continue
		}
		base := sc.start[k]
		snaps = sc.s.shards[k].snapshot(snaps[:0], int32(from-base), int32(to-base), f.value, sc.staleCutoff)
		most = max(most, len(snaps))
		for j := range snaps {
			// The labels are all over the heap: load those of a series a few lines ahead.
			if j+labelsAheadScrape < len(snaps) {
				prefetchLabelsOf(snaps[j+labelsAheadScrape].labels)
			}
			dst = appendSeriesLine(dst, f.name, &snaps[j])
		}
	}
	// The pool must not keep alive the labels of series the store has forgotten (what lies
	// beyond most was cleared by the call that wrote it).
	clear(snaps[:most])
	*sp = snaps[:0]
	snapPool.Put(sp)
	return dst
}

// snapPool holds the scratch into which AppendPart copies a shard's values, so that a scrape
// allocates one per goroutine formatting parts rather than one per part.
var snapPool = sync.Pool{New: func() any { return new([]snap) }}

// writeScoresPartSeries is the series per part of WriteScores's scrape: some 50 KiB of text.
const writeScoresPartSeries = 256

// scoresBufferSize is how much of the exposition WriteScores formats before it writes it out,
// unless a part is larger.
const scoresBufferSize = 64 << 10

// WriteScores writes the output series of every live series in the Prometheus text format
// (version 0.0.4), the parts of a Scrape in order on the calling goroutine: for callers that
// want the exposition whole and have no cores to spare for it (tests, backfill, checkpoints).
// The parts are small (writeScoresPartSeries), so that it buffers little more than
// scoresBufferSize.
func (s *Store) WriteScores(w io.Writer) error {
	sc := s.Scrape(writeScoresPartSeries)
	b := make([]byte, 0, scoresBufferSize)
	for i := range sc.Parts() {
		b = sc.AppendPart(b, i)
		if len(b) >= scoresBufferSize {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	_, err := w.Write(b)
	return err
}

// snapshot copies the values of the live series in slots [from, to) of sh.
func (sh *shard) snapshot(dst []snap, from, to int32, value func(*model.Result, float64) float64, staleCutoff int64) []snap {
	const want = flagInUse | flagLive | flagHasResult
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i := from; i < min(to, sh.used); i++ {
		e := sh.at(i)
		if e.flags&want != want || int64(e.lastSeen) < staleCutoff {
			continue
		}
		dst = append(dst, snap{labels: e.labels, value: value(&e.res, e.observed()), flags: e.flags})
	}
	return dst
}

// appendSeriesLine writes `name{labels,anomaly_metric="..."} value\n`: the input labels less
// __name__, an input label named like ours renamed with the exported_ prefix (repeatedly, until
// it is unique), and names that the text format cannot carry sanitised to underscores.
func appendSeriesLine(b []byte, name string, sn *snap) []byte {
	b = append(b, name...)
	b = append(b, '{')
	var metric string
	// A plain series has nothing to sanitise, rename or escape: its labels are copied straight,
	// in a loop of their own, the one most series take.
	plain := stringLabels && sn.flags&flagPlain != 0
	odd := sn.flags&flagOddNames != 0
	switch {
	case plain:
		b, metric = appendPlainLabels(b, labelsData(sn.labels, nil))
	case stringLabels:
		b, metric = appendEncodedLabels(b, labelsData(sn.labels, nil), "", odd)
	default:
		metric = rangeOutputLabels(sn.labels, func(ln, v string) { b = appendLabel(b, ln, v, odd) })
	}
	b = append(b, MetricLabel+"="...)
	if plain {
		b = append(b, '"')
		b = append(b, metric...)
		b = append(b, '"')
	} else {
		b = appendQuoted(b, metric)
	}
	b = append(b, "} "...)
	b = appendValue(b, sn.value)
	return append(b, '\n')
}

// appendValue writes v as strconv.AppendFloat(b, v, 'g', -1, 64) does. Whole numbers below a
// million, which that writes without an exponent (anomaly_learning's 0 and 1, the value of a
// gauge that counts), take the shorter way of an integer.
func appendValue(b []byte, v float64) []byte {
	if i := int64(v); float64(i) == v && i > -1e6 && i < 1e6 && (i != 0 || !math.Signbit(v)) {
		return strconv.AppendInt(b, i, 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// wordSlack is the room appendPlainLabels needs past what it writes: it moves label strings
// sixteen bytes at a time.
const wordSlack = 16

// appendPlainLabels writes `name="value",` for each label of the encoding data but __name__,
// whose value it returns. The labels are plain (no escaping or renaming): a line is a few
// dozen short strings, and copying each with 16-byte loads and stores, rather than a call of
// memmove behind a bounds-checked append, takes a fifth off what formatting them costs. The
// room is made once: the line grows by at most the size of data (each label's two length
// bytes become `=""` and `,`), plus wordSlack for the last word's overrun. A string is read a
// word at a time only where the word lies inside data; the last ones go byte by byte.
func appendPlainLabels(b []byte, data string) ([]byte, string) {
	b = slices.Grow(b, 2*len(data)+wordSlack)
	dst := unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), len(b))
	src := unsafe.Pointer(unsafe.StringData(data))
	o := 0
	var metric string
	for i := 0; i < len(data); {
		nl := int(data[i])
		if nl == 255 {
			// A name of 255 bytes or more: the general loop, from this label on.
			return appendEncodedLabels(b[:len(b)+o], data[i:], metric, false)
		}
		ni := i + 1
		vl := int(data[ni+nl])
		if vl == 255 {
			return appendEncodedLabels(b[:len(b)+o], data[i:], metric, false)
		}
		vi := ni + nl + 1
		i = vi + vl
		if nl == len(prommodel.MetricNameLabel) && data[ni:vi-1] == prommodel.MetricNameLabel {
			metric = data[vi:i]
			continue
		}
		copyString(unsafe.Add(dst, o), unsafe.Add(src, ni), nl, vi+wordSlack <= len(data))
		o += nl
		*(*[2]byte)(unsafe.Add(dst, o)) = [2]byte{'=', '"'}
		o += 2
		if vl > 0 { // an empty value may end data: no pointer to past its end
			copyString(unsafe.Add(dst, o), unsafe.Add(src, vi), vl, i+wordSlack <= len(data))
			o += vl
		}
		*(*[2]byte)(unsafe.Add(dst, o)) = [2]byte{'"', ','}
		o += 2
	}
	return b[:len(b)+o], metric
}

// copyString copies n bytes from src to dst, sixteen at a time when whole words may be read
// (up to wordSlack-1 bytes past n, which dst must have room for), else one at a time.
func copyString(dst, src unsafe.Pointer, n int, words bool) {
	if words {
		for k := 0; k < n; k += 16 {
			*(*[16]byte)(unsafe.Add(dst, k)) = *(*[16]byte)(unsafe.Add(src, k))
		}
		return
	}
	for k := range n {
		*(*byte)(unsafe.Add(dst, k)) = *(*byte)(unsafe.Add(src, k))
	}
}

// appendEncodedLabels writes the labels of the encoding data by the rules of
// rangeOutputLabels, without a call per label, and returns the value of __name__ (metric if
// data has none). For plain labels it writes what appendPlainLabels does.
func appendEncodedLabels(b []byte, data, metric string, odd bool) ([]byte, string) {
	for i := 0; i < len(data); {
		var ln, v string
		ln, i = decodeLabelString(data, i)
		v, i = decodeLabelString(data, i)
		if ln == prommodel.MetricNameLabel {
			metric = v
			continue
		}
		if ln == MetricLabel || hasPrefixExported(ln) {
			ln = exportedName(ln)
		}
		b = appendLabel(b, ln, v, odd)
	}
	return b, metric
}

// appendLabel writes `name="value",`.
func appendLabel(b []byte, name, value string, odd bool) []byte {
	if odd {
		b = appendSanitisedName(b, name)
	} else {
		b = append(b, name...)
	}
	b = append(b, '=')
	b = appendQuoted(b, value)
	return append(b, ',')
}

// decodeLabelString reads the name or value at data[i:] of a labels encoding (labels.go) and
// returns it with the index after it.
func decodeLabelString(data string, i int) (string, int) {
	n := int(data[i])
	i++
	if n == 255 {
		n = int(data[i]) | int(data[i+1])<<8 | int(data[i+2])<<16
		i += 3
	}
	return data[i : i+n], i + n
}

func hasPrefixExported(n string) bool {
	return len(n) > len(exportedPrefix) && n[:len(exportedPrefix)] == exportedPrefix
}

// exportedName resolves collisions deterministically: our label keeps its name; an input label
// named anomaly_metric becomes exported_anomaly_metric, and an input label already named
// exported_anomaly_metric is pushed one prefix further, so no two output labels share a name.
func exportedName(n string) string {
	// Strip the prefixes to find the base; only names that end in our label collide.
	base := n
	for hasPrefixExported(base) {
		base = base[len(exportedPrefix):]
	}
	if base != MetricLabel {
		return n
	}
	return exportedPrefix + n
}

// needsEscape reports whether a label value has a byte that the text format escapes.
func needsEscape(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\\' || c == '"' || c == '\n' {
			return true
		}
	}
	return false
}

func appendQuoted(b []byte, v string) []byte {
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// legacyName reports whether n is a label name the classic text format can carry.
func legacyName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func appendSanitisedName(b []byte, n string) []byte {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			b = append(b, c)
		} else {
			b = append(b, '_')
		}
	}
	return b
}
