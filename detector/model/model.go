package model

import (
	"math"
)

// Result is the verdict on one sample, computed from the baseline as it was before the sample.
type Result struct {
	// Score is 0 at the expected value, 1 at the edge of the band, above 1 outside it, growing
	// linearly with the distance. A flatline also scores above 1 (see the package doc).
	Score float64
	// Expected is what the baseline expected at the sample's time.
	Expected float64
	// Lower and Upper bound the normal band: Expected ∓ the half-width.
	Lower, Upper float64
	// Learning is true while the samples seen do not yet cover Settings.LearningPeriod of
	// sample time: the score is computed but should page no one.
	Learning bool
}

// The candidate models, in order of complexity. Each has its own profile, offset, spread and
// re-level run, and all of them learn every sample, so that their out-of-sample errors can be
// compared at any time.
const (
	candNone        = iota // a level
	candDaily              // a level plus a 24-hour profile
	candWeekly             // a level for weekdays and one for weekends
	candDailyWeekly        // a 24-hour profile for weekdays and one for weekends
	numCandidates
)

const (
	hourMs = int64(3_600_000)
	dayMs  = 24 * hourMs

	// bandSigmas is the half-width of the band in sigmas at Sensitivity 1: 4 sigmas of a normal
	// residual are exceeded by 6e-5 of samples, about one sample in two months of 5-minute data,
	// and leaves room for residuals with heavier tails than the normal.
	bandSigmas = 4.0
	// madToSigma turns a mean absolute residual into the sigma of a normal with that mean
	// absolute deviation, sqrt(pi/2).
	madToSigma = 1.2533141373155003
	// clipSigmas is where residuals are clipped (Huber) before any state learns them, so that a
	// spike moves the baseline by at most clipSigmas sigmas times one smoothing weight.
	clipSigmas = 2.5
	// spreadClipSigmas is where residuals are clipped before the spread learns them: far
	// enough out that a series whose normal has heavy tails (bursts between long quiet spells)
	// learns a spread that covers them, since each sample moves the spread by its clipped
	// residual times one smoothing weight, yet a single spike of any size moves it by at most
	// that much.
	spreadClipSigmas = 8.0
	// warmupSamples are learned without clipping: before them the spread is not known yet.
	warmupSamples = 8

	// floorRel is the half-width floor, relative to |expected|, when neither minimum deviation
	// is set: a perfectly constant series then scores a change of more than 0.1% above 1,
	// rather than every change of any size as infinitely anomalous.
	floorRel = 1e-3
	// floorAbs keeps the half-width positive at an expected value of 0.
	floorAbs = 1e-9
	// maxScore bounds the score so that it stays finite whatever the values.
	maxScore = 1e9

	// tauOffsetNone is the memory of the level of the non-seasonal candidate: short, because
	// without a season the recent past is the best predictor of the next sample.
	tauOffsetNone = float64(hourMs)
	// tauOffsetSeasonal is the memory of the offset of the seasonal candidates from their
	// profile: longer, so that a slow departure from the profile (a missed daily peak) is seen
	// rather than absorbed.
	tauOffsetSeasonal = 3 * float64(hourMs)
	// tauSpread is the memory of the spread and of the candidates' errors: a day, so that a day
	// of each season weighs in the choice and a burst of noise is seen for hours before it is
	// learned.
	tauSpread = float64(dayMs)
	// profileVisits is the memory of a profile bucket in visits (days for the daily profile,
	// weekdays or weekend days for the weekly ones). Until a bucket has had that many visits it
	// learns as the average of its visits, so that one day fills a daily profile.
	profileVisits = 4
	// firstVisitWeight is the weight of a bucket's first visit: nearly all of it.
	firstVisitWeight = 0.95

	// relevelRun out-of-band residuals in a row on the same side make a candidate jump its
	// offset to the mean of those samples: a lasting level change is flagged for that many
	// samples, then becomes the new normal.
	relevelRun = 5

	// switchRatio is how much lower a richer candidate's error must be than the simpler one's to
	// become active; stayRatio is the bound for staying active once it is. The gap between
	// them keeps the choice from flapping.
	switchRatio = 0.8
	stayRatio   = 0.95
	// minDaysDaily is how much sample time the daily profile needs before it may be chosen: a
	// day to learn it and a day in which its one-step error is measured out of sample.
	minDaysDaily = 2
	// minWeekendDays and minWeekdays are the days of each kind seen before the weekly
	// candidates may be chosen: one day to learn each kind, one to test it out of sample.
	minWeekendDays = 2
	minWeekdays    = 2

	// flatRel: a step smaller than this fraction of the spread counts as no change.
	flatRel = 0.02
	// flatMinRun is the shortest run of flat steps that scores above 1.
	flatMinRun = 3
	// flatOdds is how unlikely, by the learned rate of flat steps, a run must be to score above 1.
	flatOdds = 1e-4
	// flatMaxRate: a series with at least this fraction of flat steps is mostly flat, and a
	// flatline is normal for it.
	flatMaxRate = 0.5
	// tauFlat is the memory of the rate of flat steps: a flatline stops scoring after a few of
	// these, when it has become the normal.
	tauFlat = 6 * float64(hourMs)
)

