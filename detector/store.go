// Package detector keeps one baseline per received series and scores every sample against it:
// the sharded series store, the per-series stream (counters to rates), and the exposition of the
// scores, cut into parts that the server formats on every core (a million series are over a
// gigabyte of text). It knows nothing of HTTP or flags; the server feeds it batches and serves
// what it writes.
package detector

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// Matcher picks the rule that scores a series. The config package's Config implements it; the
// detector takes the interface so that it does not depend on the file format.
type Matcher interface {
	// Match returns the index of the first rule whose selector matches the sorted labels.
	Match(lbls []batch.Label) (rule int, ok bool)
}

// Options are the parts of the configuration the store acts on. They can be replaced at run time
// with SetOptions (a config reload).
type Options struct {
	// Rules selects the series to score; Settings[i] are the settings of rule i.
	Rules    Matcher
	Settings []model.Settings
	// MaxSeries bounds the series tracked; new series beyond it are not tracked (counted).
	MaxSeries int
	// StaleAfter hides a series from the exposition when no sample came for this long.
	StaleAfter time.Duration
	// SeriesExpiry forgets a series (model and labels) when no sample came for this long.
	SeriesExpiry time.Duration
}

const (
	// A request's series are scored a shard at a time, each shard's lookups prefetched ahead
	// (appendShard): 32 shards leave some 60 series of a 2000-series request to each, enough for
	// the loads of one series to overlap the work on the others, where 256 left 8 and each
	// shard began with a stall (make loadtest, alternated: 0.433 -> 0.395 CPU-s per million).
	// Concurrent requests and scrapes rarely meet on a shard even so.
	shardBits = 5
	numShards = 1 << shardBits
	// Entries live in fixed-size chunks so that growing a shard never copies a million models.
	// 256 entries of 704 bytes are 22 pages of 8 KiB exactly: a chunk wastes nothing of the
	// pages the Go heap gives it (TestChunkFillsPages keeps it so).
	chunkBits = 8
	chunkSize = 1 << chunkBits
)

// Store is the set of tracked series with their models and last results. It is safe for
// concurrent use: ingestion takes one shard lock per series, the exposition copies a shard at a
// time, so neither stops the other for long.
type Store struct {
	shards  [numShards]shard
	opts    atomic.Pointer[ruleSet]
	series  atomic.Int64
	metrics *storeMetrics
	// backfill is told of new series (backfill.go); nil without a backfill.
	backfill atomic.Pointer[backfillHook]
	// families are the metric types RW 1.0 senders sent as metadata, by family name.
	families familyTypes
	// out, when set, receives the points of every Append (SetOutput).
	out atomic.Pointer[outputRef]
	// now is the wall clock, used only for liveness (stale_after, series_expiry) and the sample
	// window, never for scoring. Tests replace it.
	now func() time.Time
	// maxAge and maxAhead bound the timestamps Append accepts against the wall clock, in
	// milliseconds; 0 means no bound (SetSampleWindow).
	maxAge, maxAhead atomic.Int64
	// limitSkips counts the samples of new series not tracked because of MaxSeries.
	limitSkips atomic.Uint64
}

// ruleSet is one generation of Options with what the hot path derives from them.
type ruleSet struct {
	Options
	fingerprints []uint64
	gen          uint32
}

type shard struct {
	mu     sync.Mutex
	index  index
	chunks [][]entry
	free   []int32
	used   int32 // high-water mark of entry slots
}

// entry flags.
const (
	flagLive      = 1 << iota // not ended by a stale marker
	flagHasResult             // at least one sample scored since creation or model reset
	flagOddNames              // a label name needs sanitising in the exposition
	flagInUse                 // the slot holds a series
)

