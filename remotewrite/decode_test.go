package remotewrite

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus under testdata/fuzz")

// checkInvariants fails unless every decoded series satisfies what batch.Series promises and the
// limits hold.
func checkInvariants(t *testing.T, b *batch.Batch, lim limits) {
	t.Helper()
	if lim.maxSeries > 0 && len(b.Series) > lim.maxSeries {
		t.Fatalf("%d series over the limit of %d", len(b.Series), lim.maxSeries)
	}
	for i, s := range b.Series {
		ls := s.LabelsOf(nil)
		if lim.maxLabels > 0 && len(ls) > lim.maxLabels {
			t.Fatalf("series %d: %d labels over the limit", i, len(ls))
		}
		if len(s.Labels) == 0 && s.LabelsData == nil {
			t.Fatalf("series %d: neither labels nor their encoding", i)
		}
		if s.LabelsData != nil && string(batch.AppendEncoded(nil, ls)) != string(s.LabelsData) {
			t.Fatalf("series %d: LabelsData %q is not the encoding of %v", i, s.LabelsData, ls)
		}
		haveName := false
		for j, l := range ls {
			switch {
			case l.Name == "":
				t.Fatalf("series %d: empty label name", i)
			case l.Value == "":
				t.Fatalf("series %d: empty value of %q", i, l.Name)
			case j > 0 && ls[j-1].Name >= l.Name:
				t.Fatalf("series %d: labels not sorted and unique: %q before %q", i, ls[j-1].Name, l.Name)
			case !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value):
				t.Fatalf("series %d: invalid UTF-8 in %q=%q", i, l.Name, l.Value)
			case lim.maxNameLen > 0 && len(l.Name) > lim.maxNameLen, lim.maxValueLen > 0 && len(l.Value) > lim.maxValueLen:
				t.Fatalf("series %d: label %q over the length limits", i, l.Name)
			}
			haveName = haveName || l.Name == metricNameLabel
		}
		if !haveName {
			t.Fatalf("series %d: no metric name", i)
		}
		if s.Type > batch.StateSet || s.Histograms < 0 || s.Exemplars < 0 {
			t.Fatalf("series %d: bad type or counts %+v", i, s)
		}
		if cap(s.Labels) != len(s.Labels) || cap(s.Samples) != len(s.Samples) {
			t.Fatalf("series %d: slices share capacity with their neighbours", i)
		}
	}
}

// fuzzDecode decodes data twice with one decoder, unlimited and limited, checks the invariants,
// and checks that decoding again after the other yields the same, so no state leaks from one
// request into the next.
func fuzzDecode(t *testing.T, data []byte, decode func(*decoder, []byte) error) {
	small := limits{maxLabels: 4, maxNameLen: 16, maxValueLen: 32, maxSeries: 8}
	d := &decoder{}
	var first []rec
	for round, lim := range []limits{{}, small, {}} {
		d.lim = lim
		err := decode(d, data)
		if err != nil {
			require.Empty(t, d.b.Series, "a failed decode yields nothing")
			continue
		}
		checkInvariants(t, &d.b, lim)
		switch round {
		case 0:
			first = record(&d.b)
		case 2:
			require.Equal(t, first, record(&d.b))
		}
	}
}

func FuzzDecodeV1(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, (*decoder).decodeV1)
	})
}

func FuzzDecodeV2(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, (*decoder).decodeV2)
	})
}

