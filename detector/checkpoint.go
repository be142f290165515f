package detector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// A checkpoint is the store's state in one stream of bytes: every series' labels, the
// fingerprint of the settings its model learned with, when it was last seen, its stream (the
// model and a counter's base) and its last result. All integers are little-endian, whatever the
// machine; the model alone is copied as it lies in memory (it is a value of fixed size without
// pointers), and the layout fingerprint in the header covers its field names, types, offsets,
// size and the machine's byte order, so that a checkpoint written under another model layout or
// on a machine of the other byte order is refused as a whole (ErrCheckpointLayout) rather than
// misread.
//
//	header   magic "ANOMCKPT" | version uint32 | reserved uint32 | layout uint64 | model size uint64
//	series   tag 1 | labels | fp uint64 | lastSeen uint32 | flags uint8 | lastT int64 |
//	         lastV float64 | observed float64 | score, expected, lower, upper float64 | model
//	labels   count uint16, then per label uvarint length + name, uvarint length + value,
//	         sorted by name
//	trailer  tag 0 | series count uint64 | CRC-32C (Castagnoli) of every byte before it, uint32
//
// Nothing may follow the trailer. The learning state needs no field of its own: it is in the
// model (the time of its first sample).
const (
	checkpointMagic   = "ANOMCKPT"
	checkpointVersion = 1
	headerSize        = 8 + 4 + 4 + 8 + 8
	tagEnd            = 0
	tagSeries         = 1
	// fixedSize is the part of a series record after its labels.
	fixedSize = 8 + 4 + 1 + 8 + 8 + 8 + 4*8 + modelSize
	modelSize = int(unsafe.Sizeof(model.Model{}))
	// maxLabels bounds the label count of a series in a checkpoint; far beyond any real series.
	maxLabels = 1<<16 - 1
)

// Record flags.
const (
	ckptCounter = 1 << iota
	ckptPrimed
	ckptLive
	ckptHasResult
	ckptLearning
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrCheckpointCorrupt is a checkpoint that is not one, or was damaged: bad magic, a checksum
	// that does not match, a truncated or malformed record.
	ErrCheckpointCorrupt = errors.New("checkpoint corrupt")
	// ErrCheckpointLayout is a checkpoint of another format version or model layout: it was
	// written by another version of the exporter, and is not read.
	ErrCheckpointLayout = errors.New("checkpoint written by a version with another format or model layout")
)

// modelLayout is the fingerprint of model.Model's memory layout and of the machine's byte order.
var modelLayout = func() uint64 {
	if hasPointers(reflect.TypeFor[model.Model]()) {
		// A model with pointers cannot be copied as bytes: the checkpoint must change first.
		panic("detector: model.Model holds pointers; the checkpoint copies it as bytes")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "size=%d order=%s;", modelSize, nativeOrder())
	describeType(&b, reflect.TypeFor[model.Model]())
	return xxhash.Sum64String(b.String())
}()

// ModelLayout returns the layout fingerprint that checkpoints written by this build carry.
func ModelLayout() uint64 { return modelLayout }

func nativeOrder() string {
	x := uint16(1)
	if *(*byte)(unsafe.Pointer(&x)) == 1 {
		return "little"
	}
	return "big"
}

// describeType writes t's layout: every field's name, type, offset and size, recursively.
func describeType(b *strings.Builder, t reflect.Type) {
	switch t.Kind() {
	case reflect.Struct:
		fmt.Fprintf(b, "struct %s size=%d align=%d{", t.String(), t.Size(), t.Align())
		for i := range t.NumField() {
			f := t.Field(i)
			fmt.Fprintf(b, "%s@%d:", f.Name, f.Offset)
			describeType(b, f.Type)
			b.WriteByte(';')
		}
		b.WriteByte('}')
	case reflect.Array:
		fmt.Fprintf(b, "[%d]", t.Len())
		describeType(b, t.Elem())
	default:
		fmt.Fprintf(b, "%s/%s/%d", t.String(), t.Kind(), t.Size())
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Array:
		return hasPointers(t.Elem())
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true
}

func modelBytes(m *model.Model) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(m)), modelSize)
}

