// Package config is the configuration file of the exporter (--config.file): the global limits of
// the series store, and the rules that decide which series are scored and with which model
// settings.
//
// The file is YAML and strict, like Prometheus's own: an unknown or misspelt field is an error
// rather than a silently ignored setting, and every error names the line and the field, so that a
// reload that fails tells the operator where to look. Series are selected with PromQL series
// selectors parsed by Prometheus's own parser, so a selector means exactly what it means in a
// query.
//
// The embedded default (default.yml, also DefaultYAML) is the documented example of every field.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// DefaultYAML is the configuration used when no file is given. It is embedded rather than built in
// Go so that the defaults an operator reads in default.yml are, byte for byte, the ones that run.
//
//go:embed default.yml
var DefaultYAML []byte

// Defaults of the global section, used for every field a file leaves out.
const (
	DefaultMaxSeries    = 1_000_000
	DefaultStaleAfter   = prommodel.Duration(5 * time.Minute)
	DefaultSeriesExpiry = prommodel.Duration(24 * time.Hour)
)

// Config is a loaded, validated configuration. It marshals back to YAML with every default
// spelled out, which is how tools show the effective configuration; build one with Load, never
// by unmarshalling into it, so that the checks and derived fields are not skipped.
type Config struct {
	Global GlobalConfig `yaml:"global"`
	// Rules are tried in order; the first whose selector matches a series scores it.
	Rules []Rule `yaml:"rules"`
}

// GlobalConfig bounds the series store, whatever the rules say: memory is spent per tracked
// series, and these are the knobs that keep it finite.
type GlobalConfig struct {
	// MaxSeries caps the series tracked at once. A new series beyond it is not tracked (and is
	// counted), while the sender still gets a success, since retrying would not help. 0 means no
	// limit, as with Prometheus's own limits.
	MaxSeries int `yaml:"max_series"`
	// StaleAfter is how long a series may go without a sample before it leaves /scores; its model
	// is kept so that a series that comes back resumes with what it learned.
	StaleAfter prommodel.Duration `yaml:"stale_after"`
	// SeriesExpiry is how long a series may go without a sample before it is forgotten and its
	// model freed. It is never shorter than StaleAfter.
	SeriesExpiry prommodel.Duration `yaml:"series_expiry"`
}

// Rule binds a set of series to model settings.
type Rule struct {
	// Name identifies the rule in logs and self metrics; "rule-<index>" unless the file names it.
	// Names are unique within a file.
	Name string
	// Selector is the PromQL series selector as written; empty matches every series.
	Selector string
	// Matchers are the parsed Selector, ordered cheapest first (equality before regular
	// expressions) so that Match rejects most series before running a regular expression.
	Matchers []*labels.Matcher
	// Settings are the model settings of the series the rule scores, with defaults filled in.
	Settings model.Settings
}

// The YAML shape of the file. The decoding targets are unexported and separate from Config so
// that strict decoding reports unknown fields against these types (`field x not found in type
// config.rule`), and so that pointers tell a field left out (default) from one set to zero.
type (
	file struct {
		Global *global  `yaml:"global,omitempty"`
		Rules  *[]*rule `yaml:"rules,omitempty"`
	}
	global struct {
		MaxSeries    *int    `yaml:"max_series,omitempty"`
		StaleAfter   *string `yaml:"stale_after,omitempty"`
		SeriesExpiry *string `yaml:"series_expiry,omitempty"`
	}
	rule struct {
		Name            *string  `yaml:"name,omitempty"`
		Selector        *string  `yaml:"selector,omitempty"`
		Seasonality     *string  `yaml:"seasonality,omitempty"`
		Sensitivity     *float64 `yaml:"sensitivity,omitempty"`
		Direction       *string  `yaml:"direction,omitempty"`
		MinAbsDeviation *float64 `yaml:"min_abs_deviation,omitempty"`
		MinRelDeviation *float64 `yaml:"min_rel_deviation,omitempty"`
		LearningPeriod  *string  `yaml:"learning_period,omitempty"`
	}
)

