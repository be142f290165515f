// Series: one input series against its baseline. Pick the metric (anomaly_metric) and the
// series; the graph shows the value, what was expected, the normal band filled between its
// lower and upper edges, and the anomalous points, with the score below.
local g = import '../lib/grafana.libsonnet';
local utils = import '../lib/utils.libsonnet';

{
  grafanaDashboards+:: {
    local c = $._config,
    local cl = c.clusterLabel,
    local base = ['%s=~"$cluster"' % cl, 'job=~"$job"', 'instance=~"$instance"'],
    // The series variable holds the series' labels as matchers (from query_result); empty, it
    // selects every series of the metric. A trailing comma is valid in PromQL matchers.
    local matchers = base + ['anomaly_metric="$metric"', c.anomalySeriesSelector, '${series:raw}'],
    local s(name) = utils.selector(name, matchers),
    local anomalous = '%s and ((%s > %g) unless (%s == 1))' % [s('anomaly_value'), s('anomaly_score'), c.scoreThreshold, s('anomaly_learning')],

    'anomaly-series.json': g.dashboard(
      c,
      c.dashboardUIDs.series,
      'Series',
      'One scored series against its learned baseline: value, expected value, normal band and anomaly score.',
      [
        g.variable('cluster', 'Cluster', 'label_values(anomaly_score, %s)' % cl, allValue='.*'),
        g.variable('job', 'Job', 'label_values(anomaly_score{%s=~"$cluster"}, job)' % cl),
        g.variable('instance', 'Instance', 'label_values(anomaly_score{%s=~"$cluster", job=~"$job"}, instance)' % cl),
        g.variable('metric', 'Metric', 'label_values(anomaly_score{%s=~"$cluster", job=~"$job", instance=~"$instance"}, anomaly_metric)' % cl, multi=false, includeAll=false),
        g.variable(
          'series',
          'Series',
          'query_result(anomaly_score{%s=~"$cluster", job=~"$job", instance=~"$instance", anomaly_metric="$metric"})' % cl,
          multi=false,
          includeAll=false,
          regex='/\\{(.*)\\}/',
        ) {
          // Empty: every series of the metric, until Grafana has listed the series.
          current: { selected: true, text: '', value: '' },
          options: [{ selected: true, text: '', value: '' }],
        },
      ],
      [
        g.timeseries(
          'Value, expected and normal band',
          'The scored value (for counters, the per-second rate), what the baseline expected, the normal band between its lower and upper edges, and the points scored above %g outside the learning period. Pick one series for the band to be filled.' % c.scoreThreshold,
          [
            g.target(s('anomaly_value'), 'value'),
            g.target(s('anomaly_expected'), 'expected'),
            g.target(s('anomaly_lower'), 'lower'),
            g.target(s('anomaly_upper'), 'upper'),
            g.target(anomalous, 'anomalous'),
          ],
          'short',
          w=24,
          h=10,
          overrides=[
            g.override('value', { color: { mode: 'fixed', fixedColor: 'blue' }, 'custom.lineWidth': 2 }),
            g.override('expected', { color: { mode: 'fixed', fixedColor: 'green' }, 'custom.lineStyle': { fill: 'dash', dash: [10, 10] } }),
            g.override('lower', { color: { mode: 'fixed', fixedColor: 'green' }, 'custom.lineWidth': 0 }),
            g.override('upper', { color: { mode: 'fixed', fixedColor: 'green' }, 'custom.lineWidth': 0, 'custom.fillOpacity': 20, 'custom.fillBelowTo': 'lower' }),
            g.override('anomalous', { color: { mode: 'fixed', fixedColor: 'red' }, 'custom.drawStyle': 'points', 'custom.pointSize': 8, 'custom.showPoints': 'always' }),
          ],
        ),
        g.timeseries(
          'Anomaly score',
          '0 at the expected value, 1 at the edge of the normal band, above 1 outside it.',
          [g.target(s('anomaly_score'), 'score')],
          'none',
          w=18,
          min=0,
        ) {
          fieldConfig+: { defaults+: {
            thresholds: { mode: 'absolute', steps: [{ value: null, color: 'green' }, { value: c.scoreThreshold, color: 'red' }] },
            custom+: { thresholdsStyle: { mode: 'line+area' } },
          } },
        },
        g.stat(
          'Baseline',
          'Whether the baseline is still learning (it does not alert yet) or trusted.',
          [g.target(s('anomaly_learning'))],
          'none',
          w=6,
          h=8,
          thresholds=[[null, 'green'], [1, 'blue']],
          mappings=[{ type: 'value', options: { '0': { text: 'trusted', index: 0 }, '1': { text: 'learning', index: 1 } } }],
        ),
        g.stat('Value', 'The last value scored.', [g.target(s('anomaly_value'))], 'short', w=5),
        g.stat('Expected', 'What the baseline expected for the last sample.', [g.target(s('anomaly_expected'))], 'short', w=5),
        g.stat('Lower edge', 'The lower edge of the normal band.', [g.target(s('anomaly_lower'))], 'short', w=5),
        g.stat('Upper edge', 'The upper edge of the normal band.', [g.target(s('anomaly_upper'))], 'short', w=5),
        g.stat('Score', 'The last anomaly score.', [g.target(s('anomaly_score'))], 'none', w=4, decimals=2, thresholds=[[null, 'green'], [c.scoreThreshold, 'red']]),
      ],
    ),
  },
}
