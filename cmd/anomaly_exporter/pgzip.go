package main

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
)

// parallelGzip gzips what is written to it on every core: the input is cut into blocks, each
// block is compressed on a goroutine of its own with the 32 KiB before it as the dictionary and
// ended with a sync flush, and the blocks are written out in order as one gzip member, which
// every gzip reader reads (pgzip's scheme). A million series are over a gigabyte of exposition,
// more than one core compresses in the two seconds a scrape may take.
type parallelGzip struct {
	w     io.Writer
	cur   *gzBlock // the block being filled
	tail  []byte   // the last gzDictSize bytes before cur
	jobs  chan *gzBlock
	order chan *gzBlock // the blocks in input order, for the writer goroutine
	done  chan struct{}
	// Written by the writer goroutine, read after done is closed.
	crc    uint32
	size   uint32
	err    error
	failed atomic.Bool
}

// gzBlock is one block: its input, the dictionary before it, its compressed form.
type gzBlock struct {
	plain, dict, out []byte
	ready            chan struct{}
}

const (
	gzBlockSize = 1 << 20
	gzDictSize  = 32 << 10 // deflate's window
)

// gzBlocks keeps block buffers across scrapes; flateWriters keeps compressors (at BestSpeed:
// klauspost/compress's deflate, about 550 MB/s a core on the exposition against 320 MB/s for
// compress/flate's, to nearly the same size).
var (
	gzBlocks     = make(chan *gzBlock, 32)
	flateWriters sync.Pool
)

func getBlock() *gzBlock {
	select {
	case b := <-gzBlocks:
		b.plain, b.dict, b.out = b.plain[:0], b.dict[:0], b.out[:0]
		b.ready = make(chan struct{})
		return b
	default:
		return &gzBlock{plain: make([]byte, 0, gzBlockSize), ready: make(chan struct{})}
	}
}

func putBlock(b *gzBlock) {
	select {
	case gzBlocks <- b:
	default:
	}
}

// errGzipFailed stops the writer once the output has failed; Close returns the output's error.
var errGzipFailed = errors.New("writing the compressed output failed")

func newParallelGzip(w io.Writer) *parallelGzip {
	workers := max(1, runtime.GOMAXPROCS(0))
	z := &parallelGzip{
		w:     w,
		jobs:  make(chan *gzBlock, workers),
		order: make(chan *gzBlock, 2*workers),
		done:  make(chan struct{}),
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			z.compress()
		}()
	}
	go func() {
		defer close(z.done)
		z.writeOut()
		wg.Wait()
	}()
	return z
}

// compress compresses blocks until jobs is closed.
func (z *parallelGzip) compress() {
	out := &appendWriter{}
	var fw *flate.Writer
	if v, ok := flateWriters.Get().(*flate.Writer); ok {
		fw = v
	} else {
		fw, _ = flate.NewWriter(out, flate.BestSpeed)
	}
	for b := range z.jobs {
		out.b = b.out
		fw.ResetDict(out, b.dict)
		_, _ = fw.Write(b.plain) // an appendWriter never fails
		_ = fw.Flush()
		b.out = out.b
		close(b.ready)
	}
	fw.Reset(io.Discard)
	flateWriters.Put(fw)
}

// writeOut writes the header, the blocks in order as they are ready, the end and the trailer.
func (z *parallelGzip) writeOut() {
	// ID1 ID2, CM deflate, no flags, no time, XFL 0, OS unknown.
	z.write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255})
	for b := range z.order {
		<-b.ready
		z.crc = crc32.Update(z.crc, crc32.IEEETable, b.plain)
		z.size += uint32(len(b.plain))
		z.write(b.out)
		putBlock(b)
	}
	// A final empty stored block ends the deflate stream; CRC-32 and size end the member.
	end := []byte{1, 0, 0, 0xff, 0xff}
	end = binary.LittleEndian.AppendUint32(end, z.crc)
	z.write(binary.LittleEndian.AppendUint32(end, z.size))
}

func (z *parallelGzip) write(p []byte) {
	if z.err == nil {
		if _, z.err = z.w.Write(p); z.err != nil {
			z.failed.Store(true)
		}
	}
}

func (z *parallelGzip) Write(p []byte) (int, error) {
	if z.failed.Load() {
		return 0, errGzipFailed
	}
	n := len(p)
	for len(p) > 0 {
		if z.cur == nil {
			z.cur = getBlock()
		}
		k := min(len(p), gzBlockSize-len(z.cur.plain))
		z.cur.plain = append(z.cur.plain, p[:k]...)
		p = p[k:]
		if len(z.cur.plain) == gzBlockSize {
			z.dispatch()
		}
	}
	return n, nil
}

// dispatch hands the current block to the workers and the writer.
func (z *parallelGzip) dispatch() {
	b := z.cur
	z.cur = nil
	b.dict = append(b.dict, z.tail...)
	z.tail = append(z.tail[:0], b.plain[max(0, len(b.plain)-gzDictSize):]...)
	z.order <- b
	z.jobs <- b
}

// Close compresses and writes what is left, ends the gzip member and returns the output's first
// error.
func (z *parallelGzip) Close() error {
	if z.cur != nil && len(z.cur.plain) > 0 {
		z.dispatch()
	}
	close(z.jobs)
	close(z.order)
	<-z.done
	return z.err
}

// appendWriter collects what is written to it.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
