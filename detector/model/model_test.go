package model

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// Virtual time: every test generates its timestamps; nothing sleeps.

const step = 5 * time.Minute

// monday is 2024-01-01 00:00 UTC, a Monday, where synthetic series start.
var monday = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(t time.Time) int64 { return t.UnixMilli() }

// at is the time d after monday.
func at(d time.Duration) time.Time { return monday.Add(d) }

func days(n float64) time.Duration { return time.Duration(n * float64(24*time.Hour)) }

// pattern is a smooth daily and weekly shape: a level of 100, a peak of 60 at 14:00 on weekdays
// and a small, earlier one of 15 at 12:00 on weekends.
func pattern(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return 100 + 15*math.Exp(-0.5*sq((h-12)/4))
	}
	return 100 + 60*math.Exp(-0.5*sq((h-14)/3))
}

// dailyOnly is the weekday shape on every day.
func dailyOnly(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	return 100 + 60*math.Exp(-0.5*sq((h-14)/3))
}

// weekendDrop is flat within a day, lower on weekends.
func weekendDrop(t time.Time) float64 {
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return 60
	}
	return 100
}

func flat(time.Time) float64 { return 100 }

func sq(x float64) float64 { return x * x }

// noise is the standard deviation of the noise added to the shapes.
const noise = 3.0

// gen is a series: the value at t given a source of noise.
type gen func(t time.Time, rng *rand.Rand) float64

// noisy adds Gaussian noise to a shape.
func noisy(shape func(time.Time) float64) gen {
	return func(t time.Time, rng *rand.Rand) float64 { return shape(t) + noise*rng.NormFloat64() }
}

// point is one observed sample and its result.
type point struct {
	t time.Time
	v float64
	Result
}

// replay feeds g from..to every step into m and returns the points.
func replay(m *Model, s *Settings, g gen, rng *rand.Rand, from, to time.Time, every time.Duration) []point {
	var out []point
	for t := from; t.Before(to); t = t.Add(every) {
		v := g(t, rng)
		out = append(out, point{t, v, m.Observe(ms(t), v, s)})
	}
	return out
}

// learned is a model that has seen weeks of the clean pattern from monday.
func learned(t *testing.T, g gen, weeks int, s *Settings) (*Model, *rand.Rand) {
	t.Helper()
	var m Model
	rng := rand.New(rand.NewPCG(1, 2))
	replay(&m, s, g, rng, monday, at(days(float64(7*weeks))), step)
	return &m, rng
}

// share is the fraction of points whose score is above 1.
func share(ps []point) float64 {
	n := 0
	for _, p := range ps {
		if p.Score > 1 {
			n++
		}
	}
	return float64(n) / float64(len(ps))
}

func meanHalfWidth(ps []point) float64 {
	sum := 0.0
	for _, p := range ps {
		sum += p.Upper - p.Expected
	}
	return sum / float64(len(ps))
}

func between(ps []point, from, to time.Time) []point {
	var out []point
	for _, p := range ps {
		if !p.t.Before(from) && p.t.Before(to) {
			out = append(out, p)
		}
	}
	return out
}

// firstAbove is the index of the first point scoring above 1, or -1.
func firstAbove(ps []point) int {
	for i, p := range ps {
		if p.Score > 1 {
			return i
		}
	}
	return -1
}

func defaults() *Settings {
	s := DefaultSettings()
	return &s
}

func TestSizeWithinBudget(t *testing.T) {
	// A million series in 600 MB of models: offsets in float32, run starts in seconds, hourly
	// peaks in a byte each.
	require.LessOrEqual(t, unsafe.Sizeof(Model{}), uintptr(600))
}

func TestFirstSample(t *testing.T) {
	var m Model
	r := m.Observe(ms(monday), 42, defaults())
	require.Equal(t, 42.0, r.Expected)
	require.Zero(t, r.Score)
	require.True(t, r.Learning)
	require.Less(t, r.Lower, 42.0)
	require.Greater(t, r.Upper, 42.0)
}

func TestLearningCoversLearningPeriod(t *testing.T) {
	s := defaults()
	s.LearningPeriod = 6 * time.Hour
	var m Model
	ps := replay(&m, s, noisy(flat), rand.New(rand.NewPCG(1, 2)), at(3*time.Hour), at(12*time.Hour), step)
	for _, p := range ps {
		require.Equal(t, p.t.Before(at(9*time.Hour)), p.Learning, "at %s", p.t)
	}
	s.LearningPeriod = 0
	require.False(t, (&Model{}).Observe(0, 1, s).Learning)
}

// TestCleanSeasonalSeries is the false-positive budget: a noisy daily and weekly pattern must stay
// in its band once learned. With Gaussian noise and a band of 4 sigmas, 6e-5 of the samples
// would be out by noise alone; the budget of 0.5% leaves room for the error of the learned
// profile, not for a model that does not fit.
func TestCleanSeasonalSeries(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		var m Model
		rng := rand.New(rand.NewPCG(seed, 7))
		ps := replay(&m, defaults(), noisy(pattern), rng, monday, at(days(35)), step)
		after := between(ps, at(days(14)), at(days(35)))
		require.LessOrEqual(t, share(after), 0.005, "seed %d", seed)
		require.Equal(t, SeasonDailyWeekly, m.season(), "seed %d", seed)
		// The band is about what the noise needs (4 sigmas): not so wide that it sees nothing.
		require.Less(t, meanHalfWidth(after), 6*noise, "seed %d", seed)
	}
}

