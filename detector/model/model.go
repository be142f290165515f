package model

import (
	"math"
	"unsafe"
)

// Result is the verdict on one sample, computed from the baseline as it was before the sample.
type Result struct {
	// Score is 0 at the expected value, 1 at the edge of the band, above 1 outside it, growing
	// linearly with the distance. A flatline also scores above 1, and so does a value more than
	// a sigma beyond any the series has had (see the package doc).
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
	spreadClipSigmas = 20.0
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
	// tauSpread is the memory of the spread: a day, so that a burst of noise is seen for hours
	// before it is learned.
	tauSpread = float64(dayMs)
	// tauChoice is the memory of the candidates' mean squared errors, by which the scoring one
	// is chosen: two days, so that days of each season weigh in the choice, and hours of an
	// anomaly (an outage) do not hand the scoring to the candidate that absorbs it fastest, a
	// level without a season, just when the season is what tells the anomaly from the normal.
	// With a memory of a day nyc_taxi changed its candidate 39 times in 215 days, 18 with two;
	// a whole day without its daily peak (a holiday) still hands it over.
	tauChoice = 2 * tauSpread
	// profileVisits is the memory of a profile bucket in visits (days for the daily profile,
	// weekdays or weekend days for the weekly ones). Until a bucket has had that many visits it
	// learns as the average of its visits, so that one day fills a daily profile.
	profileVisits = 4
	// firstVisitWeight is the weight of a bucket's first visit: nearly all of it.
	firstVisitWeight = 0.95

	// relevelRun out-of-band residuals in a row on the same side make a candidate jump its
	// offset to the last of those samples: a lasting level change is flagged for that many
	// samples (or relevelMinDuration), then becomes the new normal. The step is remembered, so
	// that a return to the level before it is recognised as normal rather than flagged as a
	// second change. Three rather than five: at 5-minute sampling three samples already hold
	// the score above 1 for 15 minutes, and every sample flagged beyond what an alert needs is
	// one more false positive for a change nobody minds.
	relevelRun = 3
	// relevelMinDuration is how long a level change (or a flatline) holds the score above 1 at
	// least, whatever the sampling rate: three samples of a 15-second scrape are over in 45
	// seconds, before any alert with a `for` could see them. Fifteen minutes lets an alert with
	// `for` up to ten minutes fire once for a lasting change, which then becomes the new normal.
	// A sample's score stands until the next sample, so the last flagged sample counts with the
	// interval before it as the time its score stands: at 5-minute sampling three samples, at
	// 15-second sampling the samples of 14m45s, then the next one is the new normal.
	relevelMinDuration = 15 * 60_000

	// The band is never narrower than what the series' own tail of standardised residuals
	// (residual over the spread at the time) makes a 1-in-1/tailTarget event, so that a series
	// whose normal has bursts or spikes now and then (a load balancer, a disk flushing) learns
	// them as normal however small its spread between them, while a series with light tails
	// keeps the band its spread gives. The tail is modelled as peaks over a threshold: tailQ is
	// the tailRate-quantile of the standardised residuals, tailB the mean excess of those above
	// it, and the exponential tail beyond gives the level exceeded at rate tailTarget as
	// tailQ + tailB ln(tailRate/tailTarget). Both start from a normal residual, for which this
	// level is 3.75 sigmas, inside the 4-sigma band: only a heavier tail widens the band, to
	// about one exceedance in 3300 samples (11 days of 5-minute samples).
	// tailStep is the quantile's step in log space: a rise by 0.8% on a residual above it, so
	// that it learns a heavy tail over a hundred exceedances or so and stays steady (with 2%,
	// twenty exceedances in a burst raised it by half). It was 2% until the level-only
	// candidate followed a trend (see slope): on NAB the trend with 2% lost 1.5 standard points
	// (half B 2, and 4 low_FP), with 0.8% both halves gained (full 61.6 against 57.7 at 2%;
	// 0.006: 61.0, 0.01: 62.3, 0.012: 59.2, so the value sits on the flat side of a sharp
	// optimum). tailBWeight is the weight of one exceedance in the mean excess, which learns clipped at tailBClip
	// times the mean, so that a single spike widens the band by at most a fifth but a run of
	// them by a lot.
	tailRate    = 0.02
	tailTarget  = 3e-4
	tailStep    = 0.008
	tailBWeight = 0.1
	tailBClip   = 3.0

	// A spike at the same time every day (a backup, a cron job, a daily report) is normal for
	// its series however far it is out of the band that the rest of the day gives, and a tail
	// learned over all hours dilutes it among them. So each hour of the day keeps a fading
	// record of the largest standardised residual seen in it (its peak), and the band at a time
	// of day is never narrower than peakBand times the peak of the hours within peakJitter of
	// it, so that a spike that drifts by some minutes around an hour's edge is covered. A visit
	// of an hour moves its peak by peakWeight towards the largest residual of that visit if it
	// is larger, and otherwise lets it fade by exp(-1/peakVisits), but not below the largest
	// residual of that visit: a spike on one day widens the band at that hour on the next to 5/8
	// of it, so that a daily spike is flagged on its first two days or so and then learned (it
	// settles at about 1/peakBand of the band), while a one-off stops mattering within a week.
	// The visit in progress never widens its own band: a burst is flagged in full while it
	// lasts. Continuations of an out-of-band run are left out, as for the tail.
	peakBand    = 1.25
	peakWeight  = 0.5
	peakVisits  = 5
	peakJitter  = 15 * 60_000
	peakPerUnit = 256 // peakNow is stored in 1/256 sigma
	// peakLog is the scale of the stored peaks: a peak z (in sigmas) is kept in a byte as
	// round(peakLog * log2(1+z)), which covers 0 to 250 sigmas in steps of 2% or less of the
	// peak (a fortieth of a sigma below one sigma), finer than anything the band it sets could
	// tell apart.
	peakLog = 32

	// A daily profile that steps at an hour (a cron job, business hours, a scale-up at 09:00) is
	// read as a ramp between the two bucket centres around it, half an hour on each side, and
	// misses by half the step there every day: a band widened at that hour, and a level-only
	// candidate that keeps up with the step nearly as well as the profile. So each hour learns
	// whether the profile steps at its start: a sample between the two centres votes for the
	// step when the step's squared error is lower than the ramp's by more than the noise
	// variance, for the ramp when it is higher; the votes saturate at edgeVotes on either side
	// (some days of the samples around that hour), and the profiles and hourly spread are read
	// and learned as a step there while the step leads. A smooth profile never steps: the
	// ramp fits it better.
	edgeVotes = 16

	// A seasonal candidate judges an episode with the tail it had when the episode began: while
	// its residuals stay beyond episodeShare of the band on one side, the tail's factor in the
	// band is held where it was when that run began, though the tail goes on learning (the
	// hourly peaks still count). A day without its daily peak (a holiday, a nightly job that did
	// not run) departs from the profile by a little more at every sample, and the tail, whose
	// quantile rises by tailStep at every residual above it, learned the departure as fast as it
	// grew: a daily peak of 20 sigmas that did not come scored about 1 at single samples at
	// most, which no alert with a `for` sees, and now is a level change. The level-only
	// candidate is left alone: it lags a smooth series by construction, so that runs of large
	// residuals on one side are how its normal comes; holding its tail too cost 3.4 standard
	// points on NAB (machine_temperature: 15 rows above 1 outside the windows instead of 1).
	// The hourly spread, which learns with the weight of a profile visit, would learn the
	// departure nearly as fast: within an episode it learns the residuals clipped at clipSigmas,
	// like every other state, rather than at spreadClipSigmas. Without that, a missed daily
	// peak's hourly spread grew 2.5-fold in three hours, and the band with it.
	episodeShare = 0.5

	// A value beyond anything the series has ever had, by more than its noise, is news however
	// well the recent past predicts it: a temperature that climbs for days to above any seen in
	// months, a CPU spike above any seen, traffic below any seen. Each step of such a drift is
	// small against the band, and the level, its trend and the spread follow it. So a sample
	// more than rangeSigmas sigmas of the scale (the spread, not the tail: in a heavy-tailed
	// series the spikes set the range) beyond the range of the values since the first sample
	// scores 1 there, as at the band's edge, and grows beyond it as beyond the band. A record
	// is news only where records are rare: a ramp or a growing series sets one at every sample,
	// so the range scores only while fewer than recordMaxRate of about the last recordSamples
	// samples were records (a fast ramp past its range scores like a level change, at its onset;
	// a young series, whose range is still being found, starts at a rate of 1). On NAB this
	// found 5 more windows (58 of 69 at 1.0) for 5 more rows above 1 outside them: standard
	// 61.6 -> 68.0, low_FP 52.8 -> 58.8, both halves up (A 68.2 -> 72.7, B 58.0 -> 63.1);
	// rangeSigmas 0.75: 69.1, 1.25: 66.8, 1.5: 65.5, 2: 64.2. A gate of one record in 20 over
	// 32 samples lost two windows (65.2), one in 10 over 32 or one in 30 over 128 none.
	rangeSigmas   = 1.0
	recordSamples = 64
	recordMaxRate = math.MaxUint16 / 20

	// A spike within hours of another is part of the same episode, not news: a new excursion
	// out of the band (one that does not continue an out-of-band run on its side) is scored
	// against at least recentBand times the largest deviation from the expected value of the
	// recent samples outside the band, which fades by half every recentHalfLife hours. So a
	// burst of spikes pages once, at its first spike, and again only for one twice as large;
	// a spike like the first three hours later is news again. An excursion that this keeps
	// under 1 does not count towards a level change, so that a level change right after a
	// spike is still flagged for relevelRun samples in a row. Contiguous runs (a burst of
	// noise, a level change) are flagged in full as before. On NAB, of the rows flagged outside
	// the windows 18 came within 6 hours of an earlier flagged row that they did not continue,
	// against 1 first detection in a window; with this, 104 rows flagged outside the windows
	// at the threshold 1 instead of 117, the same 53 windows (standard 61.6 -> 62.3, low_FP
	// 52.8 -> 54.4; half A 68.2/57.4 -> 69.8/59.2, half B 58.0/48.7 -> 58.4/49.5). recentBand
	// 1.5 to 2.5 and half-lives of 2 to 4 hours all give 62.3-62.4; at 5 or 6 hours the
	// memory reaches detections half a day after a spike and windows are lost (61.1, 59.8).
	recentBand     = 2.0
	recentHalfLife = 3
	// recentPerOctave and recentZero: see Model.recent (steps of 0.3%, from 2^-128 to 2^128).
	recentPerOctave = 256
	recentZero      = 32768

	// maxStep is the most time one sample stands for in any smoothing weight.
	maxStep = float64(hourMs)

	// tauJump is how long a re-level step is remembered to recognise a return. While the
	// active seasonal candidate remembers it, the step stays out of what its profile learns at
	// the hours visited, and as it fades from memory it moves from the offset into every hour
	// of the profile at once. A level change is a change at every hour of the day: when the
	// offset handed the step to each bucket as it was visited instead (a fifth of it per
	// hourly visit), the offset had lost most of it a few hours later, and the hours not yet
	// visited since the change predicted the level before it again: after a drop of 15 sigmas
	// at 10:00, the 13:00 hours were expected 6 sigmas too high, and at 23:00 9 sigmas. A
	// return to the level before the step within tauJump still finds the step in the offset.
	tauJump = 6 * float64(hourMs)
	// jumpForget: a step that has faded to less than this share of the active candidate's
	// spread is forgotten (what is left of it moves into the profile at once): a return by so
	// little cannot be told from noise, and the profile is not shifted at every sample for weeks.
	jumpForget = 0.5

	// spreadFloorShare is the share of a candidate's overall spread below which its spread at a
	// time of day cannot fall: the hourly spread rests on few samples, and must not make a
	// quiet hour alert on ordinary noise.
	spreadFloorShare = 0.7

	// switchRatio is how much lower a richer candidate's mean squared error must be than the
	// simpler one's to become active: a third lower in root mean square. Every candidate's
	// offset takes up most of what its profile misses within hours, so that a small edge in
	// one-step error is weak evidence of a season, and a profile of 24 or 48 buckets, each
	// learned from a few days, brings the day-to-day noise of its buckets into the score (on
	// NAB a fifth was worse on both halves). stayRatio is the bound for staying active once it
	// is: until the simpler one is a sixth lower. The gap between them keeps the choice from
	// flapping. It is wide because the level alone, which follows the series within the hour,
	// comes close to a season in one-step error on a smooth series: with a narrow gap it took
	// the score back at night or after an unusual evening, and explained away whatever happened
	// while it had it.
	switchRatio = 4.0 / 9
	stayRatio   = 1.2
	// minDaysDaily is how much sample time the daily profile needs before it may be chosen: a
	// day to learn it and a day in which its one-step error is measured out of sample.
	minDaysDaily = 2
	// minWeekendDays and minWeekdays are the days of each kind seen before the weekly
	// candidates may be chosen: one day to learn each kind, one to test it out of sample.
	minWeekendDays = 2
	minWeekdays    = 2

	// flatRel: a step no larger than this fraction of the value counts as no change. A
	// flatline is a value that repeats exactly (a stuck exporter, a rate of 0, a sensor that
	// stopped), whatever float rounding a rate computation leaves: a tolerance relative to the
	// spread instead made every quiet spell of a series whose spread its spikes set (CPU at 2%
	// with bursts to 60%) a flatline, and those were most of what it flagged.
	flatRel = 1e-12
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
	// A flat run must also be flatLongestFactor times longer than the longest that ended in the
	// last few days: a series that is flat for a while every day (a job that idles at the same
	// hour) is not flatlining when it does so again.
	flatLongestFactor = 1.5
)