// visitLogKeep[j-1] is log(1-weight) of a bucket's j-th visit: 1/j (an average of the visits)
// until the exponential memory of profileVisits visits takes over.
var visitLogKeep = func() (l [profileVisits + 1]float64) {
	for j := range l {
		w := 1 / float64(j+1)
		if j == 0 {
			w = firstVisitWeight
		}
		w = max(w, 1-math.Exp(-1.0/profileVisits))
		l[j] = math.Log1p(-w)
	}
	return l
}()

// Model is the learned state of one series. It is a plain value of fixed size with no pointers,
// so that a store keeps millions of them in one allocation and can write them to disk as they
// are. The zero value is a model that has seen nothing.
//
// Profiles are float32 deviations from base, the first value seen, so that their precision is
// relative to how far the series moves rather than to its magnitude.
type Model struct {
	firstT, lastT int64
	base          float64
	lastV         float64
	// offset is each candidate's recent departure from its profile.
	offset [numCandidates]float64

	none   float32                // profile of candNone: the slow level
	weekly [2]float32             // profile of candWeekly: weekday, weekend level
	daily  [24]float32            // profile of candDaily by hour of day
	dw     [2][24]float32         // profile of candDailyWeekly: weekday, weekend by hour
	mad    [numCandidates]float32 // mean absolute one-step residual, clipped
	runSum [numCandidates]float32 // sum of the current out-of-band run's deseasonalised values

	pFlat    float32 // rate of flat steps
	interval float32 // typical sampling interval, ms
	n        uint32  // samples seen, saturating

	visitsDaily [24]uint8    // visits of each daily bucket, saturating
	visitsDW    [2][24]uint8 // visits of each weekday/weekend bucket, saturating
	days        [2]uint8     // weekdays and weekend days seen, saturating
	run         [numCandidates]int8
	flatRun     uint16
	active      uint8
}