func TestIrregularSampling(t *testing.T) {
	var m Model
	rng := rand.New(rand.NewPCG(5, 5))
	g := noisy(pattern)
	var ps []point
	for tm := monday; tm.Before(at(days(28))); {
		v := g(tm, rng)
		ps = append(ps, point{tm, v, m.Observe(ms(tm), v, defaults())})
		// Between 10 s and 15 min, with bursts of samples a second apart.
		d := time.Duration(10+rng.IntN(890)) * time.Second
		if rng.IntN(50) == 0 {
			d = time.Second
		}
		tm = tm.Add(d)
	}
	require.LessOrEqual(t, share(between(ps, at(days(14)), at(days(28)))), 0.005)
	require.Equal(t, SeasonDailyWeekly, m.season())
}

func TestSeasonDetected(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape func(time.Time) float64
		want  Seasonality
	}{
		{"flat", flat, SeasonNone},
		{"daily", dailyOnly, SeasonDaily},
		{"weekday/weekend levels", weekendDrop, SeasonWeekly},
		{"daily and weekday/weekend", pattern, SeasonDailyWeekly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Model
			rng := rand.New(rand.NewPCG(3, 4))
			ps := replay(&m, defaults(), noisy(tc.shape), rng, monday, at(days(21)), step)
			require.Equal(t, tc.want, m.season())
			require.LessOrEqual(t, share(between(ps, at(days(14)), at(days(21)))), 0.005)
		})
	}
}

func TestDailySeasonNeedsTwoDays(t *testing.T) {
	var m Model
	rng := rand.New(rand.NewPCG(3, 4))
	replay(&m, defaults(), noisy(dailyOnly), rng, monday, at(days(1.9)), step)
	require.Equal(t, SeasonNone, m.season(), "one day cannot show a daily season out of sample")
	// The errors by which candidates are chosen have a memory of two days, and a richer one
	// must be clearly better: the profile takes over some days after its first out of sample.
	replay(&m, defaults(), noisy(dailyOnly), rng, at(days(1.9)), at(days(5)), step)
	require.Equal(t, SeasonDaily, m.season())
}

func TestSeasonalityOverride(t *testing.T) {
	for _, want := range []Seasonality{SeasonNone, SeasonDaily, SeasonWeekly, SeasonDailyWeekly} {
		t.Run(want.String(), func(t *testing.T) {
			s := defaults()
			s.Seasonality = want
			var m Model
			rng := rand.New(rand.NewPCG(3, 4))
			ps := replay(&m, s, noisy(pattern), rng, monday, at(days(21)), step)
			require.Equal(t, want, m.season())
			// Every forced candidate still has a finite band around a finite expectation.
			for _, p := range ps {
				require.False(t, math.IsNaN(p.Score) || math.IsInf(p.Expected, 0))
			}
			if want == SeasonDailyWeekly {
				// Forced from the start, the full season scores the second weekend in band, as
				// auto does only once it has enough days.
				require.LessOrEqual(t, share(between(ps, at(days(12)), at(days(14)))), 0.005)
			}
			if want == SeasonNone {
				// Without a season the band of a level must be wider to cover the daily peak.
				var auto Model
				aps := replay(&auto, defaults(), noisy(pattern), rand.New(rand.NewPCG(3, 4)), monday, at(days(21)), step)
				require.Greater(t, meanHalfWidth(between(ps, at(days(14)), at(days(21)))),
					1.5*meanHalfWidth(between(aps, at(days(14)), at(days(21)))))
			}
		})
	}
}

// inject replays the learned pattern for two days from the injection time, with f changing the
// values at and after it.
func inject(t *testing.T, s *Settings, injectAt time.Duration, f func(t time.Time, clean float64, rng *rand.Rand) float64) []point {
	t.Helper()
	m, rng := learned(t, noisy(pattern), 3, s)
	from := at(days(21))
	g := func(tm time.Time, rng *rand.Rand) float64 {
		v := noisy(pattern)(tm, rng)
		if !tm.Before(at(days(21) + injectAt)) {
			return f(tm, v, rng)
		}
		return v
	}
	return replay(m, s, g, rng, from, from.Add(days(2)), step)
}