// ckptWriter hands full blocks of the checkpoint to a goroutine that checksums and writes them,
// so that encoding and writing overlap.
type ckptWriter struct {
	buf   []byte
	full  chan []byte
	free  chan []byte
	done  chan struct{}
	crc   uint32
	n     int64
	err   error // set by the writing goroutine; read after done is closed
	ioErr atomic.Bool
}

const (
	ckptBufSize = 1 << 20
	ckptBlocks  = 4
)

// blockPool keeps the writer's blocks from one checkpoint to the next.
var blockPool = sync.Pool{New: func() any { return make([]byte, 0, ckptBufSize+64<<10) }}

func newCkptWriter(w io.Writer) *ckptWriter {
	cw := &ckptWriter{full: make(chan []byte, ckptBlocks), free: make(chan []byte, ckptBlocks), done: make(chan struct{})}
	for range ckptBlocks - 1 {
		cw.free <- blockPool.Get().([]byte)[:0]
	}
	cw.buf = blockPool.Get().([]byte)[:0]
	go func() {
		defer close(cw.done)
		for b := range cw.full {
			if cw.err == nil {
				cw.crc = crc32.Update(cw.crc, castagnoli, b)
				var n int
				n, cw.err = w.Write(b)
				cw.n += int64(n)
				if cw.err != nil {
					cw.ioErr.Store(true)
				}
			}
			cw.free <- b[:0]
		}
	}()
	return cw
}

// maybeFlush hands the block over once it is full; false once writing failed.
func (cw *ckptWriter) maybeFlush() bool {
	if len(cw.buf) >= ckptBufSize {
		cw.full <- cw.buf
		cw.buf = <-cw.free
	}
	return !cw.ioErr.Load()
}

// finish writes what is left, then the checksum, and returns the bytes written.
func (cw *ckptWriter) finish() (int64, error) {
	cw.full <- cw.buf
	close(cw.full)
	<-cw.done
	cw.buf = nil
	for range ckptBlocks {
		//lint:ignore SA6002 one small allocation per megabyte block and checkpoint
		blockPool.Put((<-cw.free)[:0])
	}
	if cw.err != nil {
		return cw.n, cw.err
	}
	return cw.n, nil
}

// WriteCheckpoint writes the state of every series to w and returns how many it wrote. Shards
// are copied one at a time under their lock and encoded after it is released, so that ingestion
// and scrapes go on while a checkpoint is written; each shard is consistent in itself. Series
// still waiting for their backfill are left out: they have no model yet, and are backfilled again
// when they are seen after a restart.
func (s *Store) WriteCheckpoint(w io.Writer) (series int, err error) {
	_, series, err = s.writeCheckpoint(w)
	return series, err
}

func (s *Store) writeCheckpoint(w io.Writer) (size int64, series int, err error) {
	cw := newCkptWriter(w)
	cw.buf = append(cw.buf, checkpointMagic...)
	cw.buf = binary.LittleEndian.AppendUint32(cw.buf, checkpointVersion)
	cw.buf = binary.LittleEndian.AppendUint32(cw.buf, 0)
	cw.buf = binary.LittleEndian.AppendUint64(cw.buf, modelLayout)
	cw.buf = binary.LittleEndian.AppendUint64(cw.buf, uint64(modelSize))
	var copied []entry
shards:
	for k := range s.shards {
		copied = s.shards[k].copyForCheckpoint(copied[:0])
		for i := range copied {
			var ok bool
			if cw.buf, ok = appendRecord(cw.buf, &copied[i]); ok {
				series++
			}
			if !cw.maybeFlush() {
				break shards // finish reports the error
			}
		}
	}
	clear(copied) // let the labels go
	cw.buf = append(cw.buf, tagEnd)
	cw.buf = binary.LittleEndian.AppendUint64(cw.buf, uint64(series))
	if size, err = cw.finish(); err != nil {
		return size, series, err
	}
	// The checksum covers everything before it.
	crc := binary.LittleEndian.AppendUint32(nil, cw.crc)
	n, err := w.Write(crc)
	return size + int64(n), series, err
}

