package detector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// checkpointSeries sets the size of BenchmarkCheckpoint, which measures writing and reading a
// checkpoint: go test ./detector -run '^$' -bench Checkpoint -benchtime 1x -checkpoint.series 1000000
var checkpointSeries = flag.Int("checkpoint.series", 100_000, "series in BenchmarkCheckpoint")

// checkpointFixture is a store with gauges, counters, a stale series, odd label names and a
// series still learning, each fed some hours of samples.
func checkpointFixture(t *testing.T) *testStore {
	s := newTestStore(t, testOptions("a_", ""))
	day := func(i int) float64 { return 100 + 50*math.Sin(float64(i)/40) + float64(i%7) }
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, ramp(300, 0, time.Minute, day), "__name__", "a_gauge", "job", "x"),
		series(batch.Counter, ramp(300, 0, time.Minute, func(i int) float64 { return float64(i * 60) }), "__name__", "req_total", "job", "x"),
		series(batch.Gauge, ramp(300, 0, time.Minute, day), "__name__", "b_gauge", "service.name", "odd", "z", `quote"d`),
		series(batch.Gauge, ramp(3, 0, time.Minute, day), "__name__", "young", "job", "y"),
		series(batch.Gauge, append(ramp(10, 0, time.Minute, day), batch.Sample{T: 11 * 60_000, V: math.Float64frombits(value.StaleNaN)}), "__name__", "gone", "job", "y"),
	}}))
	return s
}

func writeCheckpoint(t *testing.T, s *testStore) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.WriteCheckpoint(&buf)
	require.NoError(t, err)
	require.Equal(t, s.Len(), n)
	return buf.Bytes()
}

// entries returns every series of the store by its labels.
func entries(s *Store) map[string]entry {
	out := map[string]entry{}
	for k := range s.shards {
		sh := &s.shards[k]
		for i := int32(0); i < sh.used; i++ {
			if e := sh.at(i); e.flags&flagInUse != 0 {
				out[e.labels.String()] = *e
			}
		}
	}
	return out
}

func TestCheckpointRoundTrip(t *testing.T) {
	src := checkpointFixture(t)
	ckpt := writeCheckpoint(t, src)

	dst := newTestStore(t, testOptions("a_", ""))
	n, err := dst.LoadCheckpoint(bytes.NewReader(ckpt))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	require.Equal(t, 5, dst.Len())
	require.Equal(t, 5.0, testutil.ToFloat64(dst.metrics.series))

	want, got := entries(src.Store), entries(dst.Store)
	require.Len(t, got, len(want))
	for k, w := range want {
		g, ok := got[k]
		require.True(t, ok, k)
		require.Equal(t, w.stream, g.stream, k)
		require.Equal(t, w.res, g.res, k)
		require.Equal(t, w.fp, g.fp, k)
		require.Equal(t, w.lastSeen, g.lastSeen, k)
		require.Equal(t, w.flags, g.flags, k)
		require.True(t, labels.Equal(w.labels, g.labels), k)
	}
	require.Equal(t, scores(t, src), scores(t, dst), "/scores is the same right after the restore")

	// Both go on exactly alike: the restored models are the learned ones.
	next := batch.Batch{Series: []batch.Series{
		series(batch.Gauge, ramp(5, 300*60_000, time.Minute, func(i int) float64 { return 120 + float64(i) }), "__name__", "a_gauge", "job", "x"),
		series(batch.Counter, ramp(5, 300*60_000, time.Minute, func(i int) float64 { return float64((300 + i) * 60) }), "__name__", "req_total", "job", "x"),
		series(batch.Gauge, ramp(5, 300*60_000, time.Minute, func(i int) float64 { return 1 }), "__name__", "gone", "job", "y"),
	}}
	require.NoError(t, src.Append(&next))
	require.NoError(t, dst.Append(&next))
	require.Equal(t, scores(t, src), scores(t, dst))
	for k, w := range entries(src.Store) {
		require.Equal(t, w.stream, entries(dst.Store)[k].stream, k)
	}

	// A checkpoint of the restored store is the same bytes.
	require.Equal(t, writeCheckpoint(t, src), writeCheckpoint(t, dst))
}