func TestAnomaliesScoreAboveOne(t *testing.T) {
	// Day 21 is a Monday; anomalies start on it at 10:00, before the weekday peak, unless said.
	const start = 10 * time.Hour
	injected := at(days(21) + start)
	for _, tc := range []struct {
		name string
		// at is when the anomaly begins, relative to day 21.
		at time.Duration
		f  func(t time.Time, clean float64, rng *rand.Rand) float64
		// within is how many samples from the start may pass before a score above 1.
		within int
		// check is what else must hold of the points from the start on.
		check func(t *testing.T, ps []point)
	}{
		{"spike", start, func(t time.Time, v float64, _ *rand.Rand) float64 {
			if t.Equal(injected) {
				return v + 20*noise
			}
			return v
		}, 0, func(t *testing.T, ps []point) {
			// A spike does not drag the baseline: the samples after it are in band, and what is
			// expected next is nearly what it would have been without the spike (the Huber clip
			// keeps the move to a few hundredths of a sigma; unclipped, it would be one sigma).
			require.LessOrEqual(t, share(ps[1:]), 0.005)
			control := between(inject(t, defaults(), days(3), func(_ time.Time, v float64, _ *rand.Rand) float64 { return v }), injected, at(days(23)))
			require.Equal(t, ps[1].t, control[1].t)
			require.InDelta(t, control[1].Expected, ps[1].Expected, 0.2*noise)
		}},
		{"dip", start, func(t time.Time, v float64, _ *rand.Rand) float64 {
			if t.Equal(injected) {
				return v - 20*noise
			}
			return v
		}, 0, func(t *testing.T, ps []point) { require.LessOrEqual(t, share(ps[1:]), 0.005) }},
		{"level shift", start, func(_ time.Time, v float64, _ *rand.Rand) float64 { return v + 15*noise }, 0,
			func(t *testing.T, ps []point) {
				// Flagged, then the new normal within two hours.
				require.Greater(t, ps[1].Score, 1.0)
				require.LessOrEqual(t, share(between(ps, injected.Add(2*time.Hour), injected.Add(days(1.5)))), 0.005)
			}},
		{"level drop", start, func(_ time.Time, v float64, _ *rand.Rand) float64 { return v - 15*noise }, 0,
			func(t *testing.T, ps []point) {
				require.LessOrEqual(t, share(between(ps, injected.Add(2*time.Hour), injected.Add(days(1.5)))), 0.005)
			}},
		{"variance burst", start, func(t time.Time, v float64, rng *rand.Rand) float64 {
			if t.Before(injected.Add(2 * time.Hour)) {
				return v + 6*noise*rng.NormFloat64()
			}
			return v
		}, 0, func(t *testing.T, ps []point) {
			// Seen at its onset for long enough that an alert's `for` fires, and again along
			// the burst, not once. The tail of the residuals learns the burst's heavier tail
			// within it, so that it is not flagged for its whole length: that was what made
			// bursty series flag their normal bursts.
			require.Greater(t, ps[1].Score, 1.0)
			require.Greater(t, share(between(ps, injected, injected.Add(2*time.Hour))), 0.1)
		}},
		{"missed daily peak", 8 * time.Hour, func(t time.Time, v float64, _ *rand.Rand) float64 {
			if t.Before(at(days(21) + 20*time.Hour)) {
				return v - pattern(t) + 100
			}
			return v
		}, 36, nil}, // the peak is 4 sigmas above the level three hours after 8:00
		{"flatline", start, func(time.Time, float64, *rand.Rand) float64 { return 123.4 }, 5, nil},
		{"drop to zero", start, func(time.Time, float64, *rand.Rand) float64 { return 0 }, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := inject(t, defaults(), tc.at, tc.f)
			ps = between(ps, at(days(21)+tc.at), at(days(23)))
			i := firstAbove(ps)
			require.GreaterOrEqual(t, i, 0, "never scored above 1")
			require.LessOrEqual(t, i, tc.within, "first score above 1 at %s", ps[max(i, 0)].t)
			if tc.check != nil {
				tc.check(t, ps)
			}
		})
	}
}