// seedsV1 and seedsV2 are the fuzz seed corpus: real requests built with Prometheus's types,
// valid and invalid, named for what they exercise.
func seedsV1(tb testing.TB) map[string][]byte {
	stale := math.Float64frombits(value.StaleNaN)
	meta := []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests", Help: "Requests.", Unit: ""},
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "latency_seconds", Help: "Latency.", Unit: "seconds"},
	}
	msg := func(meta []prompb.MetricMetadata, ss ...ts) []byte { return marshal(tb, v1Message(meta, ss...)) }
	ok := msg(nil, series("__name__", "up", "instance", "a:1", "job", "node"), series("__name__", "temp", "job", "x"))
	metaFirst := marshal(tb, &prompb.WriteRequest{Metadata: meta})
	metaFirst = append(metaFirst, msg(nil, series("__name__", "http_requests_total", "code", "200"))...)
	return map[string][]byte{
		"ok":                   ok,
		"realistic":            msg(nil, realisticSeries(20)...),
		"metadata":             msg(meta, series("__name__", "http_requests_total"), series("__name__", "latency_seconds_bucket", "le", "+Inf")),
		"metadata_first":       metaFirst,
		"histograms_exemplars": msg(nil, series("__name__", "h").with().extra(2, 1), series("__name__", "c").extra(0, 2)),
		"stale_nan_inf":        msg(nil, series("__name__", "up").with(smp(1, stale), smp(2, math.NaN()), smp(-3, math.Inf(1)))),
		"unsorted":             msg(nil, series("job", "x", "__name__", "a", "instance", "i")),
		"empty_value":          msg(nil, series("__name__", "a", "empty", "", "job", "x")),
		"empty_name":           msg(nil, series("__name__", "a", "", "x")),
		"duplicate_name":       msg(nil, series("__name__", "a", "job", "x", "job", "y")),
		"invalid_utf8":         msg(nil, series("__name__", "a", "job", "\xff\xfe")),
		"missing_name":         msg(nil, series("job", "x")),
		"empty":                {},
		"truncated":            ok[:len(ok)-3],
		"unknown_field":        protowire.AppendVarint(protowire.AppendTag(slices.Clone(ok), 15, protowire.VarintType), 42),
		"long_strings":         msg(nil, series("__name__", strings.Repeat("n", 300), "v", strings.Repeat("ü", 200))),
		// Found by fuzzing: a series with an empty label message.
		"regression_empty_label": {0x0a, 0x02, 0x0a, 0x00},
	}
}

func seedsV2(tb testing.TB) map[string][]byte {
	stale := math.Float64frombits(value.StaleNaN)
	msg := func(ss ...ts) []byte { return marshal(tb, v2Message(ss...)) }
	raw := func(symbols []string, refs []uint32, meta writev2.Metadata) []byte {
		return marshal(tb, &writev2.Request{Symbols: symbols, Timeseries: []writev2.TimeSeries{{
			LabelsRefs: refs, Samples: []writev2.Sample{{Value: 1, Timestamp: 1000}}, Metadata: meta,
		}}})
	}
	ok := msg(series("__name__", "up", "instance", "a:1", "job", "node").typed(batch.Gauge), series("__name__", "c_total", "job", "x").typed(batch.Counter))
	return map[string][]byte{
		"ok":                    ok,
		"realistic":             msg(realisticSeries(20)...),
		"types":                 msg(series("__name__", "a").typed(batch.Summary), series("__name__", "b").typed(batch.StateSet), series("__name__", "c").typed(batch.Info)),
		"histograms_exemplars":  msg(series("__name__", "h").with().extra(2, 1).typed(batch.Histogram), series("__name__", "c").extra(0, 2)),
		"stale_nan_inf":         msg(series("__name__", "up").with(smp(1, stale), smp(2, math.NaN()), smp(-3, math.Inf(-1)))),
		"unsorted":              msg(series("job", "x", "__name__", "a")),
		"partial":               msg(series("__name__", "a"), series("__name__", "b", "job", "x", "job", "y")),
		"ref_out_of_range":      raw([]string{"", "__name__", "a"}, []uint32{1, 3}, writev2.Metadata{}),
		"help_ref_out_of_range": raw([]string{"", "__name__", "a"}, []uint32{1, 2}, writev2.Metadata{HelpRef: 9}),
		"symbols0_not_empty":    raw([]string{"x", "__name__", "a"}, []uint32{1, 2}, writev2.Metadata{}),
		"odd_refs":              raw([]string{"", "__name__", "a"}, []uint32{1, 2, 1}, writev2.Metadata{}),
		"symbols_last_unpacked": encodeV2(tb, v2Message(series("__name__", "a", "b", "c")), true, true),
		"empty":                 {},
		"truncated":             ok[:len(ok)-3],
	}
}