// entry is one series. The fields read for every sample come first, the model last, so that
// scoring a sample reads the entry's first lines and the model's hour buckets for its time.
type entry struct {
	labels labels.Labels
	// check is checkData of the labels: with the index tag and the shard, the series' identity
	// (see labels.go).
	check    uint64
	fp       uint32 // fingerprint of the settings the model was learned with (fpKey)
	gen      uint32
	lastSeen uint32 // wall-clock unix seconds of the last sample received
	rule     uint16
	flags    uint8
	res      model.Result
	stream   Stream
}

// observed is the value the exposition shows as anomaly_value: the last the model saw, NaN
// while the series waits for its backfill (its model is about to be replaced).
func (e *entry) observed() float64 {
	if e.flags&flagBackfilling != 0 {
		return math.NaN()
	}
	return e.stream.Observed()
}

// fpKey is a settings fingerprint as an entry keeps it, folded to 32 bits: it only tells
// whether a rule's settings changed since the model was learned, and 4 bytes of every series
// matter at a million of them (a change that kept the folded value, one in four billion, would
// keep the model instead of starting over).
func fpKey(fp uint64) uint32 { return uint32(fp ^ fp>>32) }

// flagPlain marks a series whose labels go to the exposition as they are: no name to sanitise
// or rename, no value to escape.
const flagPlain = flagBackfilling << 1

// NewStore returns an empty store with the given options, registering its metrics with reg.
func NewStore(opts Options, reg prometheus.Registerer) *Store {
	s := &Store{metrics: newStoreMetrics(reg), now: time.Now}
	s.SetOptions(opts)
	s.metrics.series.Set(0)
	return s
}

// SetOptions installs new options. Series whose rule settings did not change keep their models;
// the others start over on their next sample, and series no rule selects any more are dropped then.
func (s *Store) SetOptions(opts Options) {
	rs := &ruleSet{Options: opts, fingerprints: make([]uint64, len(opts.Settings))}
	for i := range opts.Settings {
		rs.fingerprints[i] = opts.Settings[i].Fingerprint()
	}
	if old := s.opts.Load(); old != nil {
		rs.gen = old.gen + 1
	}
	s.opts.Store(rs)
}

func (sh *shard) at(i int32) *entry {
	return &sh.chunks[i>>chunkBits][i&(chunkSize-1)]
}

// lookup finds the series with hash h and labels ls.
func (sh *shard) lookup(h uint64, ls []batch.Label) *entry {
	var buf [512]byte
	return sh.lookupCheck(h, checkData(batch.AppendEncoded(buf[:0], ls)))
}

// lookupCheck finds the series with hash h and check c (checkData).
func (sh *shard) lookupCheck(h, c uint64) *entry {
	for cur := sh.index.find(h); ; {
		i := cur.next()
		if i < 0 {
			return nil
		}
		if e := sh.at(i); e.check == c {
			return e
		}
	}
}

// insert copies the labels (they alias the request buffer) into a new entry.
func (sh *shard) insert(h uint64, ls []batch.Label) *entry {
	var buf [512]byte
	enc := batch.AppendEncoded(buf[:0], ls)
	return sh.insertData(h, checkData(enc), enc, ls)
}

// insertData adds the series with hash h, check c, labels ls and their encoding enc, copying
// enc.
func (sh *shard) insertData(h, c uint64, enc []byte, ls []batch.Label) *entry {
	var i int32
	if n := len(sh.free); n > 0 {
		i = sh.free[n-1]
		sh.free = sh.free[:n-1]
	} else {
		i = sh.used
		sh.used++
		if int(i>>chunkBits) == len(sh.chunks) {
			sh.chunks = append(sh.chunks, make([]entry, chunkSize))
		}
	}
	odd, plain := false, true
	for _, l := range ls {
		if !legacyName(l.Name) {
			odd = true
		}
		if l.Name == MetricLabel || hasPrefixExported(l.Name) || needsEscape(l.Value) {
			plain = false
		}
	}
	e := sh.at(i)
	*e = entry{labels: labelsFromData(enc, ls), check: c, flags: flagInUse | flagLive}
	switch {
	case odd:
		e.flags |= flagOddNames
	case plain:
		e.flags |= flagPlain
	}
	sh.index.add(h, i)
	return e
}

