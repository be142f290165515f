// Package mixin holds the jsonnet source of the monitoring mixin; its Go tests check what the
// mixin renders into rules/ and dashboards/ at the top of the repository (make mixin): every
// PromQL expression parses, and every recording rule used is recorded.
package mixin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// ruleFile is a Prometheus rule file, strictly: an unknown field is an error.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval,omitempty"`
		Rules    []struct {
			Record      string            `yaml:"record,omitempty"`
			Alert       string            `yaml:"alert,omitempty"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for,omitempty"`
			Labels      map[string]string `yaml:"labels,omitempty"`
			Annotations map[string]string `yaml:"annotations,omitempty"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// query is one PromQL expression and where it was found.
type query struct {
	where string
	expr  string
}

var promql = parser.NewParser(parser.Options{})

// outputSeries are the series the exporter serves on /scores.
var outputSeries = []string{"anomaly_score", "anomaly_value", "anomaly_expected", "anomaly_lower", "anomaly_upper", "anomaly_learning"}

// external are series other components provide: Prometheus itself, and the Go and process
// collectors of the exporter's /metrics. The exporter's own anomaly_exporter_* names are checked
// against the running binary in e2e/mixin_test.go.
var external = regexp.MustCompile(`^(up|ALERTS|scrape_duration_seconds|scrape_samples_scraped|process_[a-z_]+|go_[a-z_]+|anomaly_exporter_[a-z_]+)$`)

func loadRules(t *testing.T) (map[string]ruleFile, []query) {
	t.Helper()
	files, err := filepath.Glob("../rules/*.yaml")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"../rules/alerts.yaml", "../rules/rules.yaml"}, files, "run make mixin")
	out := map[string]ruleFile{}
	var qs []query
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var rf ruleFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		require.NoError(t, dec.Decode(&rf), f)
		require.NotEmpty(t, rf.Groups, f)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				qs = append(qs, query{where: f + ": " + g.Name + ": " + r.Record + r.Alert, expr: r.Expr})
			}
		}
		out[filepath.Base(f)] = rf
	}
	return out, qs
}

// grafanaVariable matches $name, ${name} and ${name:format} in a dashboard query.
var grafanaVariable = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_.]*)(?::([a-z]+))?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)`)

// substitute replaces Grafana's variables with values a user's dashboard would give them:
// durations for Grafana's interval variables, a label set for the series variable (it holds
// matchers), and plausible label values for the rest, which stand inside quoted matchers.
func substitute(expr string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		m := grafanaVariable.FindStringSubmatch(v)
		name := m[1] + m[3]
		switch name {
		case "__rate_interval", "__interval", "__range", "__auto":
			return "2m"
		case "series":
			return `anomaly_metric="http_requests_total",instance="api-0:8080",job="api"`
		case "metric":
			return "http_requests_total"
		default:
			return "api-0:8080|web.example.com"
		}
	})
}

// variableQuery extracts the PromQL of a Grafana Prometheus query variable:
// label_values(expr, label), query_result(expr); "" for label_values(label).
var variableQuery = regexp.MustCompile(`^\s*(?:label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)|query_result\((.*)\)|label_values\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\))\s*$`)