// TestGenerateSeedCorpus checks that the committed seed corpus is what seedsV1 and seedsV2 build,
// and rewrites it with -update.
func TestGenerateSeedCorpus(t *testing.T) {
	for name, seeds := range map[string]map[string][]byte{"FuzzDecodeV1": seedsV1(t), "FuzzDecodeV2": seedsV2(t)} {
		dir := filepath.Join("testdata", "fuzz", name)
		if *update {
			require.NoError(t, os.RemoveAll(dir))
			require.NoError(t, os.MkdirAll(dir, 0o755))
		}
		for seed, data := range seeds {
			path := filepath.Join(dir, seed)
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if *update {
				require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
				continue
			}
			got, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./remotewrite -run TestGenerateSeedCorpus -update")
			require.Equal(t, want, string(got), "%s is stale: run go test ./remotewrite -run TestGenerateSeedCorpus -update", path)
		}
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, entries, len(seeds), "%s has files the generator does not make", dir)
	}
}

// encodeV2 encodes a writev2.Request by hand in layouts the generated code never produces but
// the protobuf encoding allows: symbols after the series, label references unpacked, and an
// unknown field.
func encodeV2(tb testing.TB, req *writev2.Request, symbolsLast, unpacked bool) []byte {
	var out []byte
	symbols := func() {
		for _, s := range req.Symbols {
			out = protowire.AppendTag(out, 4, protowire.BytesType)
			out = protowire.AppendString(out, s)
		}
	}
	if !symbolsLast {
		symbols()
	}
	for _, s := range req.Timeseries {
		var b []byte
		if unpacked {
			for _, r := range s.LabelsRefs {
				b = protowire.AppendTag(b, 1, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(r))
			}
		} else {
			var p []byte
			for _, r := range s.LabelsRefs {
				p = protowire.AppendVarint(p, uint64(r))
			}
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendBytes(b, p)
		}
		rest := s
		rest.LabelsRefs = nil
		b = append(b, marshal(tb, &rest)...) // concatenated messages merge
		out = protowire.AppendTag(out, 5, protowire.BytesType)
		out = protowire.AppendBytes(out, b)
	}
	if symbolsLast {
		symbols()
	}
	out = protowire.AppendTag(out, 99, protowire.Fixed32Type)
	return protowire.AppendFixed32(out, 7)
}

// randomString returns a non-empty valid UTF-8 string, sometimes long enough to need a two-byte
// length, sometimes with multi-byte runes.
func randomString(r *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz_ABCXYZ0123456789:.-/ äöü日本€"
	runes := []rune(alphabet)
	n := 1 + r.IntN(12)
	if r.IntN(10) == 0 {
		n = 100 + r.IntN(200)
	}
	var b strings.Builder
	for range n {
		b.WriteRune(runes[r.IntN(len(runes))])
	}
	return b.String()
}

func randomFloat(r *rand.Rand) float64 {
	switch r.IntN(8) {
	case 0:
		return math.Float64frombits(value.StaleNaN)
	case 1:
		return math.NaN()
	case 2:
		return math.Inf(1 - 2*r.IntN(2))
	case 3:
		return 0
	default:
		return r.NormFloat64() * math.Pow(10, float64(r.IntN(20)-10))
	}
}

