package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPeriodStart: a time is before periodStart(n, p) exactly when its period is before n,
// for negative times and at the ends of int64.
func TestPeriodStart(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	edges := []int64{math.MinInt64, math.MinInt64 + 1, math.MinInt64 + dayMs, -dayMs - 1, -dayMs, -1, 0, 1,
		hourMs - 1, hourMs, math.MaxInt64 - dayMs, math.MaxInt64}
	for _, p := range []int64{hourMs, dayMs} {
		for range 20000 {
			x, y := rng.Int64()-rng.Int64N(2)*math.MaxInt64, rng.Int64()-rng.Int64N(2)*math.MaxInt64
			if rng.IntN(2) == 0 {
				y = x + rng.Int64N(3*dayMs) - dayMs
			}
			if rng.IntN(4) == 0 {
				x, y = edges[rng.IntN(len(edges))], edges[rng.IntN(len(edges))]
			}
			n := floorDiv(y, p)
			require.Equal(t, floorDiv(x, p) < n, x < periodStart(n, p), "x %d y %d p %d", x, y, p)
		}
	}
}

// TestObserveShiftedWeeks: the model depends on the calendar only through the hour of day and
// the day of the week, so that a run moved by whole weeks, into negative times too, scores
// every sample the same and ends in the same state.
func TestObserveShiftedWeeks(t *testing.T) {
	const week = 7 * dayMs
	s := DefaultSettings()
	// A week back, to three weeks before the epoch, to 55 years back (before the epoch).
	for _, shift := range []int64{-week, -ms(monday)/week*week - 3*week, -2900 * week} {
		rng := rand.New(rand.NewPCG(13, 14))
		var a, b Model
		ts := ms(monday) + 1234
		for i := range 30000 {
			ts += 60_000 + rng.Int64N(600_000)
			if rng.IntN(3000) == 0 {
				ts += rng.Int64N(2 * dayMs)
			}
			v := 100 + 20*math.Sin(float64(ts)/float64(dayMs)*2*math.Pi) + rng.NormFloat64()
			if rng.IntN(500) == 0 {
				v += 50
			}
			ra := a.Observe(ts, v, &s)
			in := At(ts + shift)
			rb := b.ObserveAt(&in, v, &s)
			require.Equal(t, ra, rb, "sample %d shift %d", i, shift)
		}
		a.firstT, a.lastT = a.firstT+shift, a.lastT+shift
		require.Equal(t, a, b, "shift %d", shift)
	}
}

// TestBucketOffsets: the offsets are those of the hour buckets that the model reads at t,
// before the epoch and at the ends of int64 too.
func TestBucketOffsets(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for i := range 100000 {
		ts := rng.Int64() - rng.Int64N(2)*math.MaxInt64
		switch i % 4 {
		case 0:
			ts = rng.Int64N(4*dayMs) - 2*dayMs
		case 1:
			ts = []int64{math.MinInt64, math.MinInt64 + hourMs/2, math.MaxInt64, hourMs/2 - 1, hourMs / 2, 0}[i/4%6]
		}
		in := At(ts)
		a, b := BucketOffsets(ts)
		require.Equal(t, HeadSize+uintptr(in.hd[0])*BucketSize, a, "t %d", ts)
		require.Equal(t, HeadSize+uintptr(in.hd[1])*BucketSize, b, "t %d", ts)
	}
}