func TestMissedDailyPeakIsFlagged(t *testing.T) {
	// A day without its daily peak (a holiday, a nightly job that did not run) departs from the
	// daily profile by a little more at every sample. The band must not learn that departure as
	// fast as it grows: when the tail learned from it, a peak of 20 sigmas that did not come
	// scored about 1 at single samples at most, which no alert with a `for` sees. It is a level
	// change: flagged for relevelRun samples in a row before the peak's time.
	s := defaults()
	m, rng := learned(t, noisy(dailyOnly), 3, s)
	require.Equal(t, SeasonDaily, m.season())
	holiday := func(_ time.Time, rng *rand.Rand) float64 { return 100 + noise*rng.NormFloat64() }
	ps := replay(m, s, holiday, rng, at(days(21)), at(days(21)+14*time.Hour), step)
	run, longest := 0, 0
	for _, p := range ps {
		run = (run + 1) * b2i(p.Score > 1)
		longest = max(longest, run)
	}
	require.GreaterOrEqual(t, longest, relevelRun, "the missed peak was not flagged as a level change")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestNoAnomalyNoScoreBeforeInjection(t *testing.T) {
	// The control of TestAnomaliesScoreAboveOne: the same two days without an anomaly.
	ps := inject(t, defaults(), days(3), func(_ time.Time, v float64, _ *rand.Rand) float64 { return v })
	require.LessOrEqual(t, share(ps), 0.005)
}

func TestGapDoesNotScore(t *testing.T) {
	m, rng := learned(t, noisy(pattern), 2, defaults())
	// Samples stop at 9:00 on day 15 and come back at 15:00, on the slope of the peak.
	before := replay(m, defaults(), noisy(pattern), rng, at(days(14)), at(days(15)+9*time.Hour), step)
	after := replay(m, defaults(), noisy(pattern), rng, at(days(15)+15*time.Hour), at(days(17)), step)
	require.LessOrEqual(t, share(before), 0.005)
	for _, p := range after[:12] {
		require.LessOrEqual(t, p.Score, 1.0, "at %s", p.t)
	}
	require.LessOrEqual(t, share(after), 0.005)
}

func TestConstantThenChange(t *testing.T) {
	var m Model
	s := defaults()
	for _, p := range replay(&m, s, func(time.Time, *rand.Rand) float64 { return 42 }, nil, monday, at(days(3)), step) {
		require.Zero(t, p.Score, "a constant series is never anomalous")
	}
	// Less than the 0.1% floor is not a change worth a page; a whole unit is.
	r := m.Observe(ms(at(days(3))), 42.03, s)
	require.Less(t, r.Score, 1.0)
	require.InDelta(t, 42, r.Expected, 1e-9)
	require.InDelta(t, 42*floorRel, r.Upper-r.Expected, 1e-9)
	ps := replay(&m, s, func(time.Time, *rand.Rand) float64 { return 43 }, nil, at(days(3)+step), at(days(4)), step)
	require.Greater(t, ps[0].Score, 1.0)
	require.False(t, math.IsInf(ps[0].Score, 0))
	// Learned as the new level within two hours.
	for _, p := range between(ps, at(days(3)+2*time.Hour), at(days(4))) {
		require.LessOrEqual(t, p.Score, 1.0, "at %s", p.t)
	}
}

func TestConstantZero(t *testing.T) {
	var m Model
	s := defaults()
	replay(&m, s, func(time.Time, *rand.Rand) float64 { return 0 }, nil, monday, at(days(1)), step)
	r := m.Observe(ms(at(days(1))), 1, s)
	require.Greater(t, r.Score, 1.0)
	require.LessOrEqual(t, r.Score, float64(maxScore))
}

func TestDirection(t *testing.T) {
	m, _ := learned(t, noisy(pattern), 3, defaults())
	at21 := at(days(21) + 10*time.Hour)
	for _, tc := range []struct {
		dir          Direction
		spike, dip   bool // whether each scores above 1
		spikeDipZero bool
	}{
		{DirectionBoth, true, true, false},
		{DirectionUp, true, false, true},
		{DirectionDown, false, true, true},
	} {
		t.Run(tc.dir.String(), func(t *testing.T) {
			s := defaults()
			s.Direction = tc.dir
			up, down := *m, *m
			e := pattern(at21)
			ru := up.Observe(ms(at21), e+20*noise, s)
			rd := down.Observe(ms(at21), e-20*noise, s)
			require.Equal(t, tc.spike, ru.Score > 1)
			require.Equal(t, tc.dip, rd.Score > 1)
			if tc.spikeDipZero {
				require.Zero(t, min(ru.Score, rd.Score), "the ignored side scores 0")
			}
			// The band is the same whatever the direction.
			require.InDelta(t, ru.Upper-ru.Expected, ru.Expected-ru.Lower, 1e-9)
		})
	}
}

func TestMinDeviations(t *testing.T) {
	quiet := func(_ time.Time, rng *rand.Rand) float64 { return 10 + 0.01*rng.NormFloat64() }
	for _, tc := range []struct {
		name     string
		abs, rel float64
		anomaly  bool // whether 10.5 scores above 1
	}{
		{"none: the spread decides", 0, 0, true},
		{"absolute", 1, 0, false},
		{"relative", 0, 0.1, false},
		{"the larger one wins", 0.2, 0.03, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults()
			s.MinAbsDeviation, s.MinRelDeviation = tc.abs, tc.rel
			var m Model
			ps := replay(&m, s, quiet, rand.New(rand.NewPCG(9, 9)), monday, at(days(3)), step)
			for _, p := range ps[1:] {
				require.GreaterOrEqual(t, p.Upper-p.Expected, max(tc.abs, tc.rel*math.Abs(p.Expected))*(1-1e-12))
			}
			r := m.Observe(ms(at(days(3))), 10.5, s)
			require.Equal(t, tc.anomaly, r.Score > 1, "score %g", r.Score)
		})
	}
}

func TestSensitivityScalesTheBand(t *testing.T) {
	m, _ := learned(t, noisy(pattern), 2, defaults())
	s1, s2 := defaults(), defaults()
	s2.Sensitivity = 2
	a, b := *m, *m
	tm := ms(at(days(14) + 10*time.Hour))
	r1 := a.Observe(tm, 130, s1)
	r2 := b.Observe(tm, 130, s2)
	require.InDelta(t, (r1.Upper-r1.Expected)/2, r2.Upper-r2.Expected, 1e-9)
	require.InDelta(t, 2*r1.Score, r2.Score, 1e-9)
}

// TestRegularBurstsAreNormal: a series whose normal is quiet with bursts every couple of hours
// (a batch job, a cache flush) learns the bursts as normal instead of paging on each.
func TestRegularBurstsAreNormal(t *testing.T) {
	g := func(tm time.Time, rng *rand.Rand) float64 {
		if tm.Minute() < 10 && tm.Hour()%2 == 0 {
			return 50 + 20*rng.Float64()
		}
		return 0
	}
	var m Model
	ps := replay(&m, defaults(), g, rand.New(rand.NewPCG(1, 1)), monday, at(days(14)), step)
	require.LessOrEqual(t, share(between(ps, at(days(7)), at(days(14)))), 0.01)
}

func TestFlatlineOfAFlatSeriesIsNormal(t *testing.T) {
	// Integer gauges repeat values all the time: a run of equal values is no flatline for them.
	g := func(_ time.Time, rng *rand.Rand) float64 { return float64(rng.IntN(3)) }
	var m Model
	ps := replay(&m, defaults(), g, rand.New(rand.NewPCG(4, 4)), monday, at(days(7)), step)
	require.LessOrEqual(t, share(ps[len(ps)/2:]), 0.005)
}