// Observe scores v at t against the baseline as it was before v, then learns v. t is in
// milliseconds since the epoch and drives all time-based behaviour; v must be finite. Samples
// are expected in increasing time order (the caller drops the others); a sample at or before
// the last one is learned with no time weight.
func (m *Model) Observe(t int64, v float64, s *Settings) Result {
	if m.n == 0 {
		m.reset(t, v)
		return m.result(t, v, v, 0, s)
	}
	dt := float64(max(t-m.lastT, 0))
	// A gap counts as a few typical intervals: long enough to let the offsets follow, short
	// enough that one sample after a gap cannot replace what was learned.
	iv := float64(m.interval)
	if m.n == 1 || iv <= 0 {
		iv = dt
	} else {
		iv += 0.1 * (min(dt, 4*iv) - iv)
	}
	m.interval = float32(iv)
	dtEff := dt
	if iv > 0 {
		dtEff = min(dt, 4*iv)
	}

	m.countVisits(t)

	// Predictions of every candidate, from the state before v.
	var prof, exp, res [numCandidates]float64
	h0, h1, w1 := hourBuckets(t)
	ty0, ty1, tyNow := dayType(h0), dayType(h1), dayType(floorDiv(t, hourMs))
	hd0, hd1 := int(mod(h0, 24)), int(mod(h1, 24))
	w0 := 1 - w1
	for k := range numCandidates {
		prof[k] = m.profile(k, hd0, hd1, ty0, ty1, tyNow, w1)
	}
	for k := range numCandidates {
		exp[k] = m.base + prof[k] + m.offset[k]
		res[k] = v - exp[k]
		if math.IsNaN(res[k]) || math.IsInf(res[k], 0) {
			// Values so far apart that their difference overflows: start over from here rather
			// than let a non-finite number into the state.
			m.reset(t, v)
			return m.result(t, v, v, 0, s)
		}
	}

	// Score with the active candidate.
	k := m.choose(t, s.Seasonality)
	m.active = uint8(k)
	sigma := madToSigma * float64(m.mad[k])
	step := math.Abs(v - m.lastV)
	if step <= max(flatRel*sigma, 1e-12*math.Abs(v)) {
		m.flatRun = min(m.flatRun+1, math.MaxUint16)
	} else {
		m.flatRun = 0
	}
	r := m.result(t, v, exp[k], sigma, s)

	// Learn v in every candidate.
	aOff := [2]float64{
		-math.Expm1(-dtEff / tauOffsetNone),
		-math.Expm1(-dtEff / tauOffsetSeasonal),
	}
	aSpread := max(-math.Expm1(-dtEff/tauSpread), 1/float64(m.n))
	for k := range numCandidates {
		sd := madToSigma * float64(m.mad[k])
		band := max(bandSigmas*sd, floorRel*math.Abs(exp[k]), floorAbs)
		psi := res[k]
		if m.n >= warmupSamples {
			c := clipSigmas * band / bandSigmas
			psi = max(-c, min(c, psi))
		}
		// The profile learns the robust value (its error there is offset+psi); whatever it
		// takes up at t is taken from the offset, so that learning the profile never moves the
		// prediction at t by itself, and over days the profile takes up a lasting level and the
		// offset returns to 0.
		err := m.offset[k] + psi
		switch k {
		case candNone:
			m.none = learn(m.none, err, dtEff/float64(dayMs), m.days[0]+m.days[1])
		case candWeekly:
			m.weekly[tyNow] = learn(m.weekly[tyNow], err, dtEff/float64(dayMs), m.days[tyNow])
		case candDaily:
			m.daily[hd0] = learn(m.daily[hd0], err, w0*dtEff/float64(hourMs), m.visitsDaily[hd0])
			m.daily[hd1] = learn(m.daily[hd1], err, w1*dtEff/float64(hourMs), m.visitsDaily[hd1])
		case candDailyWeekly:
			m.dw[ty0][hd0] = learn(m.dw[ty0][hd0], err, w0*dtEff/float64(hourMs), m.visitsDW[ty0][hd0])
			m.dw[ty1][hd1] = learn(m.dw[ty1][hd1], err, w1*dtEff/float64(hourMs), m.visitsDW[ty1][hd1])
		}
		a := aOff[1]
		if k == candNone {
			a = aOff[0]
		}
		m.offset[k] += a*psi - (m.profile(k, hd0, hd1, ty0, ty1, tyNow, w1) - prof[k])
		absRes := math.Abs(res[k])
		if m.n >= warmupSamples {
			absRes = min(absRes, spreadClipSigmas*max(sd, band/bandSigmas))
		}
		m.mad[k] = float32(float64(m.mad[k]) + aSpread*(absRes-float64(m.mad[k])))

		// Re-level: a run of out-of-band residuals on one side is a new level, not noise.
		deseason := v - m.base - prof[k]
		switch {
		case math.Abs(res[k]) <= band || m.n < warmupSamples:
			m.run[k], m.runSum[k] = 0, 0
		case (res[k] > 0) == (m.run[k] > 0) && m.run[k] != 0:
			m.run[k] += sign(res[k])
			m.runSum[k] += float32(deseason)
		default:
			m.run[k], m.runSum[k] = sign(res[k]), float32(deseason)
		}
		if abs8(m.run[k]) >= relevelRun {
			m.offset[k] = float64(m.runSum[k]) / float64(abs8(m.run[k]))
			m.run[k], m.runSum[k] = 0, 0
		}
	}

	isFlat := float64(0)
	if m.flatRun > 0 {
		isFlat = 1
	}
	aFlat := -math.Expm1(-dtEff / tauFlat)
	m.pFlat = float32(float64(m.pFlat) + aFlat*(isFlat-float64(m.pFlat)))

	m.lastT, m.lastV = t, v
	if m.n < math.MaxUint32 {
		m.n++
	}
	return r
}

// reset makes v at t the first sample of the series.
func (m *Model) reset(t int64, v float64) {
	*m = Model{firstT: t, lastT: t, base: v, lastV: v, pFlat: 1, n: 1}
	h0, h1, _ := hourBuckets(t)
	m.visitsDaily[mod(h0, 24)] = 1
	m.visitsDaily[mod(h1, 24)] = 1
	m.visitsDW[dayType(h0)][mod(h0, 24)] = 1
	m.visitsDW[dayType(h1)][mod(h1, 24)] = 1
	m.days[dayType(floorDiv(t, hourMs))] = 1
}

// result turns a prediction into the caller's view: band, score and learning flag.
func (m *Model) result(t int64, v, expected, sigma float64, s *Settings) Result {
	h := bandSigmas * sigma / s.Sensitivity
	h = max(h, s.MinAbsDeviation, s.MinRelDeviation*math.Abs(expected))
	if s.MinAbsDeviation == 0 && s.MinRelDeviation == 0 {
		h = max(h, floorRel*math.Abs(expected), floorAbs)
	}
	dev := (v - expected) / h
	var score float64
	switch s.Direction {
	case DirectionUp:
		score = max(dev, 0)
	case DirectionDown:
		score = max(-dev, 0)
	default:
		score = math.Abs(dev)
	}
	score = max(score, m.flatScore())
	return Result{
		Score:    min(score, maxScore),
		Expected: expected,
		Lower:    expected - h,
		Upper:    expected + h,
		Learning: t-m.firstT < s.LearningPeriod.Milliseconds(),
	}
}