func (sh *shard) copyForCheckpoint(dst []entry) []entry {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i := int32(0); i < sh.used; i++ {
		e := sh.at(i)
		if e.flags&flagInUse == 0 || e.flags&flagBackfilling != 0 {
			continue
		}
		dst = append(dst, *e)
	}
	return dst
}

// appendRecord appends the record of a series. A series with more than maxLabels labels, which
// no sender produces, is left out (ok false).
func appendRecord(b []byte, e *entry) (_ []byte, ok bool) {
	start := len(b)
	b = append(b, tagSeries, 0, 0)
	count := 0
	e.labels.Range(func(l labels.Label) {
		b = binary.AppendUvarint(b, uint64(len(l.Name)))
		b = append(b, l.Name...)
		b = binary.AppendUvarint(b, uint64(len(l.Value)))
		b = append(b, l.Value...)
		count++
	})
	if count > maxLabels {
		return b[:start], false
	}
	binary.LittleEndian.PutUint16(b[start+1:], uint16(count))
	st := &e.stream
	var flags uint8
	if st.Counter {
		flags |= ckptCounter
	}
	if st.primed {
		flags |= ckptPrimed
	}
	if e.flags&flagLive != 0 {
		flags |= ckptLive
	}
	if e.flags&flagHasResult != 0 {
		flags |= ckptHasResult
	}
	if e.res.Learning {
		flags |= ckptLearning
	}
	le := binary.LittleEndian
	b = le.AppendUint64(b, uint64(e.fp))
	b = le.AppendUint32(b, e.lastSeen)
	b = append(b, flags)
	b = le.AppendUint64(b, uint64(st.lastT))
	b = le.AppendUint64(b, math.Float64bits(st.lastV))
	b = le.AppendUint64(b, math.Float64bits(e.observed())) // as the exposition shows it; the model has it
	b = le.AppendUint64(b, math.Float64bits(e.res.Score))
	b = le.AppendUint64(b, math.Float64bits(e.res.Expected))
	b = le.AppendUint64(b, math.Float64bits(e.res.Lower))
	b = le.AppendUint64(b, math.Float64bits(e.res.Upper))
	return append(b, modelBytes(&st.Model)...), true
}

// ckptReader reads a checkpoint through a buffer that grows only with the data really there, so
// that a corrupt length cannot make it allocate more than the input holds, and checksums every
// byte consumed.
type ckptReader struct {
	r        io.Reader
	buf      []byte
	pos, end int
	crc      uint32
	crcPos   int // buf[crcPos:pos] is consumed but not yet checksummed
	err      error
}

// need makes n bytes available at buf[pos:]; false (with err set) if the input ends first.
func (d *ckptReader) need(n int) bool {
	if d.end-d.pos >= n {
		return true
	}
	if d.err != nil {
		return false
	}
	d.crc = crc32.Update(d.crc, castagnoli, d.buf[d.crcPos:d.pos])
	d.end = copy(d.buf, d.buf[d.pos:d.end])
	d.pos, d.crcPos = 0, 0
	for d.end < n {
		if d.end == len(d.buf) {
			nb := make([]byte, min(2*len(d.buf), max(n, len(d.buf)+1)))
			copy(nb, d.buf[:d.end])
			d.buf = nb
		}
		m, err := d.r.Read(d.buf[d.end:])
		d.end += m
		if err != nil {
			if d.end >= n {
				break
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: truncated", ErrCheckpointCorrupt)
			}
			d.err = err
			return false
		}
	}
	return true
}

func (d *ckptReader) take(n int) []byte {
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b
}

