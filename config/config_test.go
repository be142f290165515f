package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	prommodel "github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// render is the golden form of a loaded configuration: the effective YAML, then what it derives
// from it, so that a change of defaults, matcher order or fingerprint shows in review.
func render(t *testing.T, c *Config) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(c.String())
	for i := range c.Rules {
		r := &c.Rules[i]
		ms := make([]string, len(r.Matchers))
		for j, m := range r.Matchers {
			ms[j] = m.String()
		}
		fmt.Fprintf(&b, "# rules[%d]: matchers [%s] fingerprint %016x\n", i, strings.Join(ms, ", "), r.Fingerprint())
	}
	return b.String()
}

func TestLoadValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, err := LoadFile(path)
			require.NoError(t, err)
			got := render(t, c)
			golden := strings.TrimSuffix(path, ".yml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./config/ -update to create it")
			require.Equal(t, string(want), got)

			// The effective YAML loads back into the same configuration.
			again, err := Load([]byte(c.String()))
			require.NoError(t, err)
			require.Equal(t, got, render(t, again))
		})
	}
}

func TestLoadFull(t *testing.T) {
	c, err := LoadFile("testdata/valid/full.yml")
	require.NoError(t, err)
	require.Equal(t, GlobalConfig{
		MaxSeries:    5000,
		StaleAfter:   prommodel.Duration(150 * time.Second),
		SeriesExpiry: prommodel.Duration(14 * 24 * time.Hour),
	}, c.Global)
	require.Len(t, c.Rules, 5)
	require.Equal(t, "http-latency", c.Rules[0].Name)
	require.Equal(t, `{__name__=~"http_.*_seconds.*", job!="test"}`, c.Rules[0].Selector)
	require.Equal(t, model.Settings{
		Seasonality:     model.SeasonDailyWeekly,
		Sensitivity:     2.5,
		Direction:       model.DirectionUp,
		MinAbsDeviation: 0.05,
		MinRelDeviation: 0.1,
		LearningPeriod:  7 * 24 * time.Hour,
	}, c.Rules[0].Settings)
	// Unnamed rules are named after their index; the rest of a rule's settings are defaults.
	want := model.DefaultSettings()
	want.Seasonality, want.Direction, want.LearningPeriod = model.SeasonNone, model.DirectionDown, 36*time.Hour
	require.Equal(t, "rule-1", c.Rules[1].Name)
	require.Equal(t, want, c.Rules[1].Settings)
	require.Equal(t, model.SeasonDaily, c.Rules[2].Settings.Seasonality)
	require.Equal(t, model.DirectionBoth, c.Rules[2].Settings.Direction)
	require.Equal(t, model.SeasonWeekly, c.Rules[3].Settings.Seasonality)
	require.Zero(t, c.Rules[3].Settings.LearningPeriod)
	require.Equal(t, model.SeasonAuto, c.Rules[4].Settings.Seasonality)
	require.Empty(t, c.Rules[4].Matchers)
}

func TestLoadDefaults(t *testing.T) {
	for _, data := range []string{"", "# nothing\n", "global:\n", "rules:\n", "global: {}\nrules: ~\n"} {
		c, err := Load([]byte(data))
		require.NoError(t, err, "%q", data)
		require.Equal(t, GlobalConfig{MaxSeries: DefaultMaxSeries, StaleAfter: DefaultStaleAfter, SeriesExpiry: DefaultSeriesExpiry}, c.Global, "%q", data)
		require.Equal(t, []Rule{{Name: "rule-0", Settings: model.DefaultSettings()}}, c.Rules, "%q", data)
	}
}

func TestLoadInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, data, err string
	}{
		{"unknown top-level field", "global: {}\nrule:\n  - name: x\n", "line 2: field rule not found in type config.file"},
		{"unknown global field", "global:\n  max_serie: 3\n", "line 2: field max_serie not found in type config.global"},
		{"unknown rule field", "rules:\n  - name: a\n  - name: b\n    sensitvity: 2\n", "line 4: field sensitvity not found in type config.rule"},
		{"duplicate key", "rules:\n  - name: a\n    name: b\n", `line 3: mapping key "name" already defined at line 2`},
		{"syntax", "rules:\n\t- name: a\n", "line 2: found character that cannot start any token"},
		{"second document", "rules:\n  - name: a\n---\nrules: []\n", "line 3: a configuration file holds one YAML document"},
		{"top level not a mapping", "- a\n", "line 1: cannot unmarshal !!seq into config.file"},
		{"rules not a list", "rules: all\n", "line 1: cannot unmarshal !!str `all` into []*config.rule"},
		{"sensitivity wrong type", "rules:\n  - sensitivity: high\n", "line 2: cannot unmarshal !!str `high` into float64"},
		{"max_series wrong type", "global:\n  max_series: many\n", "line 2: cannot unmarshal !!str `many` into int"},
		{"name wrong type", "rules:\n  - name: [a]\n", "line 2: cannot unmarshal !!seq into string"},
		{"negative max_series", "global:\n  max_series: -1\n", "global (line 2): max_series: must be >= 0"},
		{"bad stale_after", "global:\n  stale_after: 5 minutes\n", `global (line 2): stale_after: unknown unit " minutes" in duration "5 minutes"`},
		{"duration without unit", "global:\n  series_expiry: 3600\n", `global (line 2): series_expiry: not a valid duration string: "3600"`},
		{"fractional duration", "rules:\n  - learning_period: 1.5d\n", `rules[0] (line 2): learning_period: unknown unit "." in duration "1.5d"`},
		{"negative duration", "rules:\n  - learning_period: -1d\n", `rules[0] (line 2): learning_period: not a valid duration string: "-1d"`},
		{"zero stale_after", "global:\n  stale_after: 0s\n", "global (line 2): stale_after: must be > 0"},
		{"expiry before stale", "global:\n  stale_after: 1h\n  series_expiry: 30m\n", "global (line 3): series_expiry: 30m is shorter than stale_after (1h)"},
		{"expiry before default stale", "global:\n  series_expiry: 1m\n", "global (line 2): series_expiry: 1m is shorter than stale_after (5m)"},
		{"empty rules", "global: {}\nrules: []\n", "line 2: rules: empty list would score no series"},
		{"bad selector", "rules:\n  - name: a\n  - name: b\n    selector: '{job=\"a\"'\n", "rules[1] (line 4): selector: 1:9: parse error: unexpected end of input"},
		{"selector matching everything", "rules:\n  - selector: '{}'\n", "rules[0] (line 2): selector: must contain at least one matcher that does not match the empty string"},
		{"selector matching empty", "rules:\n  - selector: '{job=~\".*\"}'\n", "rules[0] (line 2): selector: must contain at least one matcher that does not match the empty string"},
		{"selector with only a negative matcher", "rules:\n  - selector: '{job!=\"test\"}'\n", "rules[0] (line 2): selector: must contain at least one matcher that does not match the empty string"},
		{"selector is a query", "rules:\n  - selector: rate(x[5m])\n", "rules[0] (line 2): selector: 1:"},
		{"empty selector", "rules:\n  - selector: ''\n", "rules[0] (line 2): selector: empty; leave selector out"},
		{"bad seasonality", "rules:\n  - seasonality: hourly\n", `rules[0] (line 2): seasonality: unknown seasonality "hourly"`},
		{"bad direction", "rules:\n  - {}\n  - direction: sideways\n", `rules[1] (line 3): direction: unknown direction "sideways"`},
		{"enum is case sensitive", "rules:\n  - direction: Up\n", `rules[0] (line 2): direction: unknown direction "Up"`},
		{"negative sensitivity", "rules:\n  - name: a\n    sensitivity: -1\n", "rules[0] (line 3): sensitivity must be positive, got -1"},
		{"zero sensitivity", "rules:\n  - sensitivity: 0\n", "rules[0] (line 2): sensitivity must be positive, got 0"},
		{"nan sensitivity", "rules:\n  - sensitivity: .nan\n", "rules[0] (line 2): sensitivity must be positive, got NaN"},
		{"negative min_abs_deviation", "rules:\n  - min_abs_deviation: -0.5\n", "rules[0] (line 2): min_abs_deviation must be >= 0, got -0.5"},
		{"infinite min_rel_deviation", "rules:\n  - min_rel_deviation: .inf\n", "rules[0] (line 2): min_rel_deviation: must be finite, got +Inf"},
		{"duplicate name", "rules:\n  - name: a\n  - name: b\n  - name: a\n", `rules[2] (line 4): name: "a" is already the name of rules[0]`},
		{"name taken by a default", "rules:\n  - name: rule-1\n  - {}\n", `rules[1] (line 3): name: "rule-1" is already the name of rules[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load([]byte(tc.data))
			require.ErrorContains(t, err, tc.err)
			require.Nil(t, c)
			require.NotContains(t, err.Error(), "\n", "errors are one line")
		})
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yml")
	require.NoError(t, os.WriteFile(path, []byte("rules:\n  - sensitvity: 2\n"), 0o600))
	_, err := LoadFile(path)
	require.EqualError(t, err, path+": line 2: field sensitvity not found in type config.rule")

	_, err = LoadFile(filepath.Join(t.TempDir(), "missing.yml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "missing.yml")
}

func TestDefault(t *testing.T) {
	c := Default()
	require.Equal(t, GlobalConfig{MaxSeries: DefaultMaxSeries, StaleAfter: DefaultStaleAfter, SeriesExpiry: DefaultSeriesExpiry}, c.Global)
	require.Equal(t, []Rule{{Name: "default", Settings: model.DefaultSettings()}}, c.Rules)
	for _, lbls := range [][]string{
		{"__name__", "up"},
		{"__name__", "http_requests_total", "code", "500", "job", "api"},
		{"a", "b"},
		{},
	} {
		i, ok := c.Match(series(lbls...))
		require.True(t, ok, "%v", lbls)
		require.Zero(t, i)
	}
	// Each call is independent.
	c.Rules[0].Name = "changed"
	require.Equal(t, "default", Default().Rules[0].Name)
}

// TestDefaultExample keeps the commented-out example of default.yml valid: uncommented, it must
// load, come first and do what its comment says.
func TestDefaultExample(t *testing.T) {
	var lines []string
	for line := range strings.SplitSeq(string(DefaultYAML), "\n") {
		if rest, ok := strings.CutPrefix(line, "  # - "); ok {
			line = "  - " + rest
		} else if rest, ok := strings.CutPrefix(line, "  #   "); ok {
			line = "    " + rest
		}
		lines = append(lines, line)
	}
	c, err := Load([]byte(strings.Join(lines, "\n")))
	require.NoError(t, err)
	require.Len(t, c.Rules, 2)
	require.Equal(t, "auth-failures", c.Rules[0].Name)
	require.Equal(t, model.DirectionUp, c.Rules[0].Settings.Direction)
	require.Positive(t, c.Rules[0].Settings.MinAbsDeviation)

	i, ok := c.Match(series("__name__", "http_requests_total", "code", "403", "job", "api"))
	require.True(t, ok)
	require.Equal(t, 0, i)
	i, ok = c.Match(series("__name__", "http_requests_total", "code", "200", "job", "api"))
	require.True(t, ok)
	require.Equal(t, 1, i)
}

func TestRuleFingerprint(t *testing.T) {
	// Name and selector do not count: the same settings under another rule keep the model.
	a, err := Load([]byte("rules:\n  - name: a\n    selector: x\n    sensitivity: 2\n"))
	require.NoError(t, err)
	b, err := Load([]byte("rules:\n  - name: b\n    selector: y\n    sensitivity: 2.0\n"))
	require.NoError(t, err)
	require.Equal(t, a.Rules[0].Fingerprint(), b.Rules[0].Fingerprint())
}