// MarshalYAML writes the rule in the file's shape with every setting explicit, so that the output
// loads back into the same rule.
func (r Rule) MarshalYAML() (any, error) {
	s := r.Settings
	out := rule{
		Name:            &r.Name,
		Seasonality:     ptr(s.Seasonality.String()),
		Sensitivity:     &s.Sensitivity,
		Direction:       ptr(s.Direction.String()),
		MinAbsDeviation: &s.MinAbsDeviation,
		MinRelDeviation: &s.MinRelDeviation,
		LearningPeriod:  ptr(prommodel.Duration(s.LearningPeriod).String()),
	}
	if r.Selector != "" {
		out.Selector = &r.Selector
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

// String is the effective configuration as YAML, every default spelled out, for `check config`
// output and a status page; it loads back into an equal Config.
func (c *Config) String() string {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		// Every field marshals; only a broken yaml package could get here.
		return "# " + err.Error()
	}
	return b.String()
}

// Default returns the embedded default configuration: every series scored by one rule with the
// default settings. Each call returns a new Config that the caller may change.
func Default() *Config {
	c, err := Load(DefaultYAML)
	if err != nil {
		// default.yml is part of the binary and covered by tests; failing here is a build defect.
		panic("config: embedded default.yml is invalid: " + err.Error())
	}
	return c
}

// LoadFile reads and loads the file at path. Errors start with the path, as operators run several
// files through the same tools.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError already names the file.
	}
	c, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Load parses and validates a configuration. An empty document is the default global section with
// one catch-all rule, so that a file holding only a global section still scores every series;
// an explicitly empty rules list, which would score nothing, is refused.
// Errors carry the line and the field they are about.
func Load(data []byte) (*Config, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	switch err := dec.Decode(&f); {
	case errors.Is(err, io.EOF):
		// No document at all (empty, or only comments): every default.
	case err != nil:
		return nil, yamlError(err)
	default:
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			if err != nil {
				return nil, yamlError(err)
			}
			return nil, fmt.Errorf("line %d: a configuration file holds one YAML document, found another", extra.Line)
		}
	}
	// A second pass into nodes only for the line numbers of the checks below: decoding from a node
	// would lose KnownFields, so the strict pass above reads the bytes directly.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(err)
	}
	doc := documentBody(&root)

	c := &Config{}
	if err := c.Global.load(f.Global, child(doc, "global")); err != nil {
		return nil, err
	}
	if f.Rules == nil {
		c.Rules = []Rule{{Name: "rule-0", Settings: model.DefaultSettings()}}
		return c, nil
	}
	rulesNode := child(doc, "rules")
	if len(*f.Rules) == 0 {
		return nil, fmt.Errorf("line %d: rules: empty list would score no series; leave rules out to score every series", lineOf(rulesNode, doc))
	}
	names := make(map[string]int, len(*f.Rules))
	c.Rules = make([]Rule, len(*f.Rules))
	for i, raw := range *f.Rules {
		var n *yaml.Node
		if rulesNode != nil && i < len(rulesNode.Content) {
			n = rulesNode.Content[i]
		}
		r := &c.Rules[i]
		if err := r.load(i, raw, n); err != nil {
			return nil, err
		}
		if j, dup := names[r.Name]; dup {
			return nil, ruleError(i, n, "name", fmt.Errorf("%q is already the name of rules[%d]", r.Name, j))
		}
		names[r.Name] = i
	}
	return c, nil
}

func (g *GlobalConfig) load(raw *global, n *yaml.Node) error {
	*g = GlobalConfig{MaxSeries: DefaultMaxSeries, StaleAfter: DefaultStaleAfter, SeriesExpiry: DefaultSeriesExpiry}
	if raw == nil {
		return nil
	}
	fail := func(field string, err error) error {
		return fmt.Errorf("global (line %d): %s", lineOf(child(n, field), n), withField(field, err))
	}
	if raw.MaxSeries != nil {
		if *raw.MaxSeries < 0 {
			return fail("max_series", fmt.Errorf("must be >= 0 (0 means no limit), got %d", *raw.MaxSeries))
		}
		g.MaxSeries = *raw.MaxSeries
	}
	for _, d := range []struct {
		field string
		raw   *string
		out   *prommodel.Duration
	}{
		{"stale_after", raw.StaleAfter, &g.StaleAfter},
		{"series_expiry", raw.SeriesExpiry, &g.SeriesExpiry},
	} {
		if d.raw == nil {
			continue
		}
		v, err := prommodel.ParseDuration(*d.raw)
		if err != nil {
			return fail(d.field, err)
		}
		if v <= 0 {
			return fail(d.field, errors.New("must be > 0"))
		}
		*d.out = v
	}
	if g.SeriesExpiry < g.StaleAfter {
		return fail("series_expiry", fmt.Errorf("%s is shorter than stale_after (%s): a series would be forgotten while still exposed", g.SeriesExpiry, g.StaleAfter))
	}
	return nil
}