func TestCheckpointEmpty(t *testing.T) {
	src := newTestStore(t, testOptions())
	ckpt := writeCheckpoint(t, src)
	require.Len(t, ckpt, headerSize+1+8+4)
	n, err := newTestStore(t, testOptions()).LoadCheckpoint(bytes.NewReader(ckpt))
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestCheckpointSettingsChanged(t *testing.T) {
	src := checkpointFixture(t)
	ckpt := writeCheckpoint(t, src)

	// Rule 0 (a_) changes its settings, rule 1 keeps them, and a new first rule takes "young"
	// with the settings rule 1 has: only a_gauge starts over.
	opts := testOptions("young", "a_", "")
	opts.Settings[1].Sensitivity = 3
	dst := newTestStore(t, opts)
	_, err := dst.LoadCheckpoint(bytes.NewReader(ckpt))
	require.NoError(t, err)

	before := entries(src.Store)
	next := func(name string) batch.Series {
		return series(batch.Gauge, []batch.Sample{{T: 400 * 60_000, V: 110}}, "__name__", name, "job", map[bool]string{true: "x", false: "y"}[name == "a_gauge"])
	}
	require.NoError(t, dst.Append(&batch.Batch{Series: []batch.Series{next("a_gauge"), next("young")}}))
	after := entries(dst.Store)
	ag := `{__name__="a_gauge", job="x"}`
	var fresh Stream
	fresh.Push(400*60_000, 110, &opts.Settings[1])
	require.Equal(t, fresh, after[ag].stream, "changed settings: the model starts over")

	yg := `{__name__="young", job="y"}`
	kept := before[yg].stream
	kept.Push(400*60_000, 110, &opts.Settings[0])
	require.Equal(t, kept, after[yg].stream, "same settings fingerprint under another rule: the model is kept")
}

func TestCheckpointSeriesLimitAndMerge(t *testing.T) {
	src := checkpointFixture(t)
	ckpt := writeCheckpoint(t, src)

	opts := testOptions("a_", "")
	opts.MaxSeries = 3
	dst := newTestStore(t, opts)
	n, err := dst.LoadCheckpoint(bytes.NewReader(ckpt))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, 3, dst.Len())

	// Into a store that already has series: those keep their state, the others are added.
	dst = newTestStore(t, testOptions("a_", ""))
	require.NoError(t, dst.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, []batch.Sample{{T: 0, V: 7}}, "__name__", "a_gauge", "job", "x"),
		series(batch.Gauge, []batch.Sample{{T: 0, V: 7}}, "__name__", "other"),
	}}))
	live := entries(dst.Store)[`{__name__="a_gauge", job="x"}`].stream
	n, err = dst.LoadCheckpoint(bytes.NewReader(ckpt))
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Equal(t, 6, dst.Len())
	require.Equal(t, live, entries(dst.Store)[`{__name__="a_gauge", job="x"}`].stream)
}

func TestCheckpointRejectsDamage(t *testing.T) {
	src := checkpointFixture(t)
	ckpt := writeCheckpoint(t, src)
	load := func(b []byte) error {
		dst := newTestStore(t, testOptions())
		n, err := dst.LoadCheckpoint(bytes.NewReader(b))
		if err != nil {
			require.Zero(t, n)
			require.Zero(t, dst.Len(), "a failed load adds nothing")
		}
		return err
	}
	// Every truncation, and a flipped bit in every byte, is refused.
	for i := 0; i < len(ckpt); i++ {
		err := load(ckpt[:i])
		require.Error(t, err, "truncated at %d", i)
		require.True(t, errors.Is(err, ErrCheckpointCorrupt) || errors.Is(err, ErrCheckpointLayout), "truncated at %d: %v", i, err)
	}
	for i := 0; i < len(ckpt); i++ {
		b := bytes.Clone(ckpt)
		b[i] ^= 1 << (i % 8)
		require.Error(t, load(b), "bit flipped in byte %d", i)
	}
	require.ErrorContains(t, load(append(bytes.Clone(ckpt), 0)), "data after the trailer")

	// Another model layout or format version is refused as such, whatever follows.
	for _, off := range []int{8, 16, 24} {
		b := bytes.Clone(ckpt)
		b[off]++
		require.ErrorIs(t, load(b), ErrCheckpointLayout)
	}
}

