package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// series builds sorted labels from name, value pairs, as a batch carries them.
func series(nv ...string) []batch.Label {
	lbls := make([]batch.Label, 0, len(nv)/2)
	for i := 0; i+1 < len(nv); i += 2 {
		lbls = append(lbls, batch.Label{Name: nv[i], Value: nv[i+1]})
	}
	slices.SortFunc(lbls, func(a, b batch.Label) int { return strings.Compare(a.Name, b.Name) })
	return lbls
}

const matchConfig = `
rules:
  - name: auth
    selector: '{__name__="http_requests_total", code=~"401|403"}'
    direction: up
  - name: latency
    selector: '{__name__=~"http_.*_seconds.*", job!="test"}'
  - name: not-prod
    selector: '{__name__="builds_total", env!="prod"}'
  - name: no-team
    selector: '{__name__="orders_total", team=""}'
  - name: not-canary
    selector: '{__name__="payments_total", track!~"canary|beta"}'
`

func TestMatch(t *testing.T) {
	c, err := Load([]byte(matchConfig))
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		labels []batch.Label
		rule   string // "" when no rule matches
	}{
		{"equal and regex", series("__name__", "http_requests_total", "code", "401", "job", "api"), "auth"},
		{"regex is anchored", series("__name__", "http_requests_total", "code", "4011", "job", "api"), ""},
		{"regex alternative", series("__name__", "http_request_duration_seconds_bucket", "job", "api", "le", "0.1"), "latency"},
		{"negative matcher excludes", series("__name__", "http_request_duration_seconds_sum", "job", "test"), ""},
		{"negative matcher with the label absent", series("__name__", "http_request_duration_seconds_sum"), "latency"},
		{"not-equal with the label absent", series("__name__", "builds_total", "job", "ci"), "not-prod"},
		{"not-equal excludes", series("__name__", "builds_total", "env", "prod"), ""},
		{"empty value matches the label absent", series("__name__", "orders_total", "shop", "eu"), "no-team"},
		{"empty value rejects the label present", series("__name__", "orders_total", "team", "x"), ""},
		{"negative regex excludes", series("__name__", "payments_total", "track", "beta"), ""},
		{"negative regex keeps", series("__name__", "payments_total", "track", "stable"), "not-canary"},
		{"negative regex with the label absent", series("__name__", "payments_total"), "not-canary"},
		{"no name", series("code", "401"), ""},
		{"no labels", nil, ""},
		{"other metric", series("__name__", "up", "job", "api"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, ok := c.Match(tc.labels)
			if tc.rule == "" {
				require.False(t, ok)
				require.Equal(t, -1, i)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.rule, c.Rules[i].Name)
		})
	}
}

func TestMatchFirstRuleWins(t *testing.T) {
	c, err := Load([]byte(`
rules:
  - name: specific
    selector: '{__name__="http_requests_total", code="403"}'
  - name: broad
    selector: '{__name__=~"http_.*"}'
  - name: catch-all
  - name: never
    selector: up
`))
	require.NoError(t, err)
	for lbls, want := range map[string]string{
		"403": "specific", "200": "broad",
	} {
		i, ok := c.Match(series("__name__", "http_requests_total", "code", lbls))
		require.True(t, ok)
		require.Equal(t, want, c.Rules[i].Name)
	}
	i, ok := c.Match(series("__name__", "up"))
	require.True(t, ok)
	require.Equal(t, "catch-all", c.Rules[i].Name, "a later rule never sees what an earlier one took")
}

func TestMatchersCheapestFirst(t *testing.T) {
	c, err := Load([]byte(`rules: [{selector: '{a=~"x.*", b!="y", c="z", d!~"w"}'}]`))
	require.NoError(t, err)
	var names []string
	for _, m := range c.Rules[0].Matchers {
		names = append(names, m.Name)
	}
	require.Equal(t, []string{"c", "b", "a", "d"}, names)
	require.Equal(t, `{a=~"x.*", b!="y", c="z", d!~"w"}`, c.Rules[0].Selector, "the selector stays as written")
}

func TestLabelValue(t *testing.T) {
	lbls := series("__name__", "m", "a", "1", "b", "2", "c", "3", "instance", "h", "job", "j", "z", "26")
	for _, l := range lbls {
		require.Equal(t, l.Value, labelValue(lbls, l.Name))
	}
	for _, name := range []string{"", "0", "A", "aa", "d", "zz", "~"} {
		require.Empty(t, labelValue(lbls, name), name)
	}
	require.Empty(t, labelValue(nil, "a"))
}

func TestMatchAllocs(t *testing.T) {
	c, err := Load([]byte(matchConfig))
	require.NoError(t, err)
	for _, lbls := range [][]batch.Label{
		series("__name__", "http_requests_total", "code", "403", "job", "api"),
		series("__name__", "http_request_duration_seconds_bucket", "job", "api", "le", "+Inf"),
		series("__name__", "payments_total", "track", "canary"),
		series("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "idle"),
	} {
		allocs := testing.AllocsPerRun(100, func() { c.Match(lbls) })
		require.Zero(t, allocs, "%v", lbls)
	}
}

func BenchmarkMatch(b *testing.B) {
	c, err := Load([]byte(matchConfig))
	require.NoError(b, err)
	// A typical cAdvisor-sized label set that falls through every rule: the worst case.
	lbls := series(
		"__name__", "container_cpu_usage_seconds_total", "container", "api", "cpu", "total",
		"id", "/kubepods/burstable/pod1234", "image", "registry/api:1.2.3", "instance", "node-1:10250",
		"job", "kubelet", "name", "k8s_api_api-5f8d9_default", "namespace", "default", "pod", "api-5f8d9",
	)
	b.ReportAllocs()
	for b.Loop() {
		c.Match(lbls)
	}
}