// peakFade is how much of an hour's peak is left after a visit that did not reach it.
var peakFade = math.Exp(-1.0 / peakVisits)

// peakSigmas decodes a stored peak (see peakLog) into sigmas.
var peakSigmas = func() (z [256]float64) {
	for i := range z {
		z[i] = math.Exp2(float64(i)/peakLog) - 1
	}
	return z
}()

// encodePeak is the stored form of a peak of z sigmas, z >= 0.
func encodePeak(z float64) uint8 {
	return uint8(min(math.Round(peakLog*math.Log2(1+z)), math.MaxUint8))
}

// tailUp and tailDown are the steps of the tail quantile.
var tailUp, tailDown = math.Exp(tailStep * (1 - tailRate)), math.Exp(-tailStep * tailRate)

// tailQ0 and tailB0 are the tail quantile and mean excess of a normal residual in sigmas; tailLog
// is the factor of the mean excess in the level exceeded at rate tailTarget.
var (
	tailQ0  = math.Sqrt2 * math.Erfinv(1-tailRate)
	tailB0  = math.Exp(-tailQ0*tailQ0/2)/math.Sqrt(2*math.Pi)/(tailRate/2) - tailQ0
	tailLog = math.Log(tailRate / tailTarget)
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
	// offset is each candidate's recent departure from its profile: a deviation of the order of
	// the spread, which float32 keeps as finely as the profiles.
	offset [numCandidates]float32
	// runStart is when each candidate's current out-of-band run began; flatStart when the
	// current flatline first scored above 1 (both in seconds since firstT, see sec).
	runStart  [numCandidates]int32
	flatStart int32

	none   float32    // profile of candNone: the slow level
	weekly [2]float32 // profile of candWeekly: weekday, weekend level
	// mad is each candidate's mean absolute one-step residual: its spread.
	mad [numCandidates]float32
	// msr is each candidate's mean squared one-step residual, clipped, over tauChoice: the
	// measure by which candidates are compared, as it weighs the large misses that page someone.
	// While a candidate reads a profile bucket in its first visit it learns candNone's instead:
	// it has no profile there to be judged on, and its first day's misses (the whole daily
	// swing, with nothing learned) would otherwise keep it from being chosen for days.
	msr [numCandidates]float32
	// jump is the active candidate's last re-level step, fading; 0 if none. jumpBack is true
	// when the last step was a return to the level before a re-level (see snaps), which the
	// profile learns as it is.
	jump float32
	// slope is candNone's trend, per hour. The level-only candidate follows a trend (Holt's
	// linear method, damped): its level moves on by slope times the offset's weight for dt, and
	// the slope learns, with the weight of tauOffsetSeasonal, the offset's correction per hour,
	// and fades with the memory of tauFlat, so that it dies out within hours when the series
	// stops moving; a re-level sets it to 0. Without it the level lags every ramp (a filling
	// disk, a growing queue, the slopes of a daily curve) by its memory, and the lag is what
	// its band had to cover. Its choice error (msr) is the error without this sample's trend
	// step: a season that the profile knows ahead is what the trend learns only after the
	// fact, and must not hand the score back to the level.
	slope float32

	// tailQ and tailB are the tailRate-quantile of the active candidate's standardised
	// absolute residuals and their mean excess above it, in sigmas, learned only from
	// residuals that do not continue an out-of-band run; 0 until learned.
	tailQ, tailB float32
	// rangeHi and rangeLo are the highest and lowest values seen since the first sample, less
	// base; pRecord is the rate of samples beyond them (records) over about the last
	// recordSamples samples, in units of 1/65535 (see rangeSigmas).
	rangeHi, rangeLo float32
	pRecord          uint16
	peakNow          uint16 // see peak

	n       uint16 // samples seen, saturating
	pFlat   uint16 // rate of flat steps, in units of 1/65535
	flatRun uint16 // current run of flat steps
	// flatOver is how many samples of the current flat run scored above 1.
	flatOver uint8
	run      [numCandidates]int8 // signed length of the current out-of-band run, up to relevelRun
	active   uint8               // candidate that scores
	// flatLongest is the longest run of flat steps lately seen to end (saturating), fading by a
	// quarter at each midnight.
	flatLongest uint8
	// episodeSide is the side (+1, -1) of the active candidate's current episode, a run of
	// residuals beyond episodeShare of the band on one side, or 0; episodeTail is the tail's
	// band in sigmas (tailSigmas) when it began.
	episodeSide int8
	episodeTail float32
	jumpBack    bool
	// recent is the largest deviation from the expected value of the recent samples outside
	// the band, stored as recentZero + recentPerOctave log2(deviation) (0 if none), fading by
	// half every recentHalfLife hours, at each hour's end, so that it fades in steps of a
	// third of an octave whatever the sampling rate; recentSide is the side of the current
	// excursion if its first sample was scored against it (see recentBand), else 0.
	recentSide int8
	recent     uint16

	// peak is, by hour of day (UTC), the fading peak of the active candidate's standardised
	// absolute residuals, on the log scale of peakLog; peakNow is the largest of the hour of
	// lastT so far, in 1/peakPerUnit sigma, folded into peak when that hour ends.
	peak [24]uint8
	// edge is, by hour of day (UTC), whether the daily profile steps at the start of that hour
	// rather than ramping from the hour before: above 0, the profiles and the hourly spread are
	// read and learned as a step there (see clock).
	edge [24]int8
	// hours are the seasonal buckets by hour of day (UTC), each hour's together: a sample
	// reads and learns two neighbouring hours, which then share one or two cache lines.
	hours [24]hourBucket
}