func (d *ckptReader) uvarint() (uint64, bool) {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if !d.need(1) {
			return 0, false
		}
		c := d.buf[d.pos]
		d.pos++
		if c < 0x80 {
			if shift == 63 && c > 1 {
				break
			}
			return x | uint64(c)<<shift, true
		}
		x |= uint64(c&0x7f) << shift
	}
	d.err = fmt.Errorf("%w: bad varint", ErrCheckpointCorrupt)
	return 0, false
}

// checksum is the CRC of every byte consumed so far.
func (d *ckptReader) checksum() uint32 {
	d.crc = crc32.Update(d.crc, castagnoli, d.buf[d.crcPos:d.pos])
	d.crcPos = d.pos
	return d.crc
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCheckpointCorrupt, fmt.Sprintf(format, args...))
}

// LoadCheckpoint reads a checkpoint written by WriteCheckpoint into the store and returns the
// number of series restored. The whole checkpoint is read and its checksum verified before any
// series is added: on an error the store is left as it was. Series the store already tracks keep
// their state, and series beyond the configured series limit are left out.
//
// Restored series are matched against the rules again on their first sample, as after a
// configuration reload: a series whose settings fingerprint is that of its rule now keeps its
// model, the others start over, and series no rule selects any more are dropped.
func (s *Store) LoadCheckpoint(r io.Reader) (int, error) {
	rs := s.opts.Load()
	d := &ckptReader{r: r, buf: make([]byte, 64<<10)}
	if !d.need(headerSize) {
		if errors.Is(d.err, ErrCheckpointCorrupt) {
			return 0, corrupt("shorter than its header")
		}
		return 0, d.err
	}
	h := d.take(headerSize)
	le := binary.LittleEndian
	switch {
	case string(h[:8]) != checkpointMagic:
		return 0, corrupt("not a checkpoint (bad magic)")
	case le.Uint32(h[8:]) != checkpointVersion:
		return 0, fmt.Errorf("%w: format version %d, this build reads %d", ErrCheckpointLayout, le.Uint32(h[8:]), checkpointVersion)
	case le.Uint64(h[16:]) != modelLayout || le.Uint64(h[24:]) != uint64(modelSize):
		return 0, fmt.Errorf("%w: model layout %016x of %d bytes, this build has %016x of %d bytes",
			ErrCheckpointLayout, le.Uint64(h[16:]), le.Uint64(h[24:]), modelLayout, modelSize)
	}

	// Decode into shards of our own, merged into the store once the checksum is verified.
	var staged [numShards]shard
	gen := rs.gen ^ 1<<31 // differs from every generation soon to come: re-matched on first sample
	var (
		ls      []batch.Label
		scratch []byte
		offs    []int
		n       uint64
		kept    int
	)
	limit := int64(math.MaxInt64)
	if rs.MaxSeries > 0 {
		limit = int64(rs.MaxSeries) - s.series.Load()
	}
	for {
		if !d.need(1) {
			return 0, d.err
		}
		tag := d.take(1)[0]
		if tag == tagEnd {
			break
		}
		if tag != tagSeries {
			return 0, corrupt("unknown record tag %d", tag)
		}
		if !d.need(2) {
			return 0, d.err
		}
		count := binary.LittleEndian.Uint16(d.take(2))
		if count == 0 {
			return 0, corrupt("series %d has no labels", n)
		}
		scratch, offs = scratch[:0], offs[:0]
		for range 2 * count {
			l, ok := d.uvarint()
			if !ok {
				return 0, d.err
			}
			if l > math.MaxInt32 || !d.need(int(l)) {
				if d.err == nil {
					d.err = corrupt("label of %d bytes", l)
				}
				return 0, d.err
			}
			scratch = append(scratch, d.take(int(l))...)
			offs = append(offs, len(scratch))
		}
		if !d.need(fixedSize) {
			return 0, d.err
		}
		rec := d.take(fixedSize)
		n++
		if int64(kept) >= limit {
			continue // over the series limit: read on, to verify the checksum
		}
		// One string per series; the labels are cut from it.
		all := string(scratch)
		ls = ls[:0]
		from := 0
		for i := 0; i < len(offs); i += 2 {
			l := batch.Label{Name: all[from:offs[i]], Value: all[offs[i]:offs[i+1]]}
			from = offs[i+1]
			if l.Name == "" || len(ls) > 0 && ls[len(ls)-1].Name >= l.Name {
				return 0, corrupt("series %d: labels empty, unsorted or repeated", n)
			}
			ls = append(ls, l)
		}
		hash := hashLabels(ls)
		sh := &staged[hash>>(64-shardBits)]
		if sh.lookup(hash, ls) != nil {
			return 0, corrupt("series %d repeated", n)
		}
		e := sh.insert(hash, ls)
		kept++
		decodeRecord(e, rec)
		e.gen = gen
	}
	if !d.need(8) {
		return 0, d.err
	}
	if got := le.Uint64(d.take(8)); got != n {
		return 0, corrupt("trailer counts %d series, read %d", got, n)
	}
	sum := d.checksum()
	if !d.need(4) {
		return 0, d.err
	}
	if got := le.Uint32(d.take(4)); got != sum {
		return 0, corrupt("checksum %08x, computed %08x", got, sum)
	}
	if d.end > d.pos || d.need(1) {
		return 0, corrupt("data after the trailer")
	}
	if d.err != nil && !errors.Is(d.err, ErrCheckpointCorrupt) {
		return 0, d.err // a read error, not the end of the input
	}
	return s.merge(&staged), nil
}