func (r *Rule) load(i int, raw *rule, n *yaml.Node) error {
	*r = Rule{Name: "rule-" + strconv.Itoa(i), Settings: model.DefaultSettings()}
	if raw == nil {
		// A null list item, `- `: a rule with every default, as `- {}` is.
		return nil
	}
	if raw.Name != nil && *raw.Name != "" {
		r.Name = *raw.Name
	}
	if raw.Selector != nil {
		if strings.TrimSpace(*raw.Selector) == "" {
			// Most likely an unset template variable: refuse rather than score everything.
			return ruleError(i, n, "selector", errors.New("empty; leave selector out to match every series"))
		}
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(*raw.Selector)
		if err != nil {
			return ruleError(i, n, "selector", err)
		}
		// PromQL refuses such a selector in a query, but ParseMetricSelector does not check it. A
		// selector that also matches a series without any of its labels is almost always a
		// mistake, and leaving selector out says "every series" plainly.
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches("") }) {
			return ruleError(i, n, "selector", errors.New("must contain at least one matcher that does not match the empty string, as in PromQL; leave selector out to match every series"))
		}
		slices.SortStableFunc(ms, func(a, b *labels.Matcher) int { return matcherCost(a) - matcherCost(b) })
		r.Selector, r.Matchers = *raw.Selector, ms
	}

	// Each field is checked on its own, on top of the defaults, with Settings.Validate, so that the
	// model package stays the one authority on what a setting may be and the error still points
	// at the field's line.
	type field struct {
		name string
		set  func(*model.Settings) error
	}
	var fields []field
	if raw.Seasonality != nil {
		fields = append(fields, field{"seasonality", func(s *model.Settings) (err error) {
			s.Seasonality, err = model.ParseSeasonality(*raw.Seasonality)
			return err
		}})
	}
	if raw.Sensitivity != nil {
		fields = append(fields, field{"sensitivity", func(s *model.Settings) error {
			s.Sensitivity = *raw.Sensitivity
			return nil
		}})
	}
	if raw.Direction != nil {
		fields = append(fields, field{"direction", func(s *model.Settings) (err error) {
			s.Direction, err = model.ParseDirection(*raw.Direction)
			return err
		}})
	}
	if raw.MinAbsDeviation != nil {
		fields = append(fields, field{"min_abs_deviation", func(s *model.Settings) error {
			s.MinAbsDeviation = *raw.MinAbsDeviation
			return finite(s.MinAbsDeviation)
		}})
	}
	if raw.MinRelDeviation != nil {
		fields = append(fields, field{"min_rel_deviation", func(s *model.Settings) error {
			s.MinRelDeviation = *raw.MinRelDeviation
			return finite(s.MinRelDeviation)
		}})
	}
	if raw.LearningPeriod != nil {
		fields = append(fields, field{"learning_period", func(s *model.Settings) error {
			d, err := prommodel.ParseDuration(*raw.LearningPeriod)
			s.LearningPeriod = time.Duration(d)
			return err
		}})
	}
	for _, f := range fields {
		alone := model.DefaultSettings()
		err := f.set(&alone)
		if err == nil {
			err = alone.Validate()
		}
		if err == nil {
			err = f.set(&r.Settings)
		}
		if err != nil {
			return ruleError(i, n, f.name, err)
		}
	}
	// Fields valid one by one may still not work together once the model has such rules.
	if err := r.Settings.Validate(); err != nil {
		return fmt.Errorf("rules[%d] (line %d): %w", i, lineOf(n, nil), err)
	}
	return nil
}

// finite rejects ±Inf, which Settings.Validate lets through for the minimum deviations but which
// would silence a rule for good: that is what leaving the series out of the rules is for.
func finite(v float64) error {
	if math.IsInf(v, 0) {
		return fmt.Errorf("must be finite, got %g", v)
	}
	return nil
}

// matcherCost orders matchers so that the ones that are cheap and usually decisive run first.
func matcherCost(m *labels.Matcher) int {
	switch m.Type {
	case labels.MatchEqual:
		return 0
	case labels.MatchNotEqual:
		return 1
	}
	return 2
}

// ruleError places err at the field of rules[i], or at the rule itself when the field is absent.
func ruleError(i int, n *yaml.Node, field string, err error) error {
	return fmt.Errorf("rules[%d] (line %d): %s", i, lineOf(child(n, field), n), withField(field, err))
}

// withField prefixes the message with the field unless it already starts with it, as the messages
// of the model package do.
func withField(field string, err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, field+" ") {
		return msg
	}
	return field + ": " + msg
}

// yamlError drops the "yaml: " prefix and flattens the multi-line list of a *yaml.TypeError, so
// that every error of this package reads `line N: ...` on one line, fit for a log field.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// documentBody returns the top-level mapping of a parsed document, or nil.
func documentBody(root *yaml.Node) *yaml.Node {
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		return root.Content[0]
	}
	return nil
}

// child returns the value node of key in the mapping n, or nil. Strict decoding has already
// rejected duplicate keys, so the first match is the only one.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// lineOf returns the line of the first non-nil node, or 1 when there is none (a setting the file
// leaves out is reported at the start of the file).
func lineOf(nodes ...*yaml.Node) int {
	for _, n := range nodes {
		if n != nil && n.Line > 0 {
			return n.Line
		}
	}
	return 1
}