// fixCRC rewrites the trailer's checksum of a checkpoint, so that tests and the fuzzer reach the
// decoder's own checks behind it.
func fixCRC(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

func TestCheckpointRejectsBadRecords(t *testing.T) {
	rec := func(lbls ...string) []byte {
		var e entry
		e.labels = labels.New()
		b := labels.NewScratchBuilder(0)
		for i := 0; i < len(lbls); i += 2 {
			b.Add(lbls[i], lbls[i+1])
		}
		e.labels = b.Labels()
		b2, _ := appendRecord(nil, &e)
		return b2
	}
	build := func(recs ...[]byte) []byte {
		var b []byte
		b = append(b, checkpointMagic...)
		b = binary.LittleEndian.AppendUint32(b, checkpointVersion)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint64(b, modelLayout)
		b = binary.LittleEndian.AppendUint64(b, uint64(modelSize))
		for _, r := range recs {
			b = append(b, r...)
		}
		b = append(b, tagEnd)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(recs)))
		return fixCRC(append(b, 0, 0, 0, 0))
	}
	load := func(b []byte) (int, error) {
		return newTestStore(t, testOptions()).LoadCheckpoint(bytes.NewReader(b))
	}
	n, err := load(build(rec("__name__", "a"), rec("__name__", "b", "job", "x")))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	for name, b := range map[string][]byte{
		"repeated series": build(rec("__name__", "a"), rec("__name__", "a")),
		"unsorted labels": build(rec("job", "x", "__name__", "a")),
		"repeated label":  build(rec("__name__", "a", "__name__", "b")),
		"no labels":       build(rec()),
		"empty name":      build(rec("", "x")),
		"unknown tag":     build([]byte{7}),
	} {
		_, err := load(b)
		require.ErrorIs(t, err, ErrCheckpointCorrupt, name)
	}
}

func TestCheckpointLeavesOutBackfilling(t *testing.T) {
	s := checkpointFixture(t)
	s.SetBackfill(requestAll{})
	require.NoError(t, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, []batch.Sample{{T: 0, V: 1}}, "__name__", "new_one"),
	}}))
	require.Equal(t, 6, s.Len())
	dst := newTestStore(t, testOptions("a_", ""))
	var buf bytes.Buffer
	n, err := s.WriteCheckpoint(&buf)
	require.NoError(t, err)
	require.Equal(t, 5, n, "the series waiting for its backfill is left out")
	n, err = dst.LoadCheckpoint(&buf)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	require.False(t, dst.Tracks(labels.FromStrings("__name__", "new_one")))
}

type requestAll struct{}

func (requestAll) RequestBackfill(labels.Labels, bool) bool { return true }

func TestCheckpointWhileIngesting(t *testing.T) {
	s := newTestStore(t, testOptions())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var b batch.Batch
			for j := range 50 {
				b.Series = append(b.Series, series(batch.Gauge, []batch.Sample{{T: int64(i) * 1000, V: float64(i)}},
					"__name__", "m", "i", fmt.Sprint((i*50+j)%3000)))
			}
			require.NoError(t, s.Append(&b))
		}
	}()
	for range 20 {
		var buf bytes.Buffer
		n, err := s.WriteCheckpoint(&buf)
		require.NoError(t, err)
		m, err := newTestStore(t, testOptions()).LoadCheckpoint(&buf)
		require.NoError(t, err)
		require.Equal(t, n, m)
	}
	close(stop)
	wg.Wait()
}