func TestLevelChangeAtFiveMinutesFlagsFifteen(t *testing.T) {
	// At 5-minute sampling three flagged samples hold the score above 1 for 15 minutes, which
	// is what an alert needs; a fourth would be one more false positive for the same change.
	s := defaults()
	var m Model
	rng := rand.New(rand.NewPCG(3, 4))
	replay(&m, s, noisy(flat), rng, monday, at(days(3)), step)
	shift := at(days(3))
	ps := replay(&m, s, func(t time.Time, rng *rand.Rand) float64 { return 100 + 30*noise + noise*rng.NormFloat64() },
		rng, shift, shift.Add(time.Hour), step)
	for i, p := range ps {
		if i < 3 {
			require.Greater(t, p.Score, 1.0, "sample %d of the change", i)
		} else {
			require.LessOrEqual(t, p.Score, 1.0, "sample %d of the change", i)
		}
	}
}

func TestHourlyJobIsWellInsideTheBand(t *testing.T) {
	// A job every hour lifts the series from 35 to 80 for five minutes, much the same each
	// time: a twelfth of the samples, so the tail's 2% quantile falls among them, and the
	// excess above it is small. The band must still clear the spikes by a margin, not put its
	// edge among them so that each one scores just under 1.
	g := func(t time.Time, rng *rand.Rand) float64 {
		if t.Minute() >= 5 && t.Minute() < 10 {
			return 80 + 2*rng.NormFloat64()
		}
		return 35 + 1.5*rng.NormFloat64()
	}
	var m Model
	ps := replay(&m, defaults(), g, rand.New(rand.NewPCG(7, 8)), monday, at(days(21)), step)
	n := 0
	late := between(ps, at(days(14)), at(days(21)))
	for _, p := range late {
		if p.Score > 0.8 {
			n++
		}
	}
	require.LessOrEqual(t, float64(n)/float64(len(late)), 0.002, "%d of %d samples above 0.8", n, len(late))
}

func TestOutageKeepsTheSeason(t *testing.T) {
	// A partial outage takes a third off the series for five hours around its daily peak. The
	// daily candidate misses by that much while a level without season catches up within the
	// hour; hours of misses must not hand the scoring to it, or the outage is absorbed and the
	// next day's peak is a surprise. (With a day's memory of the errors it did, at 14:55.)
	var m Model
	s := defaults()
	rng := rand.New(rand.NewPCG(9, 10))
	replay(&m, s, noisy(dailyOnly), rng, monday, at(days(14)), step)
	require.Equal(t, SeasonDaily, m.season())
	g := noisy(dailyOnly)
	for tt := at(days(14)); tt.Before(at(days(16))); tt = tt.Add(step) {
		v := g(tt, rng)
		if !tt.Before(at(days(14)+11*time.Hour)) && tt.Before(at(days(14)+16*time.Hour)) {
			v *= 2.0 / 3
		}
		m.Observe(ms(tt), v, s)
		require.Equal(t, SeasonDaily, m.season(), "at %s", tt)
	}
}

func TestQuietSpellOfASpikySeriesIsNoFlatline(t *testing.T) {
	// CPU at 2% with a burst to 60% for a quarter of an hour every day: right after a burst
	// its spread is large, and the small moves between bursts are its normal, not a flatline.
	g := func(t time.Time, rng *rand.Rand) float64 {
		if t.Minute() < 15 && t.Hour() == 0 {
			return 60 + 5*rng.NormFloat64()
		}
		return 2 + 0.2*rng.NormFloat64()
	}
	var m Model
	ps := replay(&m, defaults(), g, rand.New(rand.NewPCG(5, 6)), monday, at(days(14)), step)
	var quiet []point
	for _, p := range between(ps, at(days(7)), at(days(14))) {
		if p.v < 10 && p.Score > 1 {
			quiet = append(quiet, p)
		}
	}
	require.Empty(t, quiet)
}

func TestFlatlineBecomesNormal(t *testing.T) {
	ps := inject(t, defaults(), 10*time.Hour, func(time.Time, float64, *rand.Rand) float64 { return 100 })
	// A series that stays flat is, after a while, a flat series.
	require.Zero(t, share(between(ps, at(days(22)), at(days(23)))))
}

func TestExtremeValuesStayFinite(t *testing.T) {
	var m Model
	s := defaults()
	vals := []float64{1, -1e308, 1e308, 0, math.MaxFloat64, -math.MaxFloat64, 1e-300, 5}
	for i := range 200 {
		v := vals[i%len(vals)]
		r := m.Observe(int64(i)*60_000, v, s)
		for _, x := range []float64{r.Score, r.Expected, r.Lower, r.Upper} {
			require.False(t, math.IsNaN(x), "sample %d", i)
		}
		require.False(t, math.IsInf(r.Score, 0))
	}
}

func BenchmarkObserve(b *testing.B) {
	var m Model
	s := DefaultSettings()
	rng := rand.New(rand.NewPCG(1, 2))
	t := ms(monday)
	b.ReportAllocs()
	for b.Loop() {
		t += 300_000
		m.Observe(t, 100+rng.NormFloat64(), &s)
	}
}