// What Observe(t, ...) reads of a Model: its first HeadSize bytes, and the BucketSize bytes at
// each of the offsets BucketOffsets(t) returns. A caller that scores many series in turn can
// prefetch exactly that for the next ones while it scores one: the loads of models far apart in
// memory then overlap with the work, instead of stalling each Observe in turn.
const (
	HeadSize   = unsafe.Offsetof(Model{}.hours)
	BucketSize = unsafe.Sizeof(hourBucket{})
)

// BucketOffsets returns the offsets in a Model of the two hour buckets Observe(t, ...) reads.
func BucketOffsets(t int64) (a, b uintptr) {
	var h uint64
	if t >= 0 {
		// Unsigned division, which needs no correction towards minus infinity, of the time since
		// the bucket centre a day before the epoch's first one: whole days do not move the hour.
		h = (uint64(t) + uint64(dayMs-hourMs/2)) / uint64(hourMs) % 24
	} else {
		h0, _ := hourBuckets(t)
		h = uint64(mod(h0, 24))
	}
	h1 := h + 1
	if h1 == 24 {
		h1 = 0
	}
	return HeadSize + uintptr(h)*BucketSize, HeadSize + uintptr(h1)*BucketSize
}

// hourBucket is what a Model learns for one hour of the day.
type hourBucket struct {
	daily  float32    // profile of candDaily
	dw     [2]float32 // profile of candDailyWeekly: weekday, weekend
	spread float32    // mean absolute residual of the active candidate
}

// Observe scores v at t against the baseline as it was before v, then learns v. t is in
// milliseconds since the epoch and drives all time-based behaviour; v must be finite. Samples
// are expected in increasing time order (the caller drops the others); a sample at or before
// the last one is learned with no time weight.
func (m *Model) Observe(t int64, v float64, s *Settings) Result {
	var in Instant
	in.at(t)
	return m.ObserveAt(&in, v, s)
}