func TestCheckpointFile(t *testing.T) {
	dir := t.TempDir()
	src := checkpointFixture(t)
	c, err := NewCheckpointer(src.Store, filepath.Join(dir, "sub"), src.reg)
	require.NoError(t, err)
	st, err := c.Save()
	require.NoError(t, err)
	require.Equal(t, 5, st.Series)
	fi, err := os.Stat(c.Path())
	require.NoError(t, err)
	require.Equal(t, fi.Size(), st.Bytes)
	require.Equal(t, float64(st.Bytes), testutil.ToFloat64(c.size))
	require.Positive(t, testutil.ToFloat64(c.lastSuccess))
	_, err = os.Stat(c.Path() + ".tmp")
	require.ErrorIs(t, err, os.ErrNotExist)

	// A temporary file left by a crash is removed; the checkpoint loads.
	require.NoError(t, os.WriteFile(c.Path()+".tmp", []byte("half a checkpoint"), 0o644))
	dst := newTestStore(t, testOptions("a_", ""))
	dc, err := NewCheckpointer(dst.Store, filepath.Join(dir, "sub"), dst.reg)
	require.NoError(t, err)
	st, err = dc.Restore()
	require.NoError(t, err)
	require.Equal(t, 5, st.Series)
	require.Equal(t, 5.0, testutil.ToFloat64(dc.restored))
	_, err = os.Stat(c.Path() + ".tmp")
	require.ErrorIs(t, err, os.ErrNotExist)

	// No checkpoint: nothing to do, no error.
	st, err = LoadCheckpointFile(newTestStore(t, testOptions()).Store, filepath.Join(dir, "none"))
	require.NoError(t, err)
	require.Zero(t, st.Series)

	// A corrupt checkpoint is moved aside and reported; the store starts empty.
	b, err := os.ReadFile(c.Path())
	require.NoError(t, err)
	b[len(b)/2] ^= 0xff
	require.NoError(t, os.WriteFile(c.Path(), b, 0o644))
	empty := newTestStore(t, testOptions())
	ec, err := NewCheckpointer(empty.Store, filepath.Join(dir, "sub"), empty.reg)
	require.NoError(t, err)
	_, err = ec.Restore()
	var le *CheckpointLoadError
	require.ErrorAs(t, err, &le)
	require.ErrorIs(t, err, ErrCheckpointCorrupt)
	require.True(t, strings.HasPrefix(le.MovedTo, c.Path()+".corrupt-"), le.MovedTo)
	require.FileExists(t, le.MovedTo)
	require.NoFileExists(t, c.Path())
	require.Zero(t, empty.Len())
	require.Equal(t, 1.0, testutil.ToFloat64(ec.restoreFailures))
}

func TestModelLayout(t *testing.T) {
	require.False(t, hasPointers(reflect.TypeFor[model.Model]()), "model.Model must stay free of pointers")
	require.True(t, hasPointers(reflect.TypeFor[struct {
		A [2]int
		B *int
	}]()))
	require.True(t, hasPointers(reflect.TypeFor[struct{ S string }]()))

	// The description sees names, types, order and offsets.
	desc := func(t reflect.Type) string {
		var b strings.Builder
		describeType(&b, t)
		return b.String()
	}
	type v1 struct {
		A int64
		B [3]float32
	}
	type v2 struct {
		A int64
		B [4]float32
	}
	type v3 struct {
		B [3]float32
		A int64
	}
	type v4 struct {
		A int64
		C [3]float32
	}
	seen := map[string]bool{}
	for _, ty := range []reflect.Type{reflect.TypeFor[v1](), reflect.TypeFor[v2](), reflect.TypeFor[v3](), reflect.TypeFor[v4]()} {
		d := strings.ReplaceAll(desc(ty), ty.String(), "T")
		require.False(t, seen[d], d)
		seen[d] = true
	}
	require.NotZero(t, ModelLayout())
}