// TestLevelChangeOutlastsAlertFor: at a 15-second scrape, five samples are 75 seconds, too
// short for an alert with `for`; a lasting change must stay flagged for relevelMinDuration of
// sample time, and then be learned.
func TestLevelChangeOutlastsAlertFor(t *testing.T) {
	const every = 15 * time.Second
	s := defaults()
	var m Model
	rng := rand.New(rand.NewPCG(3, 4))
	replay(&m, s, noisy(flat), rng, monday, at(days(2)), every)
	shift := at(days(2))
	ps := replay(&m, s, func(t time.Time, rng *rand.Rand) float64 { return 100 + 30*noise + noise*rng.NormFloat64() },
		rng, shift, shift.Add(time.Hour), every)
	for _, p := range between(ps, shift, shift.Add(15*time.Minute)) {
		require.Greater(t, p.Score, 1.0, "still flagged %s after the change", p.t.Sub(shift))
	}
	require.LessOrEqual(t, share(between(ps, shift.Add(30*time.Minute), shift.Add(time.Hour))), 0.01,
		"learned as the new normal within half an hour")
}

// TestSmoothingWeights: the weights derived from one expm1 are those of an expm1 each.
func TestSmoothingWeights(t *testing.T) {
	for _, dt := range []float64{0, 1, 1000, 15_000, 60_000, 300_000, 1_800_000, 3_600_000} {
		got := smoothingWeights(dt)
		for i, tau := range []float64{tauOffsetNone, tauOffsetSeasonal, tauSpread, tauFlat, tauChoice} {
			want := -math.Expm1(-dt / tau)
			require.InEpsilon(t, want+1e-300, got[i]+1e-300, 1e-14, "dt %v tau %v", dt, tau)
		}
	}
}

// TestClockSettled: past settledAfter, clock skips counting, and every count it reports is one
// that the model uses exactly as the counted one.
func TestClockSettled(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		m := Model{firstT: rng.Int64N(1 << 41)}
		at := m.firstT + settledAfter + rng.Int64N(400*dayMs)
		_, fast := m.clock(at)
		slow := fast
		h0, _ := hourBuckets(at)
		countVisits(&slow, at, h0, func() int64 { h, _ := hourBuckets(m.firstT); return h }(), floorDiv(m.firstT, dayMs))
		for i := range 2 {
			require.Equal(t, visitIndex(slow.visitsDaily[i]), visitIndex(fast.visitsDaily[i]))
			require.Equal(t, visitIndex(slow.visitsDW[i]), visitIndex(fast.visitsDW[i]))
		}
		require.Equal(t, visitIndex(slow.visitsNone), visitIndex(fast.visitsNone))
		require.Equal(t, visitIndex(slow.visitsWeekly), visitIndex(fast.visitsWeekly))
		for k := range numCandidates {
			require.Equal(t, slow.firstVisit(k), fast.firstVisit(k))
		}
		require.Equal(t, slow.weekdays >= minWeekdays, fast.weekdays >= minWeekdays)
		require.Equal(t, slow.weekendDays >= minWeekendDays, fast.weekendDays >= minWeekendDays)
		require.GreaterOrEqual(t, slow.weekdays, fast.weekdays)
		require.GreaterOrEqual(t, slow.weekendDays, fast.weekendDays)
	}
}

// TestObserveAtSharedInstant: models scored in turn through one Instant per timestamp, whose
// memos of visit counts and weights are reused across them, end in exactly the state and
// results of Observe, with models of different ages (visit counts), some first seen together,
// smooth and stepped daily profiles, gaps and sampling intervals mixed.
func TestObserveAtSharedInstant(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	s := DefaultSettings()
	const n = 24
	var shared, alone [n]Model
	starts := [n]int64{}
	for i := range starts {
		starts[i] = ms(monday) + rng.Int64N(40)*dayMs + rng.Int64N(dayMs)
		if i%2 == 1 {
			starts[i] = starts[i-1] // first seen together: they share their visit counts
		}
	}
	every := []int64{15_000, 60_000, 300_000}
	end := ms(monday) + 60*dayMs
	for ts := ms(monday); ts < end; ts += 15_000 * (1 + rng.Int64N(20)) {
		in := At(ts)
		for i := range shared {
			if ts < starts[i] || (ts/15_000)%(every[i/2%len(every)]/15_000) != 0 {
				continue
			}
			v := 100 + 10*math.Sin(float64(ts)/float64(dayMs)*2*math.Pi) + rng.NormFloat64()
			if i%4 >= 2 { // a profile that steps at hours: read and learned as steps there
				v = businessHours(time.UnixMilli(ts).UTC()) + rng.NormFloat64()
			}
			got := shared[i].ObserveAt(&in, v, &s)
			want := alone[i].Observe(ts, v, &s)
			require.Equal(t, want, got, "series %d at %d", i, ts)
			require.Equal(t, alone[i], shared[i], "series %d at %d", i, ts)
		}
	}
}

// businessHours steps from 20 to 80 at 09:00 and back at 18:00 every day, like a service scaled
// up for the working day or a batch that runs from cron.
func businessHours(t time.Time) float64 {
	if h := t.Hour(); h >= 9 && h < 18 {
		return 80
	}
	return 20
}

