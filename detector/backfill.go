package detector

import (
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// flagBackfilling marks a series whose history is being replayed into a model of its own: its
// live samples are counted (reason "backfilling") and not scored until InstallBackfill or
// AbortBackfill, and its output says it is learning.
const flagBackfilling = flagInUse << 1

// BackfillRequester is told of the series the store starts tracking, so that it can replay their
// history before they are scored (the backfill package implements it).
type BackfillRequester interface {
	// RequestBackfill asks for the history of a series seen for the first time, or whose rule
	// settings changed. It is called with the series' shard locked and must not block. It returns
	// true when a backfill of the series is queued or running: the store then holds the series'
	// live samples until InstallBackfill or AbortBackfill is called for it.
	RequestBackfill(ls labels.Labels, counter bool) bool
}

type backfillHook struct{ r BackfillRequester }

// SetBackfill installs the requester that new series are announced to; nil removes it.
func (s *Store) SetBackfill(r BackfillRequester) {
	if r == nil {
		s.backfill.Store(nil)
		return
	}
	s.backfill.Store(&backfillHook{r: r})
}

// backfillingResult is what a series waiting for its backfill shows: learning, score 0, and no
// expectation yet.
var backfillingResult = model.Result{Expected: math.NaN(), Lower: math.NaN(), Upper: math.NaN(), Learning: true}

// requestBackfill announces a new or reset series; e's shard is locked.
func (s *Store) requestBackfill(e *entry) {
	h := s.backfill.Load()
	if h == nil || !h.r.RequestBackfill(e.labels, e.stream.Counter) {
		return
	}
	e.flags |= flagBackfilling | flagHasResult
	e.res = backfillingResult
}

// holdBackfilling counts the samples of a series waiting for its backfill instead of scoring
// them, and reports whether it did. The backfill reads the same samples from history: those it
// does not cover arrive later than its end, and those it covers are older than the model's last
// sample when it is installed, and skipped as out of order.
func holdBackfilling(e *entry, samples []batch.Sample, st *appendStats) bool {
	if e.flags&flagBackfilling == 0 {
		return false
	}
	st.backfilling += len(samples)
	for _, smp := range samples {
		if value.IsStaleNaN(smp.V) {
			e.flags &^= flagLive
		} else {
			e.flags |= flagLive
		}
	}
	return true
}

// locate finds the shard and hash of a series given as labels.Labels.
func (s *Store) locate(lbls labels.Labels) (*shard, uint64, []batch.Label) {
	ls := toBatchLabels(lbls)
	h := hashLabels(ls)
	return &s.shards[h>>(64-shardBits)], h, ls
}

// Tracks reports whether the store has the series, with a model or waiting for its backfill.
func (s *Store) Tracks(lbls labels.Labels) bool {
	sh, h, ls := s.locate(lbls)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.lookup(h, ls) != nil
}

// BackfillSettings returns the settings that score the series under the current rules and their
// fingerprint, which InstallBackfill checks; ok is false when no rule selects it.
func (s *Store) BackfillSettings(lbls labels.Labels) (settings model.Settings, fp uint64, ok bool) {
	rs := s.opts.Load()
	rule, ok := rs.Rules.Match(toBatchLabels(lbls))
	if !ok {
		return model.Settings{}, 0, false
	}
	return rs.Settings[rule], rs.fingerprints[rule], true
}

// InstallBackfill gives a series the stream that replayed its history with the settings of
// fingerprint fp; last is the result of the last sample scored, nil if none was. A series waiting
// for its backfill takes it and is scored from its next sample on. A series the store does not
// track yet (found in history before it was sent) is added, seen at its last sample's time, if a
// rule selects it and the series limit allows. A series already scored live keeps its own state.
// If the settings changed while the history was replayed, the backfill is dropped and the series
// starts over. It reports whether the stream was installed.
func (s *Store) InstallBackfill(lbls labels.Labels, fp uint64, st *Stream, last *model.Result) bool {
	rs := s.opts.Load()
	now := uint32(s.now().Unix())
	sh, h, ls := s.locate(lbls)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.lookup(h, ls)
	switch {
	case e == nil:
		rule, ok := rs.Rules.Match(ls)
		if !ok || rs.fingerprints[rule] != fp || rs.MaxSeries > 0 && s.series.Load() >= int64(rs.MaxSeries) {
			return false
		}
		e = sh.insert(h, ls)
		s.series.Add(1)
		s.metrics.created.Inc()
		s.metrics.series.Set(float64(s.series.Load()))
		e.rule, e.gen, e.fp = uint16(rule), rs.gen, fpKey(fp)
		e.lastSeen = now
		if st.primed {
			e.lastSeen = uint32(min(max(st.lastT/1000, 0), int64(now)))
		}
	case e.flags&flagBackfilling == 0:
		return false
	case e.fp != fpKey(fp):
		e.flags &^= flagBackfilling | flagHasResult
		e.stream = Stream{Counter: e.stream.Counter}
		return false
	}
	e.flags &^= flagBackfilling | flagHasResult
	e.stream = *st
	if last != nil {
		e.res = *last
		e.flags |= flagHasResult
	}
	return true
}

// AbortBackfill ends the wait of a series whose backfill failed: it learns from its live samples
// from now on, as it would have without a backfill.
func (s *Store) AbortBackfill(lbls labels.Labels) {
	sh, h, ls := s.locate(lbls)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.lookup(h, ls); e != nil && e.flags&flagBackfilling != 0 {
		e.flags &^= flagBackfilling | flagHasResult
		e.stream = Stream{Counter: e.stream.Counter}
	}
}

func toBatchLabels(lbls labels.Labels) []batch.Label {
	ls := make([]batch.Label, 0, lbls.Len())
	lbls.Range(func(l labels.Label) { ls = append(ls, batch.Label{Name: l.Name, Value: l.Value}) })
	return ls
}