// randomSeries returns a series with unique label names including __name__, in random order,
// some with empty values.
func randomSeries(r *rand.Rand, names []string) ts {
	var s ts
	s.labels = []string{metricNameLabel, names[r.IntN(len(names))]}
	seen := map[string]bool{metricNameLabel: true}
	for range r.IntN(10) {
		name := randomString(r)
		if r.IntN(2) == 0 {
			name = []string{"job", "instance", "le", "quantile", "pod", "Zone", "a"}[r.IntN(7)]
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		val := randomString(r)
		if r.IntN(10) == 0 {
			val = ""
		}
		s.labels = append(s.labels, name, val)
	}
	if r.IntN(2) == 0 { // shuffle pairs
		pairs := len(s.labels) / 2
		r.Shuffle(pairs, func(i, j int) {
			s.labels[2*i], s.labels[2*j] = s.labels[2*j], s.labels[2*i]
			s.labels[2*i+1], s.labels[2*j+1] = s.labels[2*j+1], s.labels[2*i+1]
		})
	}
	for range r.IntN(5) {
		s.samples = append(s.samples, smp(r.Int64N(1<<50)-1<<40, randomFloat(r)))
	}
	s.histograms, s.exemplars = r.IntN(3), r.IntN(3)
	s.typ = batch.MetricType(r.IntN(8))
	return s
}

// expected builds the batch the decoder should produce from what gogo's Unmarshal decoded:
// labels sorted, empty values dropped.
func expected(lss [][]batch.Label, samples [][]batch.Sample, hist, ex []int, types []batch.MetricType) []rec {
	var b batch.Batch
	for i, ls := range lss {
		ls = slices.DeleteFunc(ls, func(l batch.Label) bool { return l.Value == "" })
		slices.SortFunc(ls, compareLabels)
		b.Series = append(b.Series, batch.Series{Labels: ls, Type: types[i], Samples: samples[i], Histograms: hist[i], Exemplars: ex[i]})
	}
	return record(&b)
}

// TestDecodeV1MatchesGogo decodes random requests with decodeV1 and with the generated gogo
// Unmarshal and checks both say the same.
func TestDecodeV1MatchesGogo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	d := &decoder{}
	families := []string{"http_requests", "latency_seconds", "temp", "up", "foo_total"}
	names := []string{"http_requests_total", "latency_seconds_bucket", "latency_seconds_sum", "latency_seconds_count", "temp", "up", "foo_total", "bar"}
	for i := range 300 {
		var ss []ts
		for range r.IntN(20) {
			ss = append(ss, randomSeries(r, names))
		}
		var meta []prompb.MetricMetadata
		for _, f := range families {
			if r.IntN(2) == 0 {
				meta = append(meta, prompb.MetricMetadata{Type: prompb.MetricMetadata_MetricType(r.IntN(8)), MetricFamilyName: f, Help: randomString(r)})
			}
		}
		data := marshal(t, v1Message(meta, ss...))
		if r.IntN(3) == 0 { // metadata first, then the series: still one message
			data = append(marshal(t, &prompb.WriteRequest{Metadata: meta}), marshal(t, v1Message(nil, ss...))...)
		}

		var ref prompb.WriteRequest
		require.NoError(t, ref.Unmarshal(data))
		types := map[string]batch.MetricType{}
		for _, m := range ref.Metadata {
			if m.Type != 0 {
				types[m.MetricFamilyName] = batch.MetricType(m.Type)
			}
		}
		var (
			lss     [][]batch.Label
			samples [][]batch.Sample
			hist    []int
			ex      []int
			typs    []batch.MetricType
		)
		for _, s := range ref.Timeseries {
			var ls []batch.Label
			var name string
			for _, l := range s.Labels {
				ls = append(ls, batch.Label{Name: l.Name, Value: l.Value})
				if l.Name == metricNameLabel {
					name = l.Value
				}
			}
			typ, ok := types[name]
			for _, suffix := range []string{"_total", "_count", "_sum", "_bucket"} {
				if base, cut := strings.CutSuffix(name, suffix); !ok && cut {
					typ, ok = types[base]
				}
			}
			var smps []batch.Sample
			for _, x := range s.Samples {
				smps = append(smps, batch.Sample{T: x.Timestamp, V: x.Value})
			}
			lss, samples, typs = append(lss, ls), append(samples, smps), append(typs, typ)
			hist, ex = append(hist, len(s.Histograms)), append(ex, len(s.Exemplars))
		}

		require.NoError(t, d.decodeV1(data), "request %d", i)
		require.Zero(t, d.rejectedSeries)
		checkInvariants(t, &d.b, limits{})
		require.Equal(t, expected(lss, samples, hist, ex, typs), record(&d.b), "request %d", i)
	}
}

