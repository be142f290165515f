package remotewrite

import (
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// heapObjectsMetric is the heap memory occupied by objects, live or not yet swept: what the heap
// holds now, rising with every request decoded and falling at each garbage collection.
const heapObjectsMetric = "/memory/classes/heap/objects:bytes"

var heapSample = sync.Pool{New: func() any {
	return &[1]rtmetrics.Sample{{Name: heapObjectsMetric}}
}}

// heapObjectBytes reads heapObjectsMetric; it does not stop the world.
func heapObjectBytes() uint64 {
	s := heapSample.Get().(*[1]rtmetrics.Sample)
	defer heapSample.Put(s)
	rtmetrics.Read(s[:])
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// heapRefresh is how long a heap reading is reused: requests come in by the hundred per second,
// the heap moves at the pace of garbage collections.
const heapRefresh = 50 * time.Millisecond

// warnEvery bounds the log lines about the memory limit.
const warnEvery = 30 * time.Second

// heapGauge caches the heap size for refresh and rate-limits the warning about it.
type heapGauge struct {
	read     func() uint64
	refresh  time.Duration
	value    atomic.Uint64
	readAt   atomic.Int64 // unix nanoseconds of the last read
	warnedAt atomic.Int64
}

// bytes returns the heap size, read at most once per refresh. Requests racing at the end of a
// refresh may each read it; that costs a microsecond and keeps the hot path free of locks.
func (g *heapGauge) bytes() uint64 {
	now := time.Now().UnixNano()
	if last := g.readAt.Load(); last == 0 || now-last >= int64(g.refresh) {
		g.value.Store(g.read())
		g.readAt.Store(now)
	}
	return g.value.Load()
}

// warnDue reports whether a warning may be logged now, at most once per warnEvery.
func (g *heapGauge) warnDue() bool {
	now := time.Now().UnixNano()
	last := g.warnedAt.Load()
	return (last == 0 || now-last >= int64(warnEvery)) && g.warnedAt.CompareAndSwap(last, now)
}