// ObserveAt is Observe at in.T(), for a caller that scores many series at one time (see
// Instant). It computes exactly what Observe does.
func (m *Model) ObserveAt(in *Instant, v float64, s *Settings) Result {
	t := in.t
	if m.n == 0 {
		m.reset(t, v)
		return m.result(t, v, v, 0, 0, s)
	}
	dt := float64(max(t-m.lastT, 0))
	// A gap weighs as much as an hour of samples: enough to let the offsets follow, not so
	// much that one sample after a gap replaces what was learned.
	dtEff := min(dt, maxStep)
	c, n := m.clockAt(in)
	// The memory of a re-level fades: after a while the level before it is just a level.
	if m.jump != 0 {
		m.fadeJump(dt)
	}

	lw := in.weights(dtEff, c, n.key)
	// Predictions of every candidate, from the state before v. candNone's level moves on by its
	// trend over dt (see slope).
	var exp, res, band, sigma, scale [numCandidates]float64
	// Each candidate's profile(k, c), in one literal.
	const _ = uint(candNone) + uint(candDaily-1) + uint(candWeekly-2) + uint(candDailyWeekly-3) + uint(numCandidates-4) + uint(4-numCandidates)
	// The two hour buckets of c (never the same one), and their day types (0 or 1, which the
	// masks tell the compiler), looked up once.
	b0, b1 := &m.hours[c.hd[0]], &m.hours[c.hd[1]]
	ty0, ty1, tyNow := c.ty[0]&1, c.ty[1]&1, c.tyNow&1
	prof := [numCandidates]float64{
		float64(m.none),
		c.interp(b0.daily, b1.daily),
		float64(m.weekly[tyNow]),
		c.interp(b0.dw[ty0], b1.dw[ty1]),
	}
	advance := float64(m.slope) * lw.smooth[0]
	spreadNow := c.interp(b0.spread, b1.spread)
	if m.lastT < in.hourStart {
		// The sample's hour is a later one than lastT's.
		lastHour := floorDiv(m.lastT, hourMs)
		m.foldPeak(in.hour, lastHour)
		if h := in.hour - lastHour; h > 0 && m.recent != 0 {
			m.recent = uint16(max(int64(m.recent)-h*recentPerOctave/recentHalfLife, 0))
		}
	}
	tailS, peakZ := m.tailSigmas(), peakBand*m.peakAt(in)
	tailZ := fmax(peakZ, tailS) // peakZ is never NaN: see fmax
	for k := range numCandidates {
		exp[k] = m.base + prof[k] + float64(m.offset[k])
		if k == candNone {
			exp[k] += advance
		}
		res[k] = v - exp[k]
		if !(math.Abs(res[k]) <= math.MaxFloat64) { // NaN or infinite
			// Values so far apart that their difference overflows: start over from here rather
			// than let a non-finite number into the state.
			m.reset(t, v)
			return m.result(t, v, v, 0, 0, s)
		}
		scale[k] = madToSigma * fmax(spreadFloorShare*float64(m.mad[k]), spreadNow)
		sigma[k] = scale[k] * tailZ / bandSigmas
		band[k] = fmax(fmax(bandSigmas*sigma[k], floorRel*math.Abs(exp[k])), floorAbs)
	}

	if !n.fresh[candDaily] && m.n >= warmupSamples {
		m.learnEdge(c, v-m.base-float64(m.offset[candDaily]))
	}
	// Score with the active candidate; a return to the level before its last re-level is
	// judged against that level.
	a := m.choose(c, n, s.Seasonality)
	if a != int(m.active) {
		m.jump = 0
		m.episodeSide = 0
	}
	m.active = uint8(a)
	if a != candNone && m.n >= warmupSamples {
		m.episode(res[a], tailS, peakZ, tailZ, &sigma[a], &band[a], exp[a])
	}
	if m.lastT < in.dayStart { // a later day than lastT's
		m.flatLongest -= m.flatLongest / 4
	}
	if math.Abs(v-m.lastV) <= flatRel*math.Abs(v) {
		m.flatRun = min(m.flatRun+1, math.MaxUint16)
	} else {
		m.flatLongest = uint8(min(max(uint16(m.flatLongest), m.flatRun), math.MaxUint8))
		m.flatRun, m.flatOver = 0, 0
	}
	// A flatline is flagged for relevelRun samples and relevelMinDuration, like a level change,
	// and then it is the new normal until the series moves again. The check is at the sample
	// after the last flagged one, whose time is when that one's score stopped standing.
	flat := 0.0 // what flatScore returns without a run, here without a call
	if m.flatRun != 0 {
		flat = m.flatScore()
	}
	if flat > 1 {
		if m.flatOver == 0 {
			m.flatStart = m.sec(t)
		}
		switch {
		case m.flatOver >= relevelRun && int64(m.sec(t))-int64(m.flatStart) >= relevelMinDuration/1000:
			flat = 0
		case m.flatOver < relevelRun:
			m.flatOver++
		}
	}
	expected := exp[a]
	// Nothing before the learning of candidate a below changes what snaps reads.
	snap := m.snaps(res[a], band[a])
	if snap {
		expected -= float64(m.jump)
	}
	r := m.result(t, v, expected, sigma[a], flat, s)
	// A new excursion within hours of a larger one is scored against it (see recentBand); if
	// that keeps it under 1 it does not count towards a level change.
	discounted := false
	if dev, side := math.Abs(v-expected), sign(v-expected); dev > r.Upper-r.Expected && r.Score > 1 && m.n >= warmupSamples {
		if m.recent != 0 && m.run[a]*side <= 0 && m.recentSide != side {
			if sr := recentBand * decodeDev(m.recent) / bandSigmas; sr > sigma[a] {
				if rr := m.result(t, v, expected, sr, flat, s); rr.Score <= 1 {
					r, discounted, m.recentSide = rr, true, side
				}
			}
		}
		m.recent = max(m.recent, encodeDev(dev))
	} else {
		m.recentSide = 0
	}
	// A value beyond the series' range is news whatever came before it (see rangeSigmas).
	if !discounted {
		m.scoreRange(&r, v, scale[a], s)
	}

	// Learn v in every candidate.
	aSpread := fmax(1/float64(m.n), lw.smooth[2]) // 1/n is positive: see fmax
	aChoice := fmax(1/float64(m.n), lw.smooth[4])
	warm := m.n >= warmupSamples
	var sqNone float64 // candNone's clipped squared residual: it comes first in the loop
	// A snap back takes the jump out of candidate a's offset before a learns; the candidates
	// before it in the loop read neither.
	if snap {
		m.offset[a] = f32(float64(m.offset[a]) - float64(m.jump))
		res[a] += float64(m.jump)
		m.jump = -m.jump
		m.jumpBack = !m.jumpBack
	}
	for k := range numCandidates {
		// A profile read from a bucket in its first visit knows nothing yet: it takes up the
		// whole error, unclipped, and the offset stays 0, since there is no profile yet whose
		// error it could be.
		fresh := n.fresh[k] // n.firstVisit(k)
		psi := res[k]
		if warm && !fresh {
			// Most residuals are inside the clip, where the builtins return psi as it is (c > 0).
			if c := clipSigmas * band[k] / bandSigmas; !(psi <= c && psi >= -c) {
				psi = max(-c, min(c, psi))
			}
		}
		// The profile learns the robust value (its error there is offset+psi); whatever it
		// takes up at t is taken from the offset, so that learning the profile never moves the
		// prediction at t by itself, and over days the profile takes up a lasting level and the
		// offset returns to 0.
		e := float64(m.offset[k]) + psi
		if k == a && k != candNone && !m.jumpBack {
			e -= float64(m.jump) // see tauJump
		}
		// profNow is m.profile(k, c) after learning.
		var profNow float64
		switch k {
		case candNone:
			m.none = learn(m.none, e, lw.none)
			profNow = float64(m.none)
		case candWeekly:
			m.weekly[tyNow] = learn(m.weekly[tyNow], e, lw.weeklyLvl)
			profNow = float64(m.weekly[tyNow])
		case candDaily:
			b0.daily = learn(b0.daily, e, lw.daily[0])
			b1.daily = learn(b1.daily, e, lw.daily[1])
			profNow = c.interp(b0.daily, b1.daily)
		case candDailyWeekly:
			b0.dw[ty0] = learn(b0.dw[ty0], e, lw.dw[0])
			b1.dw[ty1] = learn(b1.dw[ty1], e, lw.dw[1])
			profNow = c.interp(b0.dw[ty0], b1.dw[ty1])
		}
		ao := lw.smooth[1] // the offsets' weight
		if k == candNone {
			ao = lw.smooth[0]
			m.offset[k] = f32(float64(m.offset[k]) + advance)
			if warm && dtEff > 0 {
				m.slope = f32(float64(m.slope)*(1-lw.smooth[3]) + lw.smooth[1]*ao*psi/(dtEff/float64(hourMs)))
			}
		}
		if fresh {
			m.offset[k] = 0
		} else {
			m.offset[k] = f32(float64(m.offset[k]) + ao*psi - (profNow - prof[k]))
		}

		absRes := math.Abs(res[k])
		if warm {
			// min only where it can change absRes: the bound is positive.
			if clip := spreadClipSigmas * band[k] / bandSigmas; !(absRes <= clip) {
				absRes = min(absRes, clip)
			}
		}
		m.mad[k] = f32(float64(m.mad[k]) + aSpread*(absRes-float64(m.mad[k])))
		sq := absRes * absRes
		if k == candNone {
			// Judged without this sample's trend step (see slope).
			r := math.Abs(res[k] + advance)
			if warm {
				if clip := spreadClipSigmas * band[k] / bandSigmas; !(r <= clip) {
					r = min(r, clip)
				}
			}
			sq = r * r
			sqNone = sq
		} else if fresh {
			sq = sqNone
		}
		m.msr[k] = f32(float64(m.msr[k]) + aChoice*(sq-float64(m.msr[k])))
		if k == a {
			if scale[k] > 0 && warm {
				z := math.Abs(res[k]) / scale[k]
				if res[k] > band[k] && m.run[k] > 0 || res[k] < -band[k] && m.run[k] < 0 {
					// A continuation of an out-of-band run: a level change is one event, not a tail.
				} else {
					m.learnTail(z)
					m.peakNow = max(m.peakNow, uint16(min(z*peakPerUnit, math.MaxUint16)))
				}
			}
			hs := absRes
			if k != candNone && m.episodeSide != 0 && sign(res[k]) == m.episodeSide && warm {
				hs = min(hs, clipSigmas*band[k]/bandSigmas) // see episodeShare
			}
			b0.spread = learn(b0.spread, hs-spreadNow, lw.daily[0])
			b1.spread = learn(b1.spread, hs-spreadNow, lw.daily[1])
		}

		// Re-level: a run of out-of-band residuals on one side is a new level, not noise.
		const _ = uint(relevelRun - 2) // a run that begins is shorter than relevelRun
		switch {
		case math.Abs(res[k]) <= band[k] || !warm || fresh:
			m.run[k] = 0
		case (res[k] > 0) == (m.run[k] > 0) && m.run[k] != 0:
			if abs8(m.run[k]) < relevelRun {
				m.run[k] += sign(res[k])
			}
			// The score of this sample, the last one flagged, stands for about dt more. (Only a
			// run that goes on can have reached relevelRun.)
			if abs8(m.run[k]) >= relevelRun && int64(m.sec(t))-int64(m.runStart[k])+int64(dt/1000) >= relevelMinDuration/1000 {
				off := v - m.base - m.profile(k, c)
				if k == a {
					m.jump, m.jumpBack = f32(off-float64(m.offset[k])), false
				}
				m.offset[k] = f32(off)
				if k == candNone {
					m.slope = 0
				}
				m.run[k] = 0
			}
		default:
			m.run[k] = sign(res[k])
			m.runStart[k] = m.sec(t)
		}
	}

	m.learnRange(v)
	if discounted {
		m.run[a] = 0
	}
	isFlat := float64(0)
	if m.flatRun > 0 {
		isFlat = math.MaxUint16
	}
	m.pFlat = uint16(roundPos(float64(m.pFlat) + lw.smooth[3]*(isFlat-float64(m.pFlat))))

	m.lastT, m.lastV = t, v
	if m.n < math.MaxUint16 {
		m.n++
	}
	return r
}

