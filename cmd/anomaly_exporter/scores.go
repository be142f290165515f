package main

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// partsAheadPerWorker bounds the parts formatted (and compressed) ahead of the one being
// written: enough that a worker rarely waits for a slower part before it, few enough that a
// scrape holds a few parts per core whatever the series count.
const partsAheadPerWorker = 2

// scoresHandler serves the store's output series in the text format, gzipped when the scraper
// asks for it (Prometheus always does). A million series are over a gigabyte of exposition,
// more than one core formats and deflates in the two seconds a scrape may take: the parts of
// the exposition are formatted, and compressed, on every core, and written in order.
func scoresHandler(store *detector.Store, logger *slog.Logger) http.Handler {
	return &scoresServer{store: store, logger: logger}
}

// scoresServer is the /scores handler; the zero values of workers and partSeries are
// GOMAXPROCS and detector.DefaultPartSeries (tests set others).
type scoresServer struct {
	store      *detector.Store
	logger     *slog.Logger
	workers    int
	partSeries int
}

func (s *scoresServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
	if gz {
		w.Header().Set("Content-Encoding", "gzip")
	}
	if err := s.write(w, gz); err != nil && s.logger != nil {
		// The status line is gone already; the scraper sees a truncated body and fails.
		s.logger.Debug("Writing /scores", "err", err)
	}
}

// scoresPart is a formatted part on its way to the response: the plain text, or its DEFLATE
// segment with the CRC-32 and length of the plain text.
type scoresPart struct {
	buf  *[]byte
	pool *sync.Pool // where buf goes back
	crc  uint32
	n    int
}

var (
	// plainBuffers and segmentBuffers are the buffers parts are formatted and compressed into,
	// reused from one scrape to the next; two pools, as a segment is a tenth of its part.
	plainBuffers   = sync.Pool{New: func() any { return new([]byte) }}
	segmentBuffers = sync.Pool{New: func() any { return new([]byte) }}
	// flateWriters are compressors at BestSpeed, reused: one holds a few hundred KiB of tables.
	flateWriters = sync.Pool{New: func() any {
		fw, _ := flate.NewWriter(nil, flate.BestSpeed) // the level is valid: no error
		return fw
	}}
)

// write writes the exposition to w, plain or as one gzip member. The workers (the calling
// goroutine and GOMAXPROCS-1 more) each take the next part of one Scrape, format it and, when
// it is the next to be written, write it and the parts after it that are ready: no goroutine
// waits to be scheduled only to write, which beside busy ingestion can take longer than the
// formatting. A worker takes no part more than partsAheadPerWorker per worker ahead of the part
// to write, so a scrape holds a few parts per worker whatever the series count. Gzipped, each
// worker deflates its part into a segment of its own, ended by a sync flush so that the
// segments concatenate into one DEFLATE stream, which write closes with an empty final block.
// The CRC-32 of each part is taken by the worker that formatted it, while the part is in its
// cache, and the parts' CRCs are combined in order, so that the plain text goes back to the
// pool as soon as it is compressed. When a write fails (the scraper went away), the workers
// take no more parts, and write returns once they are done.
func (s *scoresServer) write(w io.Writer, gz bool) error {
	return newPartWriter(w, s.store.Scrape(s.partSeries), s.workers, gz).run()
}

// newPartWriter prepares the response of one scrape on workers workers (GOMAXPROCS if 0).
func newPartWriter(w io.Writer, sc detector.Scrape, workers int, gz bool) *partWriter {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, sc.Parts())
	pw := &partWriter{w: w, sc: sc, workers: workers, gz: gz,
		ready: make([]scoresPart, min(sc.Parts(), partsAheadPerWorker*workers))}
	pw.moved.L = &pw.mu
	return pw
}