func loadDashboards(t *testing.T) []query {
	t.Helper()
	files, err := filepath.Glob("../dashboards/*.json")
	require.NoError(t, err)
	require.Len(t, files, 3, "run make mixin")
	var qs []query
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var d struct {
			UID           string            `json:"uid"`
			Title         string            `json:"title"`
			SchemaVersion int               `json:"schemaVersion"`
			Panels        []json.RawMessage `json:"panels"`
			Templating    struct {
				List []struct {
					Name  string `json:"name"`
					Type  string `json:"type"`
					Query any    `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		require.NoError(t, json.Unmarshal(b, &d), f)
		require.NotEmpty(t, d.UID, f)
		require.GreaterOrEqual(t, d.SchemaVersion, 36, f)
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
			if v.Type != "query" {
				continue
			}
			q, _ := v.Query.(map[string]any)
			s, _ := q["query"].(string)
			m := variableQuery.FindStringSubmatch(s)
			require.NotNilf(t, m, "%s: variable %s: unexpected query %q", f, v.Name, s)
			if e := m[1] + m[2]; e != "" {
				qs = append(qs, query{where: f + ": variable " + v.Name, expr: substitute(e)})
			}
		}
		require.Subset(t, keys(vars), []string{"datasource", "cluster", "job"}, f)
		var walk func(where string, v any)
		walk = func(where string, v any) {
			switch v := v.(type) {
			case map[string]any:
				if title, ok := v["title"].(string); ok {
					where = f + ": " + title
				}
				if e, ok := v["expr"].(string); ok {
					for _, ref := range grafanaVariable.FindAllStringSubmatch(e, -1) {
						name := ref[1] + ref[3]
						require.Truef(t, vars[name] || strings.HasPrefix(name, "__"), "%s: %q uses undefined variable %s", where, e, name)
					}
					qs = append(qs, query{where: where, expr: substitute(e)})
				}
				for _, x := range v {
					walk(where, x)
				}
			case []any:
				for _, x := range v {
					walk(where, x)
				}
			}
		}
		for _, p := range d.Panels {
			var x any
			require.NoError(t, json.Unmarshal(p, &x))
			walk(f, x)
		}
	}
	return qs
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestExpressionsParse parses every expression of the rendered rules and every query of the
// rendered dashboards (Grafana variables substituted).
func TestExpressionsParse(t *testing.T) {
	_, rq := loadRules(t)
	dq := loadDashboards(t)
	require.GreaterOrEqual(t, len(rq), 18)
	require.GreaterOrEqual(t, len(dq), 40)
	for _, q := range append(rq, dq...) {
		_, err := promql.ParseExpr(q.expr)
		require.NoErrorf(t, err, "%s: %s", q.where, q.expr)
	}
}

// TestSeriesNamesExist checks that every series an expression selects is served by the
// exporter, recorded by a rule of rules/rules.yaml, or provided by Prometheus or the Go
// collectors: a renamed recording rule must not leave a dashboard or alert reading nothing.
func TestSeriesNamesExist(t *testing.T) {
	files, rq := loadRules(t)
	known := map[string]bool{}
	for _, n := range outputSeries {
		known[n] = true
	}
	for _, g := range files["rules.yaml"].Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Record, "rules.yaml holds recording rules only")
			require.Regexp(t, `^[a-z_]+:[a-z_]+:[a-z0-9_]+$`, r.Record, "level:metric:operations")
			known[r.Record] = true
		}
	}
	for _, g := range files["alerts.yaml"].Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "alerts.yaml holds alerts only")
			require.NotEmpty(t, r.For, r.Alert)
			require.Contains(t, []string{"info", "warning", "critical"}, r.Labels["severity"], r.Alert)
			for _, a := range []string{"summary", "description", "runbook_url"} {
				require.NotEmpty(t, r.Annotations[a], "%s: %s", r.Alert, a)
			}
		}
	}
	for _, q := range append(rq, loadDashboards(t)...) {
		e, err := promql.ParseExpr(q.expr)
		require.NoError(t, err)
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				require.Truef(t, known[vs.Name] || external.MatchString(vs.Name), "%s: %s selects %q, which nothing provides", q.where, q.expr, vs.Name)
			}
			return nil
		})
	}
}

// TestSubstitute pins the substitution the parse test relies on.
func TestSubstitute(t *testing.T) {
	for in, want := range map[string]string{
		`rate(x{job=~"$job"}[$__rate_interval])`:    `rate(x{job=~"api-0:8080|web.example.com"}[2m])`,
		`anomaly_value{job=~"$job", ${series:raw}}`: `anomaly_value{job=~"api-0:8080|web.example.com", anomaly_metric="http_requests_total",instance="api-0:8080",job="api"}`,
		`up{cluster=~"${cluster}"}`:                 `up{cluster=~"api-0:8080|web.example.com"}`,
		`x{anomaly_metric="$metric"}`:               `x{anomaly_metric="http_requests_total"}`,
	} {
		require.Equal(t, want, substitute(in))
	}
}
