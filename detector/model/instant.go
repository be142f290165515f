package model

import "math"

// Instant is a sample time with what the model derives from the time alone: where it falls in
// the day and the week, the bucket visits of the last first-seen time and the learning weights
// of the last gap and bucket visits seen with it. The series of one scrape share their timestamp, and most of them the time since their
// last sample, so a caller that scores many series at one timestamp computes this once (At)
// and passes it to each ObserveAt, instead of every series paying for the calendar arithmetic
// and the five or so expm1 of its weights, and every young series the divisions that count its
// visits. An Instant is working memory of one goroutine: it
// remembers the last weights it computed.
type Instant struct {
	t int64
	// hd are the hours of the two bucket centres around t, ty their day types, w their
	// interpolation weights, h0 the absolute hour of the first; tyNow is the day type of t.
	hd, ty [2]int
	w      [2]float64
	h0     int64
	tyNow  int
	// hour and day are t's, since the epoch; peakHours the hours of day within peakJitter
	// before and after t (see peakAt).
	hour, day int64
	peakHours [2]int
	// hourStart and dayStart are when t's hour and day began: a time before them is in an
	// earlier hour or day, which takes a comparison instead of a division. Where t's hour or
	// day began before the first int64 time they are math.MinInt64, before which there is no
	// time.
	hourStart, dayStart int64
	// memo holds the weights of the last (dtEff, visit indexes) asked for, one slot for the
	// models that read this hour as a ramp and one for those that read it as a step (their
	// buckets' shares differ), so that series of both kinds scored in turn do not evict each
	// other.
	memo [2]weightsMemo
	// visits holds the bucket visits counted last (clockAt).
	visits visitsMemo
	// c is the clock of the model scored last (clockAt), its calendar filled in by At.
	c clock
}

// visitsMemo is a clock's counts for models first seen in the bucket of hour hFirst, on
// firstDay, valid when ok.
type visitsMemo struct {
	ok                       bool
	firstT, hFirst, firstDay int64
	n                        visitCounts
}

// weightsMemo is one slot of Instant.memo, valid when ok.
type weightsMemo struct {
	ok  bool
	dt  float64
	key uint32
	w   weights
}

// weights are the learning weights of one sample (see smoothingWeights and learnWeight).
type weights struct {
	smooth          [5]float64
	daily, dw       [2]float64
	none, weeklyLvl float64
}

// At returns the Instant of t, in milliseconds since the epoch.
func At(t int64) Instant {
	var in Instant
	in.at(t)
	return in
}

// at makes the zero Instant in that of t: in place, so that Observe neither builds nor copies
// one per sample.
func (in *Instant) at(t int64) {
	u := t - hourMs/2
	h0 := floorDivPos(u, hourMs) // hourBuckets
	w1 := float64(u-h0*hourMs) / float64(hourMs)
	in.t, in.h0, in.w = t, h0, [2]float64{1 - w1, w1}
	in.hour, in.day = floorDivPos(t, hourMs), floorDivPos(t, dayMs)
	in.tyNow = dayType(in.day)
	in.peakHours = [2]int{hourOfDay(t - peakJitter), hourOfDay(t + peakJitter)}
	in.hd = [2]int{int(modPos(h0, 24)), int(modPos(h0+1, 24))}
	in.ty = [2]int{dayType(floorDivPos(h0, 24)), dayType(floorDivPos(h0+1, 24))}
	in.hourStart, in.dayStart = periodStart(in.hour, hourMs), periodStart(in.day, dayMs)
	// The clock's calendar (clockAt reads it as a step where the model does).
	in.c.t, in.c.hd, in.c.ty, in.c.w, in.c.wLin, in.c.tyNow = t, in.hd, in.ty, in.w, in.w[1], in.tyNow
}

// floorDivPos is floorDiv by b > 0, with the common case of a >= 0 (times since the epoch) an
// unsigned division, which needs no correction.
func floorDivPos(a, b int64) int64 {
	if a >= 0 {
		return int64(uint64(a) / uint64(b))
	}
	return floorDiv(a, b)
}

// modPos is mod by b > 0, unsigned for a >= 0.
func modPos(a, b int64) int64 {
	if a >= 0 {
		return int64(uint64(a) % uint64(b))
	}
	return mod(a, b)
}

// hourOfDay is the hour of day (UTC) of t.
func hourOfDay(t int64) int { return int(modPos(floorDivPos(t, hourMs), 24)) }

// periodStart is the start of the period n of length p, or math.MinInt64 if it begins before
// that: floorDiv(x, p) < n exactly when x < periodStart(n, p).
func periodStart(n, p int64) int64 {
	if n < math.MinInt64/p {
		return math.MinInt64
	}
	return n * p
}

// T is the time of the Instant, in milliseconds since the epoch.
func (in *Instant) T() int64 { return in.t }

// weights returns the learning weights of a sample at in that stands for dtEff, in the bucket
// visits c counts, from the memo when they are those of the last call.
func (in *Instant) weights(dtEff float64, c *clock, key uint32) *weights {
	// The visits' indexes were packed into key when they were counted (visitKey). The slot is
	// whether the model reads the hour as a step, which sets the buckets' shares of the sample.
	slot := &in.memo[0]
	if c.w != in.w {
		slot = &in.memo[1]
	}
	if slot.ok && slot.dt == dtEff && slot.key == key {
		return &slot.w
	}
	jd := [2]int{int(key & 7), int(key >> 3 & 7)}
	jw := [2]int{int(key >> 6 & 7), int(key >> 9 & 7)}
	jn, jwk := int(key>>12&7), int(key>>15&7)
	w := &slot.w
	w.smooth = smoothingWeights(dtEff)
	// The weights of v in the profile buckets it falls in; buckets in the same visit share one.
	for i := range c.hd {
		frac := c.w[i] * dtEff / float64(hourMs)
		w.daily[i] = learnWeight(frac, jd[i])
		w.dw[i] = w.daily[i]
		if jw[i] != jd[i] {
			w.dw[i] = learnWeight(frac, jw[i])
		}
	}
	w.none = learnWeight(dtEff/float64(dayMs), jn)
	w.weeklyLvl = w.none
	if jwk != jn {
		w.weeklyLvl = learnWeight(dtEff/float64(dayMs), jwk)
	}
	slot.ok, slot.dt, slot.key = true, dtEff, key
	return w
}

const _ = uint(8 - len(visitLogKeep))