// TestDailyStepsAreLearned: a daily profile that steps at an hour is learned as a step, not as a
// ramp that misses by half the step at that hour every day, so that a day without the step is
// flagged at once, and its days with the step are quiet.
func TestDailyStepsAreLearned(t *testing.T) {
	s := defaults()
	var m Model
	rng := rand.New(rand.NewPCG(5, 6))
	ps := replay(&m, s, noisy(businessHours), rng, monday, at(days(14)), step)
	require.LessOrEqual(t, share(between(ps, at(days(7)), at(days(14)))), 0.005)
	// Day 14: the working day does not come.
	off := func(time.Time) float64 { return 20 }
	missed := replay(&m, s, noisy(off), rng, at(days(14)), at(days(14)+9*time.Hour+30*time.Minute), step)
	missed = between(missed, at(days(14)+9*time.Hour), at(days(15)))
	i := firstAbove(missed)
	require.Equal(t, 0, i, "first score above 1 at %d", i)
	// Then it is a level change: flagged for relevelMinDuration, as any.
	nine := at(days(14) + 9*time.Hour)
	for _, p := range between(missed, nine, nine.Add(relevelMinDuration*time.Millisecond)) {
		require.Greater(t, p.Score, 1.0, "%s after 09:00", p.t.Sub(nine))
	}
}

func TestDailySpikeSettlesInsideTheBand(t *testing.T) {
	// A job at 03:00 every day lifts one sample by 20 sigmas, much the same each day. Once
	// learned, the band at that hour is about peakBand times the spike, so that the spike scores
	// near 1/peakBand, clear of the edge, rather than settling just under 1 (and over it on a
	// day it is a little larger), where every day's spike competes with the rare events that a
	// threshold below 1 is meant to find.
	g := func(tm time.Time, rng *rand.Rand) float64 {
		v := 100 + noise*rng.NormFloat64()
		if tm.Hour() == 3 && tm.Minute() == 0 {
			v += 20 * noise
		}
		return v
	}
	var m Model
	ps := replay(&m, defaults(), g, rand.New(rand.NewPCG(5, 6)), monday, at(days(21)), step)
	sum, n := 0.0, 0
	for _, p := range between(ps, at(days(14)), at(days(21))) {
		if p.t.Hour() == 3 && p.t.Minute() == 0 {
			require.LessOrEqual(t, p.Score, 1.0, "spike of %s", p.t)
			sum += p.Score
			n++
		}
	}
	require.Less(t, sum/float64(n), 0.87, "mean score of the spikes")
}

func TestShortRepeatScoresNothing(t *testing.T) {
	// A value repeated once or twice is no flatline yet: its score is its deviation alone, not
	// a share of the run that would be one, which would rank a repeat among real deviations.
	s := defaults()
	var m Model
	rng := rand.New(rand.NewPCG(2, 7))
	ps := replay(&m, s, noisy(flat), rng, monday, at(days(3)), step)
	last := ps[len(ps)-1]
	v := last.v
	for i := 1; i <= 4; i++ {
		r := m.Observe(ms(last.t.Add(time.Duration(i)*step)), v, s)
		dev := math.Abs(v-r.Expected) / (r.Upper - r.Expected)
		switch {
		case i < flatMinRun:
			require.InDelta(t, dev, r.Score, 1e-9, "repeat %d", i)
		case i > flatMinRun:
			require.Greater(t, r.Score, 1.0, "repeat %d", i)
		}
	}
}

func TestLevelDropMovesEveryHour(t *testing.T) {
	// A level change is a change at every hour of the day (a deploy that moves a seasonal
	// series down): once it is learned, the hours not visited since it are expected at the new
	// level too, not at the old one as their profile buckets remember it.
	start := at(days(21) + 10*time.Hour)
	ps := inject(t, defaults(), 10*time.Hour, func(_ time.Time, v float64, _ *rand.Rand) float64 { return v - 15*noise })
	worst := 0.0
	for _, p := range between(ps, start.Add(time.Hour), start.Add(days(1.5))) {
		worst = max(worst, math.Abs(p.Expected-(pattern(p.t)-15*noise)))
	}
	require.LessOrEqual(t, worst, 2*noise)
}