// TestDecodeV2MatchesGogo is TestDecodeV1MatchesGogo for remote write 2.0, including layouts the
// generated Marshal does not produce.
func TestDecodeV2MatchesGogo(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	d := &decoder{}
	names := []string{"http_requests_total", "temp", "up", "a"}
	for i := range 300 {
		var ss []ts
		for range r.IntN(20) {
			ss = append(ss, randomSeries(r, names))
		}
		msg := v2Message(ss...)
		var data []byte
		if r.IntN(2) == 0 {
			data = marshal(t, msg)
		} else {
			data = encodeV2(t, msg, r.IntN(2) == 0, r.IntN(2) == 0)
		}

		var ref writev2.Request
		require.NoError(t, ref.Unmarshal(data))
		var (
			lss     [][]batch.Label
			samples [][]batch.Sample
			hist    []int
			ex      []int
			typs    []batch.MetricType
			sb      = labels.NewScratchBuilder(0)
		)
		for _, s := range ref.Timeseries {
			lbls, err := s.ToLabels(&sb, ref.Symbols)
			require.NoError(t, err)
			var ls []batch.Label
			lbls.Range(func(l labels.Label) { ls = append(ls, batch.Label{Name: l.Name, Value: l.Value}) })
			var smps []batch.Sample
			for _, x := range s.Samples {
				smps = append(smps, batch.Sample{T: x.Timestamp, V: x.Value})
			}
			lss, samples, typs = append(lss, ls), append(samples, smps), append(typs, batch.MetricType(s.Metadata.Type))
			hist, ex = append(hist, len(s.Histograms)), append(ex, len(s.Exemplars))
		}

		require.NoError(t, d.decodeV2(data), "request %d", i)
		require.Zero(t, d.rejectedSeries)
		checkInvariants(t, &d.b, limits{})
		require.Equal(t, expected(lss, samples, hist, ex, typs), record(&d.b), "request %d", i)
	}
}

// TestIsASCII: one byte with the high bit set, anywhere in strings of every length up to past
// two rounds of the widest loop, is found; none, and the answer is true.
func TestIsASCII(t *testing.T) {
	for n := range 80 {
		b := []byte(strings.Repeat("a", n))
		require.True(t, isASCII(b), "length %d", n)
		for i := range n {
			b[i] = 0x80 | byte(i)
			require.False(t, isASCII(b), "length %d, byte %d", n, i)
			b[i] = 'a'
		}
	}
}

// TestTypeAndUnitLabels: the __type__ and __unit__ labels of a Prometheus with
// type-and-unit-labels are metadata: dropped from the series' labels, so that its identity and
// its scores' labels do not change with the sender's feature flags, and __type__ gives the
// metric type unless RW 2.0 metadata gave one; unsorted labels too.
func TestTypeAndUnitLabels(t *testing.T) {
	plain := []batch.Label{{Name: "__name__", Value: "emails_sent"}, {Name: "job", Value: "mail"}}
	for _, tc := range []struct {
		name string
		in   ts
		want batch.MetricType
	}{
		{"counter", series("__name__", "emails_sent", "__type__", "counter", "__unit__", "emails", "job", "mail"), batch.Counter},
		{"gauge, unsorted", series("job", "mail", "__unit__", "emails", "__type__", "gauge", "__name__", "emails_sent"), batch.Gauge},
		{"unknown value", series("__name__", "emails_sent", "__type__", "weird", "job", "mail"), batch.Unknown},
		{"unit only", series("__name__", "emails_sent", "__unit__", "emails", "job", "mail"), batch.Unknown},
		{"metadata wins", series("__name__", "emails_sent", "__type__", "counter", "job", "mail").typed(batch.Gauge), batch.Gauge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []struct {
				name   string
				data   []byte
				decode func(*decoder, []byte) error
			}{
				{"v1", marshal(t, v1Message(nil, tc.in)), (*decoder).decodeV1},
				{"v2", marshal(t, v2Message(tc.in)), (*decoder).decodeV2},
			} {
				if p.name == "v1" && tc.in.typ != batch.Unknown {
					continue // RW 1.0 has no per-series type
				}
				d := &decoder{}
				require.NoError(t, p.decode(d, p.data), p.name)
				require.Len(t, d.b.Series, 1, p.name)
				require.Equal(t, plain, d.b.Series[0].LabelsOf(nil), p.name)
				require.Equal(t, tc.want, d.b.Series[0].Type, p.name)
			}
		})
	}
}