// BenchmarkCheckpoint writes and reads back, through a file, a checkpoint of
// -checkpoint.series series (default 100k; the figure is 1M) with the eight labels of a
// typical Kubernetes series, and reports seconds per write and read and bytes per series:
//
//	go test ./detector -run '^$' -bench Checkpoint -benchtime 1x -checkpoint.series 1000000
func BenchmarkCheckpoint(b *testing.B) {
	n := *checkpointSeries
	opts := testOptions()
	opts.MaxSeries = 0
	s := NewStore(opts, nil)
	bs := benchBatches(n)
	for range 4 {
		for _, x := range bs {
			if err := s.Append(x); err != nil {
				b.Fatal(err)
			}
		}
		advance(bs)
	}
	if s.Len() != n {
		b.Fatalf("%d series, want %d", s.Len(), n)
	}
	path := filepath.Join(b.TempDir(), "checkpoint")
	var write, read time.Duration
	var bytes int64
	rounds := 0
	b.ResetTimer()
	for b.Loop() {
		w, err := WriteCheckpointFile(s, path)
		if err != nil {
			b.Fatal(err)
		}
		dst := NewStore(opts, nil)
		r, err := LoadCheckpointFile(dst, path)
		if err != nil || r.Series != n {
			b.Fatalf("read %d series of %d: %v", r.Series, n, err)
		}
		write, read, bytes = write+w.Duration, read+r.Duration, w.Bytes
		rounds++
	}
	b.ReportMetric(write.Seconds()/float64(rounds), "write-s")
	b.ReportMetric(read.Seconds()/float64(rounds), "read-s")
	b.ReportMetric(float64(bytes)/float64(n), "bytes/series")
}

func FuzzLoadCheckpoint(f *testing.F) {
	s := NewStore(testOptions(), nil)
	require.NoError(f, s.Append(&batch.Batch{Series: []batch.Series{
		series(batch.Gauge, ramp(20, 0, time.Minute, func(i int) float64 { return float64(i % 5) }), "__name__", "g", "job", "x"),
		series(batch.Counter, ramp(20, 0, time.Minute, func(i int) float64 { return float64(i * 10) }), "__name__", "c_total"),
	}}))
	var buf bytes.Buffer
	_, err := s.WriteCheckpoint(&buf)
	require.NoError(f, err)
	f.Add(buf.Bytes(), false)
	f.Add(buf.Bytes()[:100], true)
	f.Add([]byte(checkpointMagic), false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = fixCRC(b) // reach the record decoder behind the checksum
		}
		dst := NewStore(testOptions(), nil)
		n, err := dst.LoadCheckpoint(bytes.NewReader(b))
		if err != nil {
			require.Zero(t, n)
			require.Zero(t, dst.Len())
			return
		}
		require.Equal(t, n, dst.Len())
		// Whatever was loaded can be scored, exposed and written again.
		for _, e := range entries(dst) {
			var ls []batch.Label
			e.labels.Range(func(l labels.Label) { ls = append(ls, batch.Label{Name: l.Name, Value: l.Value}) })
			require.NoError(t, dst.Append(&batch.Batch{Series: []batch.Series{{Labels: ls, Samples: []batch.Sample{{T: 1 << 40, V: 1}}}}}))
		}
		require.NoError(t, dst.WriteScores(&bytes.Buffer{}))
		var out bytes.Buffer
		m, err := dst.WriteCheckpoint(&out)
		require.NoError(t, err)
		require.Equal(t, n, m)
	})
}

func BenchmarkWriteCheckpoint(b *testing.B) {
	opts := testOptions()
	opts.MaxSeries = 0
	s := NewStore(opts, nil)
	for _, bt := range benchBatches(200_000) {
		_ = s.Append(bt)
	}
	b.ReportAllocs()
	var size int64
	for b.Loop() {
		size, _, _ = s.writeCheckpoint(io.Discard)
	}
	b.SetBytes(size)
}

func BenchmarkLoadCheckpoint(b *testing.B) {
	opts := testOptions()
	opts.MaxSeries = 0
	s := NewStore(opts, nil)
	for _, bt := range benchBatches(200_000) {
		_ = s.Append(bt)
	}
	var buf bytes.Buffer
	_, _ = s.WriteCheckpoint(&buf)
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := NewStore(opts, nil).LoadCheckpoint(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestCheckpointWriteError(t *testing.T) {
	s := checkpointFixture(t)
	for _, n := range []int{0, 100, len(writeCheckpoint(t, s)) - 4} {
		_, err := s.WriteCheckpoint(&failAfter{n: n})
		require.ErrorContains(t, err, "disk full", "failing after %d bytes", n)
	}
}