func TestRampIsFollowed(t *testing.T) {
	// A steady ramp (a filling disk, a growing queue) is followed by the level's trend rather
	// than lagged by its memory: the band stays near what the noise asks for, so that a spike
	// of 8 sigmas on the ramp is seen (without the trend, the lag widened the band 2.6-fold and
	// the spike scored 0.77).
	s := defaults()
	var m Model
	ramp := func(tm time.Time, rng *rand.Rand) float64 {
		return 100 + 10*tm.Sub(monday).Hours() + noise*rng.NormFloat64()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ps := replay(&m, s, ramp, rng, monday, at(days(10)), step)
	require.LessOrEqual(t, share(between(ps, at(days(3)), at(days(10)))), 0.005)
	tm := at(days(10))
	r := m.Observe(ms(tm), ramp(tm, rng)+8*noise, s)
	require.Greater(t, r.Score, 1.0)
}

// climb is pattern with noise, rising by rate per hour from 10:00 on day 14.
func climb(rate float64) gen {
	return func(tm time.Time, rng *rand.Rand) float64 {
		v := noisy(pattern)(tm, rng)
		if h := tm.Sub(at(days(14) + 10*time.Hour)).Hours(); h > 0 {
			v += rate * h
		}
		return v
	}
}

func TestClimbBeyondEverSeenIsFlagged(t *testing.T) {
	// A drift of a sigma an hour (a temperature climbing as cooling fails) is followed by the
	// level and its trend, and none of its samples leaves the band (without the range score
	// none scored above 1 in the 38 hours); it is flagged when it takes the series beyond any
	// value it has had, and then only now and then, as it sets records at every sample.
	var m Model
	rng := rand.New(rand.NewPCG(1, 2))
	start := at(days(14) + 10*time.Hour)
	ps := between(replay(&m, defaults(), climb(noise), rng, monday, at(days(16)), step), start, at(days(16)))
	i := firstAbove(ps)
	require.GreaterOrEqual(t, i, 0, "never scored above 1")
	require.LessOrEqual(t, ps[i].t.Sub(start), 4*time.Hour)
	require.LessOrEqual(t, share(ps), 5/float64(len(ps)))
}

func TestFastRampPastTheRangeIsFlaggedOnce(t *testing.T) {
	// A ramp of 60 an hour (a queue filling up) leaves the range of the series at every sample,
	// by more than the noise: it is flagged at its onset, as a level change, and then its
	// records are no news (records are only news where they are rare).
	var m Model
	rng := rand.New(rand.NewPCG(1, 2))
	start := at(days(14) + 10*time.Hour)
	ps := between(replay(&m, defaults(), func(tm time.Time, rng *rand.Rand) float64 {
		return climb(60)(tm, rng) - pattern(tm) + 100
	}, rng, monday, at(days(16)), step), start, at(days(16)))
	i := firstAbove(ps)
	require.GreaterOrEqual(t, i, 0, "never scored above 1")
	require.Less(t, i, 12, "first score above 1 at %s", ps[max(i, 0)].t)
	require.Zero(t, share(between(ps, start.Add(3*time.Hour), at(days(16)))))
}

func TestSpikesOfOneBurstAlertOnce(t *testing.T) {
	// Spikes half an hour apart are one episode: the first is flagged, the next one like it is
	// not, one more than recentBand times as large is, and a spike like the first hours later
	// is flagged again. A level change right after a spike is still flagged for relevelRun
	// samples in a row.
	s := defaults()
	m, rng := learned(t, noisy(pattern), 3, s)
	base := at(days(21) + 10*time.Hour)
	later := 10 * time.Hour
	spikes := map[time.Duration]float64{0: 20, 30 * time.Minute: 20, time.Hour: 60, later: 20}
	g := func(tm time.Time, rng *rand.Rand) float64 {
		return noisy(pattern)(tm, rng) + noise*spikes[tm.Sub(base)]
	}
	ps := replay(m, s, g, rng, base, base.Add(later+30*time.Minute), step)
	score := func(d time.Duration) float64 { return between(ps, base.Add(d), base.Add(d+step))[0].Score }
	require.Greater(t, score(0), 1.0, "the first spike")
	require.LessOrEqual(t, score(30*time.Minute), 1.0, "a spike like it half an hour later")
	require.Greater(t, score(time.Hour), 1.0, "a spike three times as large")
	require.Greater(t, score(later), 1.0, "a spike like the first hours later")

	shift := base.Add(later + 30*time.Minute)
	ps = replay(m, s, func(tm time.Time, rng *rand.Rand) float64 { return noisy(pattern)(tm, rng) + 30*noise },
		rng, shift, shift.Add(time.Hour), step)
	run, longest := 0, 0
	for _, p := range ps {
		run = (run + 1) * b2i(p.Score > 1)
		longest = max(longest, run)
	}
	require.LessOrEqual(t, ps[0].Score, 1.0, "the change's first sample, like the spike before it")
	require.GreaterOrEqual(t, longest, relevelRun, "a level change after a spike")
}

// TestF32Saturates: f32 is the conversion where that is finite (also just above MaxFloat32,
// which rounds down to it), MaxFloat32 with the sign of x beyond, and NaN for NaN.
func TestF32Saturates(t *testing.T) {
	want := func(x float64) float32 {
		switch {
		case x > math.MaxFloat32:
			return math.MaxFloat32
		case x < -math.MaxFloat32:
			return -math.MaxFloat32
		}
		return float32(x)
	}
	m := float64(math.MaxFloat32)
	below := float64(math.Nextafter32(math.MaxFloat32, 0))
	mid := m + (m-below)/2 // halfway to the next power: rounds to even, which is infinity
	var xs []float64
	for _, x := range []float64{0, 1.5, 1e-50, 1e300, math.Inf(1), m, below, mid, (m + below) / 2} {
		for _, y := range []float64{x, math.Nextafter(x, 0), math.Nextafter(x, math.Inf(1))} {
			xs = append(xs, y, -y)
		}
	}
	for _, x := range xs {
		require.Equal(t, math.Float32bits(want(x)), math.Float32bits(f32(x)), "f32(%g)", x)
	}
	require.Equal(t, float32(math.MaxFloat32), f32(math.Nextafter(mid, 0)), "rounds down to MaxFloat32")
	require.Equal(t, float32(math.MaxFloat32), f32(mid))
	require.True(t, math.IsNaN(float64(f32(math.NaN()))))
}

// TestRoundPos: roundPos is math.Round for every x >= 0, halves and their neighbours included.
func TestRoundPos(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	xs := []float64{0, math.Inf(1), 1 << 52, 1<<52 + 1, 1 << 53, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for i := range 70000 {
		h := float64(i) + 0.5
		xs = append(xs, float64(i), h, math.Nextafter(h, 0), math.Nextafter(h, math.Inf(1)),
			rng.Float64()*math.MaxUint16)
	}
	for _, x := range xs {
		require.Equal(t, math.Float64bits(math.Round(x)), math.Float64bits(roundPos(x)), "roundPos(%v)", x)
	}
	require.True(t, math.IsNaN(roundPos(math.NaN())))
}