// TestDecodeFastPathsMatchGeneral: labels in the common encoding are checked as they are read,
// and only the others go through checkLabels; so both protocols, each with its fast path and
// with every series sent through checkLabels (decoder.general), must agree on every request:
// the series kept, their labels, and what was rejected and why, under random limits, with labels
// unsorted, duplicated, empty, long, non-ASCII or __type__.
func TestDecodeFastPathsMatchGeneral(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	names := []string{"up", "http_requests_total", "temp", "x"}
	encoded := map[string]int{} // series with LabelsData, by case
	pick := func(ss ...string) string { return ss[r.IntN(len(ss))] }
	for i := range 3000 {
		var ss []ts
		for range 1 + r.IntN(6) {
			s := randomSeries(r, names)
			s.typ = batch.Unknown // RW 1.0 carries no per-series type: both take __type__
			switch r.IntN(8) {
			case 0: // a duplicate name
				s.labels = append(s.labels, s.labels[0], "dup")
			case 1: // metadata labels
				s.labels = append(s.labels, "__type__", pick("counter", "gauge", "nope"), "__unit__", "seconds")
			case 2: // a label in the long encoding
				s.labels = append(s.labels, "long", strings.Repeat("v", 100+r.IntN(100)))
			case 3: // no metric name
				s.labels = s.labels[2:]
			case 4: // an empty name
				s.labels = append(s.labels, "", "v")
			}
			ss = append(ss, s)
		}
		lim := limits{}
		if r.IntN(2) == 0 {
			lim = limits{maxLabels: 1 + r.IntN(8), maxNameLen: 1 + r.IntN(20), maxValueLen: 1 + r.IntN(40)}
		}
		v1, v2 := marshal(t, v1Message(nil, ss...)), marshal(t, v2Message(ss...))
		ref := &decoder{lim: lim, general: true}
		refErr := ref.decodeV1(v1)
		for _, c := range []struct {
			name    string
			general bool
			decode  func(*decoder, []byte) error
			data    []byte
		}{
			{"v1", false, (*decoder).decodeV1, v1},
			{"v2", false, (*decoder).decodeV2, v2},
			// With the room after the request that the handler makes, the fast paths copy the
			// labels' encoding in words (copyWords).
			{"v1 words", false, (*decoder).decodeV1, append(make([]byte, 0, len(v1)+wordSlack), v1...)},
			{"v2 words", false, (*decoder).decodeV2, append(make([]byte, 0, len(v2)+wordSlack), v2...)},
			{"v2 general", true, (*decoder).decodeV2, v2},
		} {
			d := &decoder{lim: lim, general: c.general}
			err := c.decode(d, c.data)
			require.Equal(t, refErr == nil, err == nil, "request %d, %s: %v / %v", i, c.name, refErr, err)
			if err != nil {
				continue
			}
			encoded[c.name] += requireSameDecode(t, ref, d, fmt.Sprintf("request %d, %s", i, c.name))
		}
	}
	for _, c := range []string{"v1", "v2", "v1 words", "v2 words"} {
		require.Positive(t, encoded[c], c)
	}
}

// requireSameDecode fails unless d decoded what ref did (the general path): the same series and
// the same rejections. What the fast paths encode as they read must be the labels' encoding,
// which the detector identifies series by; it returns how many series d has it for.
func requireSameDecode(t *testing.T, ref, d *decoder, what string) (encoded int) {
	t.Helper()
	require.Equal(t, record(&ref.b), record(&d.b), what)
	require.Equal(t, ref.rejectedSeries, d.rejectedSeries, what)
	require.Equal(t, ref.rejectedSamples, d.rejectedSamples, what)
	require.Equal(t, ref.first, d.first, what)
	for _, ser := range d.b.Series {
		if ser.LabelsData != nil {
			encoded++
			require.Equal(t, string(batch.AppendEncoded(nil, ser.LabelsOf(nil))), string(ser.LabelsData), what)
		}
	}
	return encoded
}

// TestDecodeV1ExplicitEmptyValue: a sender may write an empty value as a field of length 0,
// which the common encoding's fast path sees; the label is dropped as when the field is absent.
func TestDecodeV1ExplicitEmptyValue(t *testing.T) {
	label := func(name, value string) []byte {
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, name)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		return protowire.AppendString(b, value)
	}
	var series []byte
	for _, l := range [][2]string{{"__name__", "up"}, {"a", ""}, {"job", "x"}} {
		series = protowire.AppendTag(series, 1, protowire.BytesType)
		series = protowire.AppendBytes(series, label(l[0], l[1]))
	}
	series = protowire.AppendTag(series, 2, protowire.BytesType)
	series = protowire.AppendBytes(series, marshal(t, &prompb.Sample{Value: 1, Timestamp: 1000}))
	req := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), series)
	d := &decoder{}
	require.NoError(t, d.decodeV1(req))
	require.Len(t, d.b.Series, 1)
	require.Equal(t, []batch.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "x"}}, d.b.Series[0].LabelsOf(nil))
}