// flatScore is the current run of flat steps over the run that the learned rate of flat steps
// makes unlikely: above 1 when the series has stopped changing though it usually does not.
func (m *Model) flatScore() float64 {
	p := float64(m.pFlat)
	if m.flatRun == 0 || p >= flatMaxRate {
		return 0
	}
	need := float64(flatMinRun)
	if p > 0 {
		need = max(need, math.Log(flatOdds)/math.Log(p))
	}
	return float64(m.flatRun) / need
}

// choose returns the candidate that scores: the forced one, or under SeasonAuto the simplest
// one that is eligible and not clearly beaten by an eligible richer one.
func (m *Model) choose(t int64, season Seasonality) int {
	switch season {
	case SeasonNone:
		return candNone
	case SeasonDaily:
		return candDaily
	case SeasonWeekly:
		return candWeekly
	case SeasonDailyWeekly:
		return candDailyWeekly
	}
	best := candNone
	daily := t-m.firstT >= minDaysDaily*dayMs
	weekly := m.days[0] >= minWeekdays && m.days[1] >= minWeekendDays
	for k := candDaily; k < numCandidates; k++ {
		switch {
		case k == candDaily && !daily,
			k == candWeekly && !weekly,
			k == candDailyWeekly && !(daily && weekly):
			continue
		}
		ratio := switchRatio
		if k == int(m.active) {
			ratio = stayRatio
		}
		if m.mad[k] < float32(ratio)*m.mad[best] {
			best = k
		}
	}
	return best
}

// countVisits counts the profile buckets and days that t enters for the first time.
func (m *Model) countVisits(t int64) {
	_, p1, _ := hourBuckets(m.lastT)
	h0, h1, _ := hourBuckets(t)
	for _, h := range [2]int64{h0, h1} {
		if h > p1 {
			hd := mod(h, 24)
			m.visitsDaily[hd] = inc8(m.visitsDaily[hd])
			m.visitsDW[dayType(h)][hd] = inc8(m.visitsDW[dayType(h)][hd])
		}
	}
	if d := floorDiv(t, dayMs); d > floorDiv(m.lastT, dayMs) {
		ty := dayType(floorDiv(t, hourMs))
		m.days[ty] = inc8(m.days[ty])
	}
}

// hourBuckets returns the absolute hours (since the epoch) of the two bucket centres around t,
// the centre of hour h being h:30, and the weight of the later one for linear interpolation.
func hourBuckets(t int64) (h0, h1 int64, w1 float64) {
	u := t - hourMs/2
	h0 = floorDiv(u, hourMs)
	w1 = float64(u-h0*hourMs) / float64(hourMs)
	return h0, h0 + 1, w1
}

// dayType is 1 if the absolute hour h falls on a Saturday or Sunday (UTC), else 0.
func dayType(h int64) int {
	// Day 0 of the epoch was a Thursday.
	switch mod(floorDiv(h, 24)+4, 7) {
	case 0, 6:
		return 1
	}
	return 0
}

// learn corrects a profile value by its error err with the weight of a sample that covers frac
// of a visit, in the visits-th visit of its bucket.
func learn(p float32, err, frac float64, visits uint8) float32 {
	if frac <= 0 {
		return p
	}
	j := min(int(max(visits, 1)), len(visitLogKeep)) - 1
	a := -math.Expm1(frac * visitLogKeep[j])
	return f32(float64(p) + a*err)
}

// profile is candidate k's profile at the interpolation point given by the hour buckets hd0,
// hd1 of day types ty0, ty1 with weight w1 on the later one, on a day of type tyNow.
func (m *Model) profile(k, hd0, hd1, ty0, ty1, tyNow int, w1 float64) float64 {
	w0 := 1 - w1
	switch k {
	case candDaily:
		return w0*float64(m.daily[hd0]) + w1*float64(m.daily[hd1])
	case candWeekly:
		return float64(m.weekly[tyNow])
	case candDailyWeekly:
		return w0*float64(m.dw[ty0][hd0]) + w1*float64(m.dw[ty1][hd1])
	}
	return float64(m.none)
}

// f32 converts to float32, saturating instead of overflowing to infinity.
func f32(x float64) float32 {
	return float32(max(-math.MaxFloat32, min(math.MaxFloat32, x)))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func mod(a, b int64) int64 { return a - floorDiv(a, b)*b }

func inc8(x uint8) uint8 {
	if x < math.MaxUint8 {
		return x + 1
	}
	return x
}

func sign(x float64) int8 {
	if x < 0 {
		return -1
	}
	return 1
}

func abs8(x int8) int8 {
	if x < 0 {
		return -x
	}
	return x
}