// scoreRange raises r's score above 1 when v is more than rangeSigmas sigmas of the scale (the
// spread, without the tail) beyond the highest or lowest value the series has ever had, while
// records are rare for the series (see rangeSigmas): 1 at that distance, growing beyond it as the
// score does beyond the band's edge.
func (m *Model) scoreRange(r *Result, v, scale float64, s *Settings) {
	if m.pRecord > recordMaxRate || m.n < warmupSamples {
		return
	}
	d := v - m.base
	var ex float64
	switch {
	case d > float64(m.rangeHi) && s.Direction != DirectionDown:
		ex = d - float64(m.rangeHi)
	case d < float64(m.rangeLo) && s.Direction != DirectionUp:
		ex = float64(m.rangeLo) - d
	default:
		return
	}
	h := rangeSigmas * scale / s.Sensitivity
	h = max(h, s.MinAbsDeviation, s.MinRelDeviation*math.Abs(r.Expected))
	if s.MinAbsDeviation == 0 && s.MinRelDeviation == 0 {
		h = max(h, floorRel*math.Abs(r.Expected), floorAbs)
	}
	if ex > h {
		r.Score = max(r.Score, min(1+(ex-h)/(r.Upper-r.Expected), maxScore))
	}
}

// learnRange widens the range to v, and learns whether v was a record.
func (m *Model) learnRange(v float64) {
	d := v - m.base
	hi, lo := float64(m.rangeHi), float64(m.rangeLo)
	rec := float64(0)
	if d > hi || d < lo {
		rec = math.MaxUint16
	}
	// Inside the range (strictly, for signed zeros) the builtins return the bound as it was,
	// which converts back to itself.
	if !(hi > d) {
		m.rangeHi = f32(max(hi, d))
	}
	if !(lo < d) {
		m.rangeLo = f32(min(lo, d))
	}
	// A rate of at most recordNoStep steps of 1/65535 stays where it is without a record:
	// p - p/recordSamples rounds back to p.
	if rec != 0 || m.pRecord > recordNoStep {
		m.pRecord = uint16(roundPos(float64(m.pRecord) + (rec-float64(m.pRecord))/recordSamples))
	}
}

// recordNoStep is the rate below which learnRange leaves pRecord as it is after a sample that is
// not a record: the step p/recordSamples is at most half a unit, which rounds away from zero.
const recordNoStep = recordSamples / 2

// learnEdge learns whether the daily profile steps at the hour between the two bucket centres of
// c: e is the sample less the daily candidate's base and offset, which the ramp between the two
// centres and the step at the hour each predict. The step wins a sample when its squared error is
// lower by more than the variance of the noise, the ramp when the ramp's is; samples near a centre, where
// both read the same bucket, tell nothing.
func (m *Model) learnEdge(c *clock, e float64) {
	a, b := float64(m.hours[c.hd[0]].daily), float64(m.hours[c.hd[1]].daily)
	ramp := e - (a + c.wLin*(b-a))
	step := e - a
	if c.wLin >= 0.5 {
		step = e - b
	}
	sigma := madToSigma * float64(m.mad[candDaily])
	p := &m.edge[c.hd[1]]
	switch d := ramp*ramp - step*step; {
	case d > sigma*sigma && *p < edgeVotes:
		*p++
	case d < -sigma*sigma && *p > -edgeVotes:
		*p--
	}
}