// TestSampleFastPath: sample's path for the common encoding decodes what the general path
// does, and leaves every other encoding (fields swapped, repeated or unknown, long or negative
// timestamps, truncated varints) to it.
func TestSampleFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	value := func(b []byte, v float64) []byte {
		return protowire.AppendFixed64(protowire.AppendTag(b, 1, protowire.Fixed64Type), math.Float64bits(v))
	}
	stamp := func(b []byte, ts int64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(b, 2, protowire.VarintType), uint64(ts))
	}
	var cases [][]byte
	for range 2000 {
		v := r.NormFloat64() * math.Pow(10, float64(r.IntN(20)-10))
		ts := []int64{0, 1, 127, 128, 1_700_000_000_000, math.MaxInt64, -1, math.MinInt64, r.Int64N(1 << 62),
			r.Int64N(1 << r.IntN(63)), 1<<(7*(1+r.IntN(9))) - 1, 1 << (7 * r.IntN(9))}[r.IntN(12)] // every varint length
		common := stamp(value(nil, v), ts)
		cases = append(cases, common,
			value(stamp(nil, ts), v), // swapped
			stamp(common, ts+1),      // repeated: the last wins
			protowire.AppendVarint(protowire.AppendTag(slices.Clone(common), 5, protowire.VarintType), 9), // unknown
			common[:len(common)-1], // truncated
		)
	}
	fast := 0
	for i, b := range cases {
		want, wantErr := sampleGeneral(b)
		got, err := sample(b)
		require.Equal(t, wantErr == nil, err == nil, "case %d % x", i, b)
		require.Equal(t, math.Float64bits(want.V), math.Float64bits(got.V), "case %d % x", i, b)
		require.Equal(t, want.T, got.T, "case %d % x", i, b)
		if len(b) >= 11 && len(b) <= 19 && b[0] == 0x09 && b[9] == 0x10 && err == nil {
			fast++
		}
	}
	require.Greater(t, fast, 1000)
}

// TestDecodeFastPathEdgeCases compares the fast paths (labelRunV1/V2.read, seriesV1Common,
// seriesV2Common) with decoder.general on the label sets their shortcuts decide differently:
// names sharing their first byte (compared whole), names starting with a zero byte (noLabel and
// the "\x00" before a first RW 2.0 name), duplicates and disorder within one first byte, strings
// at and past the one-byte lengths of LabelsData, and a series whose fields leave the common
// shape after its samples (rolled back). Each alone, with and without a limit, and all in one
// request.
func TestDecodeFastPathEdgeCases(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	sets := [][]string{
		{"__name__", "m", "name", "x", "namespace", "y"},
		{"__name__", "m", "a", "1", "ab", "2", "abc", "3", "b", "4"},
		{"\x00", "z", "__name__", "m"},
		{"\x00a", "z", "\x00b", "z", "__name__", "m"},
		{"\x00", "z", "\x00", "y", "__name__", "m"},
		{"__name__", "m", "job", "a", "job", "b"},
		{"__name__", "m", "ab", "1", "aa", "2"},
		{"__name__", "m", "b", "1", "a", "2"},
		{"__name__", "m", "l", long(120)},
		{"__name__", "m", "l", long(254)},
		{"__name__", "m", "l", long(255)},
		{"__name__", "m", long(254), "v"},
		{"__name__", "m", long(300), "v"},
		{"__name__", "m", "a", "é"},
		{"__name__", "m", "a", "\xff"},
		{"__name__", "m", "__type__", "counter"},
		{"__name__", "m", "a", ""},
		{"a", "1"},
	}
	var all []ts
	for i, ls := range sets {
		s := ts{labels: ls, samples: []batch.Sample{smp(1_700_000_000_000+int64(i), float64(i)), smp(-5, 1)}}
		if i%3 == 0 {
			s.exemplars = 1 // after the samples: leaves the common shape
		}
		all = append(all, s)
	}
	encoded := map[string]int{} // series with LabelsData, by case
	requests := [][]ts{all}
	for _, s := range all {
		requests = append(requests, []ts{s})
	}
	for i, ss := range requests {
		for _, lim := range []limits{{}, {maxLabels: 3, maxNameLen: 10, maxValueLen: 130}} {
			v1, v2 := marshal(t, v1Message(nil, ss...)), marshal(t, v2Message(ss...))
			for _, c := range []struct {
				name   string
				decode func(*decoder, []byte) error
				data   []byte
			}{
				{"v1", (*decoder).decodeV1, v1},
				{"v2", (*decoder).decodeV2, v2},
				{"v1 words", (*decoder).decodeV1, append(make([]byte, 0, len(v1)+wordSlack), v1...)},
				{"v2 words", (*decoder).decodeV2, append(make([]byte, 0, len(v2)+wordSlack), v2...)},
			} {
				ref := &decoder{lim: lim, general: true}
				refErr := c.decode(ref, c.data)
				d := &decoder{lim: lim}
				err := c.decode(d, c.data)
				require.Equal(t, refErr, err, "request %d, %s", i, c.name)
				encoded[c.name] += requireSameDecode(t, ref, d, fmt.Sprintf("request %d, %s", i, c.name))
			}
		}
	}
	for _, c := range []string{"v1", "v2", "v1 words", "v2 words"} {
		require.Positive(t, encoded[c], c)
	}
}