// remove drops entry i, whose series has hash h, from the index and frees its slot.
func (sh *shard) remove(i int32, h uint64) {
	e := sh.at(i)
	sh.index.delete(h, i)
	*e = entry{}
	sh.free = append(sh.free, i)
}

// indexOf returns the slot of e, whose series has hash h, -1 if it is not in the index.
func (sh *shard) indexOf(e *entry, h uint64) int32 {
	for c := sh.index.find(h); ; {
		i := c.next()
		if i < 0 || sh.at(i) == e {
			return i
		}
	}
}

// isCounter says whether a series is scored on its rate. Metadata wins; without it the naming
// conventions decide. Histogram and summary parts (_count, _sum, _bucket) are counters, summary
// quantiles and gauge histograms are not.
func IsCounter(t batch.MetricType, name string) bool {
	switch t {
	case batch.Counter:
		return true
	case batch.Gauge, batch.GaugeHistogram, batch.Info, batch.StateSet:
		return false
	case batch.Histogram, batch.Summary:
		return hasSuffix(name, "_count") || hasSuffix(name, "_sum") || hasSuffix(name, "_bucket")
	}
	return hasSuffix(name, "_total") || hasSuffix(name, "_count") || hasSuffix(name, "_sum") || hasSuffix(name, "_bucket")
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

func metricName(ls []batch.Label) string { return labelValue(ls, prommodel.MetricNameLabel) }

// isOwnOutput recognises series derived from the exporter's own output, which a sender that
// selects what to send by job (not by metric name) sends back: the output series themselves (an
// output family name and our metric label), the mixin's recording rules over them (a colon-named
// rule whose middle is anomaly_..., but not anomaly_exporter_..., the self metrics), and the
// ALERTS series of the mixin's Anomaly* alerts. Scoring them would score scores, and alert on
// alerts, one level deeper every round.
func isOwnOutput(ls []batch.Label) bool {
	name := metricName(ls)
	switch {
	case name == "ALERTS" || name == "ALERTS_FOR_STATE":
		return strings.HasPrefix(labelValue(ls, "alertname"), "Anomaly")
	case strings.Contains(name, ":anomaly_"):
		return !strings.Contains(name, ":anomaly_exporter_")
	}
	for _, f := range families {
		if f.name == name {
			return hasLabel(ls, MetricLabel)
		}
	}
	return false
}

func labelValue(ls []batch.Label, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

func hasLabel(ls []batch.Label, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

// appendStats are the counts of one Append, added to the metrics once per batch.
type appendStats struct {
	outcomes                  [numOutcomes]int
	noRule, overLimit, histos int
	ownOutput                 int
	created, dropped          int
	backfilling               int
	tooOld, tooNew            int
	// minT and maxT are the sample window of this Append; scratch holds the samples kept.
	minT, maxT int64
	scratch    []batch.Sample
	// points collects the scored points for the Output; nil when there is none.
	points *[]Point
	// labels holds the labels of a series built from its LabelsData (batch.Series.LabelsOf),
	// for the series the store needs them of: new ones, and those of an older rule generation.
	labels []batch.Label
	// instant is the time of the last sample scored, valid when instantOK: the series of a
	// request mostly share their timestamp, and with it what the model derives from it.
	instant   model.Instant
	instantOK bool
}

// appendScratch is the working memory of one Append, pooled.
type appendScratch struct {
	// enc holds the encoded labels of the batch's series back to back.
	enc []byte
	// labels is appendStats.labels' memory, kept with the scratch.
	labels []batch.Label
	items  []appendItem
	// kept holds the samples within the window of series that also had samples outside it.
	kept []batch.Sample
	// order lists items by shard, in batch order within a shard; start[k] is where shard k's
	// items begin in it.
	order []int32
	start [numShards + 1]int32
}

// appendItem is one series of the batch with samples to score.
type appendItem struct {
	hash     uint64 // hashData of the labels
	check    uint64 // checkData of the labels
	ser      *batch.Series
	samples  []batch.Sample // ser's samples within the window: all of them, usually
	off, end int32          // its labels' encoding: enc[off:end], or ser.LabelsData when off < 0
	head     int32          // its first candidate entry, looked up ahead; -1 if none
}

// maxPooledScratch bounds the label bytes of a scratch kept for reuse.
const maxPooledScratch = 4 << 20

var scratchPool = sync.Pool{New: func() any { return new(appendScratch) }}

// Append scores every float sample of the batch. It implements batch.Appender. It never fails:
// samples it does not score are counted by reason, and the sender is told they were accepted.
//
// The series are hashed first, then taken shard by shard, each shard's lock once per Append.
// Within a shard, every series' index slot is looked up and its entry read before any is
// scored, so that the memory loads of all of them overlap instead of waiting one after another
// (with a hundred thousand series and more, the store is far larger than the CPU caches, and
// these loads, not the arithmetic, are most of the cost).
func (s *Store) Append(b *batch.Batch) error {
	start := time.Now()
	rs := s.opts.Load()
	if len(b.Metadata) > 0 {
		s.families.learn(b.Metadata)
	}
	wall := s.now()
	now := uint32(wall.Unix())
	var st appendStats
	st.minT, st.maxT = math.MinInt64, math.MaxInt64
	if age := s.maxAge.Load(); age > 0 {
		st.minT = wall.UnixMilli() - age
	}
	if ahead := s.maxAhead.Load(); ahead > 0 {
		st.maxT = wall.UnixMilli() + ahead
	}
	out := s.out.Load()
	if out != nil {
		st.points = pointPool.Get().(*[]Point)
	}
	sc := scratchPool.Get().(*appendScratch)
	sc.enc, sc.items, sc.kept = sc.enc[:0], sc.items[:0], sc.kept[:0]
	st.labels = sc.labels
	for i := range b.Series {
		ser := &b.Series[i]
		st.histos += ser.Histograms
		samples := ser.Samples
		if len(samples) == 0 {
			continue
		}
		if !st.inWindow(samples) {
			kept := st.keepInWindow(samples)
			if len(kept) == 0 {
				continue
			}
			n := len(sc.kept)
			sc.kept = append(sc.kept, kept...)
			samples = sc.kept[n:len(sc.kept):len(sc.kept)]
		}
		if enc := ser.LabelsData; enc != nil {
			sc.items = append(sc.items, appendItem{hash: hashData(enc), check: checkData(enc), ser: ser, samples: samples, off: -1})
			continue
		}
		off := len(sc.enc)
		sc.enc = batch.AppendEncoded(sc.enc, ser.Labels)
		enc := sc.enc[off:]
		sc.items = append(sc.items, appendItem{hash: hashData(enc), check: checkData(enc), ser: ser, samples: samples, off: int32(off), end: int32(len(sc.enc))})
	}
	sc.sortByShard()
	// Concurrent Appends start at different shards, so that they do not queue behind each other
	// all the way round.
	first := rand.Uint32()
	for n := range uint32(numShards) {
		k := (first + n) % numShards
		if group := sc.order[sc.start[k]:sc.start[k+1]]; len(group) > 0 {
			s.appendShard(rs, &s.shards[k], sc, group, now, &st)
		}
	}
	clear(sc.items) // drop the references to the batch
	sc.labels = st.labels[:0]
	clear(sc.labels[:cap(sc.labels)])
	if cap(sc.enc) <= maxPooledScratch && cap(sc.kept) <= maxPooledScratch/16 {
		scratchPool.Put(sc)
	}
	if st.overLimit > 0 {
		s.limitSkips.Add(uint64(st.overLimit))
	}
	s.metrics.observe(&st, time.Since(start), s.series.Load())
	if out != nil {
		st.flush(out.o)
	}
	return nil
}

// labelsOf returns the labels of ser, built in st.labels when the decoder left them in
// LabelsData only. They are valid until the next call.
func (st *appendStats) labelsOf(ser *batch.Series) []batch.Label {
	if len(ser.Labels) > 0 {
		return ser.Labels
	}
	st.labels = ser.LabelsOf(st.labels[:0])
	return st.labels
}

// instantOf returns the Instant of t, computed anew only when t is not the last one asked for.
func (st *appendStats) instantOf(t int64) *model.Instant {
	if !st.instantOK || st.instant.T() != t {
		st.instant, st.instantOK = model.At(t), true
	}
	return &st.instant
}

// sortByShard fills order and start: a counting sort of the items by shard, stable.
func (sc *appendScratch) sortByShard() {
	sc.start = [numShards + 1]int32{}
	for i := range sc.items {
		sc.start[sc.items[i].hash>>(64-shardBits)+1]++
	}
	for k := 1; k <= numShards; k++ {
		sc.start[k] += sc.start[k-1]
	}
	next := sc.start
	sc.order = slices.Grow(sc.order[:0], len(sc.items))[:len(sc.items)]
	for i := range sc.items {
		k := sc.items[i].hash >> (64 - shardBits)
		sc.order[next[k]] = int32(i)
		next[k]++
	}
}

// appendShard scores the items of group, which all fall in shard sh, under one hold of its lock.
//
// With a hundred thousand series and more, the store is far larger than the CPU caches, and
// waiting for memory, not the arithmetic, would be most of the cost: each series' index slot,
// entry and model are cache misses, a few hundred nanoseconds if taken one after another. So the
// index slots of the whole group are prefetched, then its entries and models: the CPU loads them
// all at once, while it works. The stored labels are not read (see labels.go).
func (s *Store) appendShard(rs *ruleSet, sh *shard, sc *appendScratch, group []int32, now uint32, st *appendStats) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, j := range group {
		sh.index.prefetch(sc.items[j].hash)
	}
	for _, j := range group {
		it := &sc.items[j]
		if it.head = sh.index.first(it.hash); it.head >= 0 {
			prefetchEntry(sh.at(it.head), it.samples[0].T)
		}
	}
	for _, j := range group {
		s.appendSeries(rs, sh, sc, &sc.items[j], now, st)
	}
}

// labelsData is the encoding of the item's labels.
func (it *appendItem) labelsData(sc *appendScratch) []byte {
	if it.off >= 0 {
		return sc.enc[it.off:it.end]
	}
	return it.ser.LabelsData
}

// prefetchEntry prefetches what scoring a sample at t reads of e: its fields up to the model,
// the model's head and its hour buckets for t. It takes the buckets' offsets from t alone
// (model.BucketOffsets), so that the Instant the scoring shares is not replaced by another
// series' time while the group is prefetched.
func prefetchEntry(e *entry, t int64) {
	const model0 = unsafe.Offsetof(e.stream) + unsafe.Offsetof(e.stream.Model)
	p := uintptr(unsafe.Pointer(e))
	prefetch(p, model0+model.HeadSize)
	a, b := model.BucketOffsets(t)
	if b == a+model.BucketSize {
		prefetch(p+model0+a, 2*model.BucketSize)
		return
	}
	prefetch(p+model0+a, model.BucketSize)
	prefetch(p+model0+b, model.BucketSize)
}

// appendSeries scores the samples of item it, whose shard sh is locked. it.head is the first
// entry with its hash's tag, looked up by appendShard before it scored the group (-1 if none):
// usually the series itself, which then needs no second probe of the index. The batch's series
// (it.ser: its labels, type and encoding) is read only for a series the store has not seen or
// must match against the rules again: a known series needs its hashes and samples only, which
// the item holds.
func (s *Store) appendSeries(rs *ruleSet, sh *shard, sc *appendScratch, it *appendItem, now uint32, st *appendStats) {
	h, check, samples := it.hash, it.check, it.samples
	var e *entry
	if it.head >= 0 {
		if c := sh.at(it.head); c.check == check {
			e = c
		}
	}
	if e == nil {
		// A new series, another with the same tag, or one that an earlier series of this
		// request (the same series twice) inserted after the look-ahead: the full lookup.
		e = sh.lookupCheck(h, check)
	}
	switch {
	case e == nil:
		ls := st.labelsOf(it.ser)
		if isOwnOutput(ls) {
			st.ownOutput += len(samples)
			return
		}
		rule, ok := rs.Rules.Match(ls)
		if !ok {
			st.noRule += len(samples)
			return
		}
		if rs.MaxSeries > 0 && s.series.Load() >= int64(rs.MaxSeries) {
			st.overLimit += len(samples)
			return
		}
		e = sh.insertData(h, check, it.labelsData(sc), ls)
		s.series.Add(1)
		st.created++
		e.rule, e.gen, e.fp = uint16(rule), rs.gen, fpKey(rs.fingerprints[rule])
		name, typ := metricName(ls), it.ser.Type
		if typ == batch.Unknown {
			typ = s.families.typeOf(name)
		}
		e.stream.Counter = IsCounter(typ, name)
		s.requestBackfill(e)
	case e.gen != rs.gen:
		rule, ok := rs.Rules.Match(st.labelsOf(it.ser))
		if !ok {
			sh.remove(sh.indexOf(e, h), h)
			s.series.Add(-1)
			st.dropped++
			st.noRule += len(samples)
			return
		}
		if fp := fpKey(rs.fingerprints[rule]); fp != e.fp {
			e.stream = Stream{Counter: e.stream.Counter}
			e.flags &^= flagHasResult
			e.fp = fp
			s.requestBackfill(e)
		}
		e.rule, e.gen = uint16(rule), rs.gen
	}
	set := &rs.Settings[e.rule]
	e.lastSeen = now
	if holdBackfilling(e, samples, st) {
		return
	}
	for _, smp := range samples {
		r, o := e.stream.PushAt(st.instantOf(smp.T), smp.V, set)
		st.outcomes[o]++
		switch o {
		case Scored:
			e.res = r
			e.flags |= flagHasResult | flagLive
			if st.points != nil {
				st.emit(e, smp.T, false)
			}
		case Stale:
			if st.points != nil && e.flags&(flagHasResult|flagLive) == flagHasResult|flagLive {
				st.emit(e, smp.T, true)
			}
			e.flags &^= flagLive
		}
	}
}

// Len is the number of series tracked.
func (s *Store) Len() int { return int(s.series.Load()) }

// Lookup returns the last result of a series and whether it has one; for tests and tools.
func (s *Store) Lookup(lbls labels.Labels) (model.Result, bool) {
	sh, h, ls := s.locate(lbls)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.lookup(h, ls)
	if e == nil || e.flags&flagHasResult == 0 {
		return model.Result{}, false
	}
	return e.res, true
}

// Expire forgets the series that received no sample for the series expiry, returning how many.
// The server calls it periodically; it takes each shard's lock in turn.
func (s *Store) Expire() int {
	rs := s.opts.Load()
	if rs.SeriesExpiry <= 0 {
		return 0
	}
	cutoff := s.now().Add(-rs.SeriesExpiry).Unix()
	n := 0
	for k := range s.shards {
		sh := &s.shards[k]
		sh.mu.Lock()
		for i := int32(0); i < sh.used; i++ {
			e := sh.at(i)
			if e.flags&flagInUse != 0 && int64(e.lastSeen) < cutoff {
				sh.remove(i, e.hash())
				n++
			}
		}
		sh.mu.Unlock()
	}
	s.series.Add(-int64(n))
	s.metrics.expired.Add(float64(n))
	s.metrics.series.Set(float64(s.series.Load()))
	return n
}