// learnTail learns one standardised absolute residual z into the tail: the quantile is a
// stochastic approximation in log space, rising by a factor on a residual above it and decaying
// slightly on one below, which balances where tailRate of the residuals are above; the mean
// excess is an average over the residuals above the quantile.
func (m *Model) learnTail(z float64) {
	q, b := float64(m.tailQ), float64(m.tailB)
	if q <= 0 {
		q, b = tailQ0, tailB0
	}
	if z > q {
		b += tailBWeight * (min(z-q, tailBClip*b) - b)
		q *= tailUp
	} else {
		q *= tailDown
	}
	m.tailQ, m.tailB = f32(q), f32(b)
}

// foldPeak ends the visit of the hour of lastT (hl, since the epoch) when the sample's hour is a
// later one: that hour's peak moves towards the largest residual of the visit if that is
// larger, and otherwise fades, but not below that residual. A visit that reaches its peak does not let it fade first: with the
// fade first, a spike of the same size every day settled where the fade and the rise balance,
// at 0.85 of the spike, so that the band (peakBand times that) cleared it by 6% and the spike
// scored about 0.94 every day, 1.04 on a day it was 10% larger; now the peak settles at the
// spike and the spike scores about 1/peakBand.
func (m *Model) foldPeak(hour, hl int64) {
	if hour <= hl {
		return
	}
	p := &m.peak[mod(hl, 24)]
	old := peakSigmas[*p]
	pk := old * peakFade
	switch now := float64(m.peakNow) / peakPerUnit; {
	case now > old:
		pk = old + peakWeight*(now-old)
	case now > pk:
		pk = now
	}
	*p = encodePeak(pk)
	m.peakNow = 0
}

// encodeDev is the stored form of a deviation x (see recent): 0 for none.
func encodeDev(x float64) uint16 {
	if !(x > 0) {
		return 0
	}
	return uint16(min(max(math.Round(recentPerOctave*math.Log2(x))+recentZero, 1), math.MaxUint16))
}

// decodeDev is the deviation stored as c.
func decodeDev(c uint16) float64 {
	if c == 0 {
		return 0
	}
	return math.Exp2((float64(c) - recentZero) / recentPerOctave)
}

// peakAt is the largest peak, in sigmas, of the hours within peakJitter of in.
func (m *Model) peakAt(in *Instant) float64 {
	return peakSigmas[max(m.peak[in.peakHours[0]], m.peak[in.peakHours[1]])]
}

// tailSigmas is the half-width of the band in sigmas: bandSigmas, or more when the tail of the
// standardised residuals is heavier than a normal one. The mean excess is never taken as smaller,
// relative to the quantile, than a normal residual's (tailB0/tailQ0, whatever the normal's
// scale): when the quantile falls among regular spikes of much the same height (a job every
// hour), the excess above it is small, and extrapolating that put the band's edge among the
// spikes, so that every one of them scored near 1 (cpu_utilization_asg_misconfiguration in NAB:
// 30 of its rows).
func (m *Model) tailSigmas() float64 {
	if m.tailQ <= 0 {
		return bandSigmas
	}
	q := float64(m.tailQ)
	return max(bandSigmas, q+max(float64(m.tailB), tailB0/tailQ0*q)*tailLog)
}

// episode follows the active seasonal candidate's episode (see episodeShare) with its residual
// res, and narrows its sigma and band to the tail the episode began with while it continues:
// tailS is the tail's band in sigmas now, peakZ the peaks', tailZ the larger, which sigma and band
// were computed with.
func (m *Model) episode(res, tailS, peakZ, tailZ float64, sigma, band *float64, expected float64) {
	held := max(min(tailS, float64(m.episodeTail)), peakZ)
	switch {
	case m.episodeSide != 0 && sign(res) == m.episodeSide && math.Abs(res) > episodeShare**band*held/tailZ:
		if held < tailZ {
			*sigma *= held / tailZ
			*band = max(bandSigmas**sigma, floorRel*math.Abs(expected), floorAbs)
		}
	case math.Abs(res) > episodeShare**band:
		m.episodeSide, m.episodeTail = sign(res), f32(tailS)
	default:
		m.episodeSide = 0
	}
}

// fadeJump lets the remembered re-level step fade over dt, and moves what faded of a re-level of
// the active seasonal candidate from its offset into its whole profile (see tauJump).
func (m *Model) fadeJump(dt float64) {
	j := float64(m.jump) * math.Exp(-dt/tauJump)
	if math.Abs(j) < jumpForget*float64(m.mad[m.active]) {
		j = 0
	}
	if k := int(m.active); k != candNone && !m.jumpBack {
		d := float64(m.jump) - j
		m.offset[k] = f32(float64(m.offset[k]) - d)
		switch k {
		case candWeekly:
			for i := range m.weekly {
				m.weekly[i] = f32(float64(m.weekly[i]) + d)
			}
		case candDaily:
			for h := range m.hours {
				m.hours[h].daily = f32(float64(m.hours[h].daily) + d)
			}
		case candDailyWeekly:
			for h := range m.hours {
				for i := range m.hours[h].dw {
					m.hours[h].dw[i] = f32(float64(m.hours[h].dw[i]) + d)
				}
			}
		}
	}
	m.jump = f32(j)
}

// snaps reports whether the residual res of the active candidate, outside its band, is inside
// the band around the level it had before its last re-level: the series went back.
func (m *Model) snaps(res, band float64) bool {
	j := float64(m.jump)
	return j != 0 && math.Abs(res) > band && math.Abs(res+j) <= band && m.n >= warmupSamples
}

// sec is t in whole seconds since firstT, saturating after 68 years.
func (m *Model) sec(t int64) int32 {
	return int32(min(max(floorDiv(t-m.firstT, 1000), math.MinInt32), math.MaxInt32))
}

// reset makes v at t the first sample of the series.
func (m *Model) reset(t int64, v float64) {
	*m = Model{firstT: t, lastT: t, base: v, lastV: v, pFlat: math.MaxUint16, pRecord: math.MaxUint16, n: 1}
}