// run writes the response.
func (pw *partWriter) run() error {
	if pw.gz {
		if _, err := pw.w.Write(gzipHeader[:]); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	for range pw.workers - 1 {
		wg.Go(pw.work)
	}
	pw.work()
	wg.Wait()
	for i := range pw.ready { // parts formatted before a write failed, never written
		pw.ready[i].release()
	}
	if pw.err != nil || !pw.gz {
		return pw.err
	}
	var trailer [10]byte
	trailer[0], trailer[1] = 0x03, 0x00 // an empty final block with fixed codes: BFINAL, BTYPE 01, end of block
	binary.LittleEndian.PutUint32(trailer[2:], pw.crc)
	binary.LittleEndian.PutUint32(trailer[6:], pw.size) // the length mod 2^32
	_, err := pw.w.Write(trailer[:])
	return err
}

// partWriter is what the workers of one response share.
type partWriter struct {
	w       io.Writer
	sc      detector.Scrape
	workers int
	gz      bool

	mu      sync.Mutex
	moved   sync.Cond // next moved on, or err was set
	taken   int       // parts taken by workers: [next, taken) are being formatted or ready
	next    int       // the part to write next
	writing bool      // a worker is writing
	// ready holds part i at i%len(ready) from when it is formatted to when it is written
	// (buf nil: not ready); a worker takes part i only when i < next+len(ready).
	ready     []scoresPart
	err       error
	crc, size uint32 // of the plain text written
}

// work takes, formats and writes parts until none is left or a write failed.
func (pw *partWriter) work() {
	var fw *flate.Writer
	var seg appendWriter
	if pw.gz {
		fw = flateWriters.Get().(*flate.Writer)
		defer flateWriters.Put(fw)
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	for {
		for pw.err == nil && pw.taken < pw.sc.Parts() && pw.taken >= pw.next+len(pw.ready) {
			pw.moved.Wait()
		}
		if pw.err != nil || pw.taken == pw.sc.Parts() {
			return
		}
		i := pw.taken
		pw.taken++
		pw.mu.Unlock()
		p := formatPart(pw.sc, i, fw, &seg)
		pw.mu.Lock()
		pw.ready[i%len(pw.ready)] = p
		pw.writeReady()
	}
}

// writeReady writes the parts that are ready, in order from next, unless another worker is at
// it (it will find them). It is called, and returns, with mu held.
func (pw *partWriter) writeReady() {
	if pw.writing {
		return
	}
	pw.writing = true
	for pw.err == nil {
		slot := &pw.ready[pw.next%len(pw.ready)]
		if slot.buf == nil {
			break
		}
		p := *slot
		*slot = scoresPart{}
		pw.mu.Unlock()
		var err error
		if len(*p.buf) > 0 {
			_, err = pw.w.Write(*p.buf)
		}
		p.release()
		pw.mu.Lock()
		pw.crc, pw.size = crc32Combine(pw.crc, p.crc, int64(p.n)), pw.size+uint32(p.n)
		pw.next++
		pw.err = err
		pw.moved.Broadcast()
	}
	pw.writing = false
}

// gzipHeader starts a gzip member (RFC 1952) as compress/gzip writes it at BestSpeed: DEFLATE,
// no flags, no modification time, extra flags 4 (fastest), operating system unknown.
var gzipHeader = [10]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255}

// formatPart formats part i of sc and, when fw is set, deflates it into a segment that ends on a
// byte boundary (a sync flush) without ending the stream. seg is the worker's own sink for fw.
func formatPart(sc detector.Scrape, i int, fw *flate.Writer, seg *appendWriter) scoresPart {
	buf := plainBuffers.Get().(*[]byte)
	*buf = sc.AppendPart((*buf)[:0], i)
	if fw == nil {
		return scoresPart{buf: buf, pool: &plainBuffers}
	}
	p := scoresPart{buf: segmentBuffers.Get().(*[]byte), pool: &segmentBuffers, crc: crc32.ChecksumIEEE(*buf), n: len(*buf)}
	seg.b = (*p.buf)[:0]
	if p.n > 0 { // an empty part adds nothing to the stream, not even a flush
		fw.Reset(seg)
		// Writing to memory fails never: the errors are nil.
		_, _ = fw.Write(*buf)
		_ = fw.Flush()
	}
	*p.buf = seg.b
	seg.b = nil
	plainBuffers.Put(buf)
	return p
}

// release returns the part's buffer to its pool.
func (p *scoresPart) release() {
	if p.buf != nil {
		p.pool.Put(p.buf)
	}
}

// appendWriter is an io.Writer that appends to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// crc32Combine returns the CRC-32 (IEEE) of a sequence A followed by B from crcA, the CRC of A,
// crcB, the CRC of B, and lenB, the length of B (zlib's crc32_combine): the CRC of B's bytes
// appended to A is crcA multiplied by x^(8 lenB) modulo the polynomial, plus crcB.
func crc32Combine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB == 0 {
		return crcA
	}
	// x^(8 lenB) = the product of x^(2^k) over the bits k set in 8 lenB.
	p := uint32(1) << 31 // x^0, bits reflected as in crc32.IEEE
	for k := 3; lenB > 0; k, lenB = k+1, lenB>>1 {
		if lenB&1 != 0 {
			p = crc32MulMod(crc32X2n[k&31], p)
		}
	}
	return crc32MulMod(p, crcA) ^ crcB
}

// crc32X2n[k] is x^(2^k) modulo the CRC-32 polynomial. The order of x divides 2^32-1, so
// x^(2^32) is x again: 32 entries cover every k, which wraps at 32.
var crc32X2n = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for k := 1; k < len(t); k++ {
		p = crc32MulMod(p, p)
		t[k] = p
	}
	return t
}()

// crc32MulMod multiplies a and b modulo the CRC-32 polynomial, in its reflected representation.
func crc32MulMod(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ crc32.IEEE
		} else {
			b >>= 1
		}
	}
	return p
}

func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && !strings.Contains(strings.ReplaceAll(q, " ", ""), "q=0") {
			return true
		}
	}
	return false
}