func decodeRecord(e *entry, rec []byte) {
	le := binary.LittleEndian
	e.fp = uint32(le.Uint64(rec))
	e.lastSeen = le.Uint32(rec[8:])
	flags := rec[12]
	st := &e.stream
	st.Counter = flags&ckptCounter != 0
	st.primed = flags&ckptPrimed != 0
	st.lastT = int64(le.Uint64(rec[13:]))
	st.lastV = math.Float64frombits(le.Uint64(rec[21:]))
	e.res = model.Result{
		Score:    math.Float64frombits(le.Uint64(rec[37:])),
		Expected: math.Float64frombits(le.Uint64(rec[45:])),
		Lower:    math.Float64frombits(le.Uint64(rec[53:])),
		Upper:    math.Float64frombits(le.Uint64(rec[61:])),
		Learning: flags&ckptLearning != 0,
	}
	copy(modelBytes(&st.Model), rec[69:69+modelSize])
	e.flags &^= flagLive | flagHasResult
	if flags&ckptLive != 0 {
		e.flags |= flagLive
	}
	if flags&ckptHasResult != 0 {
		e.flags |= flagHasResult
	}
}

// merge moves the staged shards into the store: a store shard that is empty takes the staged one
// as it is; otherwise the staged series it does not have are copied in.
func (s *Store) merge(staged *[numShards]shard) int {
	added := 0
	for k := range staged {
		src := &staged[k]
		if src.used == 0 {
			continue
		}
		sh := &s.shards[k]
		sh.mu.Lock()
		if sh.used == 0 {
			// Staged shards never free a slot: every one of them holds a series.
			sh.index, sh.chunks, sh.free, sh.used = src.index, src.chunks, src.free, src.used
			added += int(src.used)
		} else {
			for i := int32(0); i < src.used; i++ {
				e := src.at(i)
				if e.flags&flagInUse == 0 {
					continue
				}
				_, h, ls := s.locate(e.labels) // the shard is sh
				if sh.lookup(h, ls) != nil {
					continue
				}
				*sh.insert(h, ls) = *e
				added++
			}
		}
		sh.mu.Unlock()
	}
	s.series.Add(int64(added))
	s.metrics.series.Set(float64(s.series.Load()))
	return added
}
