package remotewrite

import (
	"sync"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// ring is one shard's bounded queue of points. When it is full a push overwrites the oldest
// point (drop-oldest): when the receiver is down for longer than the queue holds, the scores
// sent once it is back are the most recent ones, which are those an alert needs.
type ring struct {
	mu   sync.Mutex
	buf  []detector.Point
	head int // index of the oldest point
	n    int
	// notify wakes the shard's sender when the queue goes from empty to not, or reaches a
	// batch; it holds at most one token, so a push never blocks.
	notify chan struct{}
	batch  int
}

func newRing(capacity, batch int) *ring {
	return &ring{buf: make([]detector.Point, max(1, capacity)), notify: make(chan struct{}, 1), batch: batch}
}

// push appends the points of ps that belong to shard k of n (by series hash, so that the points
// of one series stay in order), returning how many it queued and how many old points it dropped.
func (r *ring) push(ps []detector.Point, k, n uint64) (queued, dropped int) {
	r.mu.Lock()
	before := r.n
	for i := range ps {
		if n > 1 && ps[i].Hash()%n != k {
			continue
		}
		queued++
		if r.n == len(r.buf) {
			r.buf[r.head] = ps[i]
			r.head = (r.head + 1) % len(r.buf)
			dropped++
			continue
		}
		r.buf[(r.head+r.n)%len(r.buf)] = ps[i]
		r.n++
	}
	after := r.n
	r.mu.Unlock()
	if before == 0 && after > 0 || before < r.batch && after >= r.batch {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
	return queued, dropped
}

// take moves up to max of the oldest points into dst.
func (r *ring) take(dst []detector.Point, max int) []detector.Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range min(max, r.n) {
		dst = append(dst, r.buf[r.head])
		r.buf[r.head] = detector.Point{} // release the labels
		r.head = (r.head + 1) % len(r.buf)
		r.n--
	}
	return dst
}

func (r *ring) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// reset empties the queue, returning how many points it held.
func (r *ring) reset() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	clear(r.buf)
	r.head, r.n = 0, 0
	return n
}