// result turns a prediction into the caller's view: band, score and learning flag.
func (m *Model) result(t int64, v, expected, sigma, flat float64, s *Settings) Result {
	h := bandSigmas * sigma / s.Sensitivity
	if ae := math.Abs(expected); s.MinAbsDeviation == 0 && s.MinRelDeviation == 0 && ae <= math.MaxFloat64 && h == h {
		// The default settings, with a finite expected value and a half-width that is not NaN:
		// what the builtins below return, without their ordering of NaN and signed zeros, which
		// cannot occur here (the result is at least floorAbs).
		h = fmax(h, fmax(floorRel*ae, floorAbs))
	} else {
		h = max(h, s.MinAbsDeviation, s.MinRelDeviation*math.Abs(expected))
		if s.MinAbsDeviation == 0 && s.MinRelDeviation == 0 {
			h = max(h, floorRel*math.Abs(expected), floorAbs)
		}
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
	// The builtins only where they can change score: score and flat are never -0, and where
	// score is not NaN and at least flat (at most maxScore) it is the max (the min).
	if !(score >= flat) {
		score = max(score, flat)
	}
	if !(score <= maxScore) {
		score = min(score, maxScore)
	}
	return Result{
		Score:    score,
		Expected: expected,
		Lower:    expected - h,
		Upper:    expected + h,
		Learning: t-m.firstT < s.LearningPeriod.Milliseconds(),
	}
}

// flatScore is the current run of flat steps over the run that the learned rate of flat steps
// makes unlikely: above 1 when the series has stopped changing though it usually does not. A
// shorter run scores 0, not its share of that run: a value repeated once or twice is nothing
// unusual, and a score of 2/3 for it would rank it with deviations of 2/3 of the band, which
// are rare (on NAB such runs scored 0.86-1.0 and were 4 of the false positives at the
// threshold the standard profile picks).
func (m *Model) flatScore() float64 {
	p := float64(m.pFlat) / math.MaxUint16
	if m.flatRun == 0 || p >= flatMaxRate {
		return 0
	}
	need := max(float64(flatMinRun), flatLongestFactor*float64(m.flatLongest))
	if p > 0 {
		need = max(need, math.Log(flatOdds)/math.Log(p))
	}
	if float64(m.flatRun) < need {
		return 0
	}
	return float64(m.flatRun) / need
}

// choose returns the candidate that scores: the forced one, or under SeasonAuto the simplest
// one that is eligible and not clearly beaten by an eligible richer one.
func (m *Model) choose(c *clock, n *visitCounts, season Seasonality) int {
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
	daily := c.t-m.firstT >= minDaysDaily*dayMs
	weekly := n.weekdays >= minWeekdays && n.weekendDays >= minWeekendDays
	// The candidates in order, unrolled.
	ratio := func(k int) float32 {
		if k == int(m.active) {
			return stayRatio32
		}
		return switchRatio32
	}
	if daily && m.msr[candDaily] < ratio(candDaily)*m.msr[best] {
		best = candDaily
	}
	if weekly && m.msr[candWeekly] < ratio(candWeekly)*m.msr[best] {
		best = candWeekly
	}
	if daily && weekly && m.msr[candDailyWeekly] < ratio(candDailyWeekly)*m.msr[best] {
		best = candDailyWeekly
	}
	return best
}

// switchRatio32 and stayRatio32 are the ratios as choose compares float32 errors with them:
// rounded to float64, then to float32.
var switchRatio32, stayRatio32 = func() (float32, float32) {
	sw, st := switchRatio, stayRatio
	return float32(sw), float32(st)
}()

// clock is where a timestamp falls in the seasons; the visitCounts that clockAt returns with
// it, how many times the buckets it falls in have been visited since the first sample. Visits
// are counted from timestamps alone (a gap counts as visits), which keeps them out of the state.
type clock struct {
	t int64
	// hd are the hours of the two bucket centres around t, ty their day types, w their
	// interpolation weights.
	hd, ty [2]int
	w      [2]float64
	// wLin is the interpolation weight of the second bucket centre: w[1] unless the profiles
	// step between the two, when w is 0 or 1 by the side of the hour t is on.
	wLin  float64
	tyNow int // day type of t
}

// visitCounts are the visits of a clock's buckets, including this one, and the weekdays and
// weekend days seen since the first sample, including t's.
type visitCounts struct {
	visitsDaily, visitsDW    [2]int
	visitsNone, visitsWeekly int
	weekdays, weekendDays    int
	// key holds the visits' indexes in visitLogKeep (visitKey), which the learning weights
	// depend on; fresh[k] is whether candidate k reads a bucket in its first visit
	// (firstVisit).
	key   uint32
	fresh [numCandidates]bool
}

// setDerived sets what n's counts give: key and fresh.
func (n *visitCounts) setDerived() {
	n.key = n.visitKey()
	for k := range numCandidates {
		n.fresh[k] = n.firstVisit(k)
	}
}

// visitKey packs the indexes in visitLogKeep of n's visits, three bits each (each is below
// len(visitLogKeep) <= 8): daily, dw, none, weekly.
func (n *visitCounts) visitKey() uint32 {
	return uint32(visitIndex(n.visitsDaily[0]) | visitIndex(n.visitsDaily[1])<<3 | visitIndex(n.visitsDW[0])<<6 |
		visitIndex(n.visitsDW[1])<<9 | visitIndex(n.visitsNone)<<12 | visitIndex(n.visitsWeekly)<<15)
}

// settledCounts are the counts of a settled model (see settledAfter): every count is past where
// anything depends on it (profileVisits+1 visits, the days minWeekdays and minWeekendDays ask
// for).
var settledCounts = func() visitCounts {
	const n = len(visitLogKeep)
	c := visitCounts{visitsDaily: [2]int{n, n}, visitsDW: [2]int{n, n}, visitsNone: n, visitsWeekly: n,
		weekdays: n, weekendDays: n}
	c.setDerived()
	return c
}()

func (m *Model) clock(t int64) (clock, visitCounts) {
	in := At(t)
	c, n := m.clockAt(&in)
	return *c, *n
}

// clockAt is the clock of in for this model: in's calendar, read as a step where the daily
// profile steps (see edgeVotes), and the visits since firstT. It lives in in (whose calendar
// part At filled in), so that it is neither built nor copied per sample; it is valid until the
// next clockAt on in. So are the counts, which are in's memo or settledCounts: a pointer to
// them, returned rather than kept in the clock, costs no copy and does not send in to the heap.
func (m *Model) clockAt(in *Instant) (*clock, *visitCounts) {
	c := &in.c
	c.w = in.w
	if m.edge[in.hd[1]] > 0 {
		c.w = [2]float64{1, 0}
		if in.w[1] >= 0.5 {
			c.w = [2]float64{0, 1}
		}
	}
	if in.t-m.firstT >= settledAfter {
		return c, &settledCounts
	}
	// The counts depend on firstT only through the hour bucket and the day it falls in; the
	// series first seen in one scrape share both, and with them the counts, which take a few
	// dozen divisions.
	v := &in.visits
	if v.ok && v.firstT == m.firstT {
		return c, &v.n
	}
	hFirst, _ := hourBuckets(m.firstT)
	firstDay := floorDiv(m.firstT, dayMs)
	if v.ok && v.hFirst == hFirst && v.firstDay == firstDay {
		return c, &v.n
	}
	countVisits(&v.n, in.t, in.h0, hFirst, firstDay)
	v.ok, v.firstT, v.hFirst, v.firstDay = true, m.firstT, hFirst, firstDay
	return c, &v.n
}

// countVisits fills in the counts n of the clock at t, whose first bucket is hour h0, for a model whose first
// sample fell in the bucket of hour hFirst and on firstDay.
func countVisits(n *visitCounts, t, h0, hFirst, firstDay int64) {
	for i, h := range [2]int64{h0, h0 + 1} {
		day := floorDiv(h, 24)
		k := max(floorDiv(h-hFirst, 24), 0)
		n.visitsDaily[i] = int(k) + 1
		n.visitsDW[i] = sameTypeDays(day, k)
	}
	day := floorDiv(t, dayMs)
	n.visitsNone = int(day-firstDay) + 1
	n.visitsWeekly = sameTypeDays(day, day-firstDay)
	if day == firstDay {
		n.weekendDays = dayType(day)
	} else {
		n.weekendDays = int(weekendDays(firstDay, day))
	}
	n.weekdays = n.visitsNone - n.weekendDays
	n.setDerived()
}

// settledAfter is the age of a model from which clock need not count visits: any 36 days hold at
// least 10 weekend days and 25 weekdays, more than the counts are ever compared with.
const settledAfter = 36 * dayMs

const _ = uint(10-len(visitLogKeep)) + uint(10-minWeekendDays) + uint(25-minWeekdays)

// firstVisit reports whether candidate k's profile is read at t from a bucket in its first
// visit: the bucket is still taking up its first value, and nothing in its residual is an
// outlier yet, so that the residual is learned unclipped.
func (c *visitCounts) firstVisit(k int) bool {
	switch k {
	case candDaily:
		return min(c.visitsDaily[0], c.visitsDaily[1]) < 2
	case candWeekly:
		return c.visitsWeekly < 2
	case candDailyWeekly:
		return min(c.visitsDW[0], c.visitsDW[1]) < 2
	}
	return false
}

// interp interpolates between the values of the two bucket centres.
func (c *clock) interp(a, b float32) float64 { return c.w[0]*float64(a) + c.w[1]*float64(b) }

// profile is candidate k's profile at c.
func (m *Model) profile(k int, c *clock) float64 {
	switch k {
	case candDaily:
		return c.interp(m.hours[c.hd[0]].daily, m.hours[c.hd[1]].daily)
	case candWeekly:
		return float64(m.weekly[c.tyNow])
	case candDailyWeekly:
		return c.interp(m.hours[c.hd[0]].dw[c.ty[0]], m.hours[c.hd[1]].dw[c.ty[1]])
	}
	return float64(m.none)
}

// hourBuckets returns the absolute hour (since the epoch) of the bucket centre at or before t,
// the centre of hour h being h:30, and the interpolation weight of the next centre.
func hourBuckets(t int64) (h0 int64, w1 float64) {
	u := t - hourMs/2
	h0 = floorDiv(u, hourMs)
	return h0, float64(u-h0*hourMs) / float64(hourMs)
}

// dayType is 1 if day (since the epoch, UTC) is a Saturday or Sunday, else 0.
func dayType(day int64) int {
	// Day 0 of the epoch was a Thursday: day+4 is 0 on Sundays.
	switch modPos(day+4, 7) {
	case 0, 6:
		return 1
	}
	return 0
}

// weekendDays counts the Saturdays and Sundays in the days [from, to].
func weekendDays(from, to int64) int64 {
	// upTo counts the weekend days in [-4, d] (day -4 was a Sunday).
	upTo := func(d int64) int64 {
		n := d + 5 // days from that Sunday on, inclusive
		q, r := floorDiv(n, 7), mod(n, 7)
		c := 2 * q
		if r >= 1 {
			c++ // the Sunday that starts the partial week
		}
		return c
	}
	return upTo(to) - upTo(from-1)
}

// sameTypeDays counts the days of day's type (weekday or weekend) in [day-k, day].
func sameTypeDays(day, k int64) int {
	if k <= 0 {
		return 1 // the day itself: every series' first day, and the hours after its first sample
	}
	we := weekendDays(day-k, day)
	if dayType(day) == 1 {
		return int(we)
	}
	return int(k + 1 - we)
}

// smoothingWeights returns the weights 1-exp(-dt/tau) of a sample that stands for dt in the
// memories of tauOffsetNone, tauOffsetSeasonal, tauSpread, tauFlat and tauChoice, from one
// expm1: the others follow from it by expm1(2x) = expm1(x)(expm1(x)+2) and expm1(3x) =
// expm1(x)(expm1(x)(expm1(x)+3)+3), which keep its precision for small x and cost a few
// multiplications instead of four more expm1 per sample.
func smoothingWeights(dt float64) [5]float64 {
	// The memories are an hour, 3 hours, a day, 6 hours and 2 days: 48 = 2·24, 24 = 2·2·6,
	// 6 = 2·3.
	const _ = uint(tauSpread/tauFlat-4) + uint(4-tauSpread/tauFlat) +
		uint(tauFlat/tauOffsetSeasonal-2) + uint(2-tauFlat/tauOffsetSeasonal) +
		uint(tauOffsetSeasonal/tauOffsetNone-3) + uint(3-tauOffsetSeasonal/tauOffsetNone) +
		uint(tauChoice/tauSpread-2) + uint(2-tauChoice/tauSpread)
	u48 := math.Expm1(-dt / tauChoice)
	u24 := u48 * (u48 + 2)
	u12 := u24 * (u24 + 2)
	u6 := u12 * (u12 + 2)
	u3 := u6 * (u6 + 2)
	u1 := u3 * (u3*(u3+3) + 3)
	return [5]float64{-u1, -u3, -u24, -u6, -u48}
}

// visitIndex is the index in visitLogKeep of a bucket's visits-th visit.
func visitIndex(visits int) int { return min(max(visits, 1), len(visitLogKeep)) - 1 }

// learnWeight is the weight of a sample that covers frac of a visit, in the visit of index j
// (visitIndex) of its bucket.
func learnWeight(frac float64, j int) float64 {
	if frac <= 0 {
		return 0
	}
	return -math.Expm1(frac * visitLogKeep[j])
}

// learn corrects a profile value by its error e with weight a (learnWeight).
func learn(p float32, e, a float64) float32 {
	if a == 0 {
		return p
	}
	return f32(float64(p) + a*e)
}

// f32 converts to float32, saturating instead of overflowing to infinity.
func f32(x float64) float32 {
	// A finite result is the conversion's, also where x is just above MaxFloat32 and rounds
	// down to it; an infinite or NaN one falls through to the cases.
	if y := float32(x); math.Float32bits(y)&0x7f800000 != 0x7f800000 {
		return y
	}
	switch {
	case x > math.MaxFloat32:
		return math.MaxFloat32
	case x < -math.MaxFloat32:
		return -math.MaxFloat32
	}
	return float32(x)
}

// fmax is the larger of a and b, which are never NaN where it is used: the builtin max also
// orders NaN and signed zeros, which costs a few instructions per call in the per-candidate
// loops of every sample. Where a is never NaN, nor +0 while b may be -0, it is exactly max(a, b)
// whatever b is: a NaN b is returned as it is.
func fmax(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

// roundPos is math.Round(x) for x >= 0, in fewer instructions: the fraction x-Floor(x) is
// exact. The rates it rounds are never negative: p+w*(q-p) with p and q in [0, MaxUint16] and w
// in [0, 1] is at least p-p.
func roundPos(x float64) float64 {
	r := math.Floor(x)
	if x-r >= 0.5 {
		r++
	}
	return r
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func mod(a, b int64) int64 { return a - floorDiv(a, b)*b }

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

// LastValue is the last value observed, 0 before the first.
func (m *Model) LastValue() float64 { return m.lastV }

// season is the season of the active candidate, for tests.
func (m *Model) season() Seasonality {
	return [numCandidates]Seasonality{SeasonNone, SeasonDaily, SeasonWeekly, SeasonDailyWeekly}[m.active]
}