// TestResultBits: result returns, bit for bit, what the builtins' formulation of it returns
// (resultRef), for NaN, infinite, signed-zero and extreme inputs and settings too.
func TestResultBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	odd := []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), 1e-300, -1e-300, 1e-9,
		math.MaxFloat64, -math.MaxFloat64, 1, -1, 1e9, 2e9, 1e300}
	pick := func() float64 {
		if rng.IntN(3) == 0 {
			return odd[rng.IntN(len(odd))]
		}
		return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))
	}
	for i := range 200000 {
		s := DefaultSettings()
		if i%2 == 1 {
			s.Sensitivity, s.MinAbsDeviation, s.MinRelDeviation = pick(), pick(), pick()
			s.Direction = Direction(rng.IntN(3))
		}
		m := Model{firstT: rng.Int64N(1 << 40)}
		ts := m.firstT + rng.Int64N(2*dayMs)
		v, e, sigma := pick(), pick(), math.Abs(pick())
		flat := []float64{0, 0.5, 3, 1e10}[rng.IntN(4)]
		got, want := m.result(ts, v, e, sigma, flat, &s), resultRef(&m, ts, v, e, sigma, flat, &s)
		for j, p := range [][2]float64{{got.Score, want.Score}, {got.Expected, want.Expected}, {got.Lower, want.Lower}, {got.Upper, want.Upper}} {
			require.Equal(t, math.Float64bits(p[1]), math.Float64bits(p[0]), "field %d of v %v e %v sigma %v flat %v settings %+v", j, v, e, sigma, flat, s)
		}
		require.Equal(t, want.Learning, got.Learning)
	}
}

// resultRef is result as it was written with the builtin min and max throughout.
func resultRef(m *Model, t int64, v, expected, sigma, flat float64, s *Settings) Result {
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
	score = max(score, flat)
	return Result{
		Score:    min(score, maxScore),
		Expected: expected,
		Lower:    expected - h,
		Upper:    expected + h,
		Learning: t-m.firstT < s.LearningPeriod.Milliseconds(),
	}
}

// TestRecordNoStep: a rate up to recordNoStep is where learnRange's step without a record rounds
// back, and the first rate above it is not.
func TestRecordNoStep(t *testing.T) {
	for p := range recordNoStep + 2 {
		got := uint16(math.Round(float64(p) + (0-float64(p))/recordSamples))
		if p <= recordNoStep {
			require.Equal(t, uint16(p), got, "rate %d", p)
		} else {
			require.NotEqual(t, uint16(p), got, "rate %d", p)
		}
	}
}

// TestAtCalendar: At's calendar is that of floorDiv and mod throughout (atRef), before the epoch
// and at the ends of int64 too.
func TestAtCalendar(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	edges := []int64{math.MinInt64, math.MinInt64 + peakJitter, math.MaxInt64, math.MaxInt64 - peakJitter, -1, 0,
		peakJitter - 1, peakJitter, hourMs/2 - 1, hourMs / 2, -hourMs / 2, -dayMs, dayMs - 1}
	for i := range 200000 {
		ts := rng.Int64() - rng.Int64N(2)*math.MaxInt64
		switch i % 3 {
		case 0:
			ts = rng.Int64N(20*dayMs) - 10*dayMs
		case 1:
			ts = edges[i/3%len(edges)] + rng.Int64N(3) - 1
		}
		got, want := At(ts), atRef(ts)
		require.Equal(t, want, got, "t %d", ts)
	}
}

// atRef is At as written with floorDiv and mod.
func atRef(t int64) Instant {
	h0, w1 := hourBuckets(t)
	in := Instant{t: t, h0: h0, w: [2]float64{1 - w1, w1}, tyNow: dayTypeRef(floorDiv(t, dayMs)),
		hour: floorDiv(t, hourMs), day: floorDiv(t, dayMs),
		peakHours: [2]int{int(mod(floorDiv(t-peakJitter, hourMs), 24)), int(mod(floorDiv(t+peakJitter, hourMs), 24))}}
	for i, h := range [2]int64{h0, h0 + 1} {
		in.hd[i] = int(mod(h, 24))
		in.ty[i] = dayTypeRef(floorDiv(h, 24))
	}
	in.hourStart, in.dayStart = periodStart(in.hour, hourMs), periodStart(in.day, dayMs)
	in.c = clock{t: t, hd: in.hd, ty: in.ty, w: in.w, wLin: in.w[1], tyNow: in.tyNow}
	return in
}

func dayTypeRef(day int64) int {
	switch mod(day+4, 7) {
	case 0, 6:
		return 1
	}
	return 0
}