// TestDecodeV2SymbolsLast: a request whose symbols follow its series, with no room after it,
// has symbols that copyWords may not read past (the last ones, within wordSlack-1 bytes of its
// end): labelRunV2.read leaves the labels that reference them to the general path, and the
// result is the same.
func TestDecodeV2SymbolsLast(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 300 {
		var ss []ts
		for range 1 + r.IntN(4) {
			s := randomSeries(r, []string{"up", "x"})
			s.histograms, s.exemplars = 0, 0
			ss = append(ss, s)
		}
		msg := marshal(t, v2Message(ss...))
		// The same fields, series first, then symbols (protobuf allows any order).
		var series, symbols []byte
		for b := msg; len(b) > 0; {
			num, _, n := protowire.ConsumeField(b)
			require.Positive(t, n)
			if num == 4 {
				symbols = append(symbols, b[:n]...)
			} else {
				series = append(series, b[:n]...)
			}
			b = b[n:]
		}
		reordered := append(series, symbols...)
		reordered = reordered[:len(reordered):len(reordered)]
		ref := &decoder{general: true}
		refErr := ref.decodeV2(reordered)
		d := &decoder{}
		err := d.decodeV2(reordered)
		require.Equal(t, refErr, err, "request %d", i)
		require.Equal(t, record(&ref.b), record(&d.b), "request %d", i)
		require.Equal(t, ref.rejectedSeries, d.rejectedSeries, "request %d", i)
		require.Equal(t, ref.first, d.first, "request %d", i)
		require.LessOrEqual(t, d.copyable, len(d.symbols))
		if last := d.symbols[len(d.symbols)-1]; len(last) > 0 {
			require.Less(t, d.copyable, len(d.symbols), "request %d: the last symbol is not copyable", i)
		}
	}
}

// TestDecodeV2SeriesTagForms: the second pass of parseV2 starts at the first series field the
// first pass saw, whichever way its tag is written: a request whose series fields have their tag
// in two bytes (a valid, if unusual, varint) decodes as the usual one does.
func TestDecodeV2SeriesTagForms(t *testing.T) {
	ss := realisticSeries(3)
	msg := marshal(t, v2Message(ss...))
	var alt []byte
	for b := msg; len(b) > 0; {
		num, _, n := protowire.ConsumeField(b)
		require.Positive(t, n)
		if num == 5 {
			alt = append(alt, 0x80|5<<3|byte(protowire.BytesType), 0x00) // tag 0x2a in two bytes
			alt = append(alt, b[1:n]...)
		} else {
			alt = append(alt, b[:n]...)
		}
		b = b[n:]
	}
	want := &decoder{}
	require.NoError(t, want.decodeV2(msg))
	require.Len(t, want.b.Series, len(ss))
	for _, general := range []bool{false, true} {
		d := &decoder{general: general}
		require.NoError(t, d.decodeV2(alt))
		require.Equal(t, record(&want.b), record(&d.b), "general %v", general)
	}
}
