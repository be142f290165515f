// Overview: what is anomalous now, in which groups, since when, and the highest scores, with
// links to the series dashboard. Built on the anomaly recording rules, so it stays cheap with
// millions of scored series; only the "top series" table reads the score series directly.
local g = import '../lib/grafana.libsonnet';
local utils = import '../lib/utils.libsonnet';

{
  grafanaDashboards+:: {
    local c = $._config,
    local n = utils.names(c),
    local cl = c.clusterLabel,
    local filter = ['%s=~"$cluster"' % cl, 'namespace=~"$namespace"', 'job=~"$job"'],
    local r(name) = utils.selector(name, filter),
    local seriesLink = '/d/%s?${datasource:queryparam}&var-cluster=${__data.fields.%s}&var-job=${__data.fields.job}&var-instance=${__data.fields.instance}&var-metric=${__data.fields.anomaly_metric}&${__url_time_range}' % [c.dashboardUIDs.series, cl],
    local groupLegend = std.join(' ', ['{{%s}}' % l for l in c.groupLabels]),

    'anomaly-overview.json': g.dashboard(
      c,
      c.dashboardUIDs.overview,
      'Overview',
      'Anomalous series now and over time, by group, and the highest anomaly scores.',
      [
        g.variable('cluster', 'Cluster', 'label_values(anomaly_score, %s)' % cl, allValue='.*'),
        g.variable('namespace', 'Namespace', 'label_values(anomaly_score{%s=~"$cluster"}, namespace)' % cl, allValue='.*'),
        g.variable('job', 'Job', 'label_values(anomaly_score{%s=~"$cluster", namespace=~"$namespace"}, job)' % cl),
      ],
      [
        g.stat('Anomalous series', 'Series whose anomaly score is above %g now, not counting series still learning.' % c.scoreThreshold, [g.target('sum(%s) or vector(0)' % r(n.anomalousSeries))], 'short', thresholds=[[null, 'green'], [1, 'red']]),
        g.stat('Groups with anomalies', 'Groups (%s) with at least one anomalous series.' % utils.by(c.groupLabels), [g.target('count(%s) or vector(0)' % r(n.anomalousSeries))], 'short', thresholds=[[null, 'green'], [1, 'orange']]),
        g.stat('Storms', 'AnomalyStorm alerts firing: groups with many anomalous series at once.', [g.target('count(%s) or vector(0)' % utils.selector('ALERTS', ['alertname="AnomalyStorm"', 'alertstate="firing"'] + filter))], 'short', thresholds=[[null, 'green'], [1, 'red']]),
        g.stat('Highest score', 'The highest anomaly score of a series not learning: 1 is the edge of the normal band.', [g.target('max(%s)' % r(n.maxScore))], 'none', decimals=2, thresholds=[[null, 'green'], [c.scoreThreshold, 'red']]),
        g.stat('Scored series', 'Series with a trusted baseline: scored and no longer learning.', [g.target('sum(%s) or vector(0)' % r(n.scoredSeries))], 'short'),
        g.stat('Learning series', 'Series still learning their baseline; they do not alert yet.', [g.target('sum(%s) or vector(0)' % r(n.learningSeries))], 'short', thresholds=[[null, 'blue']]),

        g.timeseries('Anomalous series by group', 'Series anomalous at each time, per group.', [g.target('sum by (%s) (%s)' % [utils.by(c.groupLabels), r(n.anomalousSeries)], groupLegend)], 'short', stack=true, min=0),
        g.timeseries('Share of series anomalous by group', "Anomalous series as a share of each group's scored series; AnomalyStorm fires at %g (with at least %g series) or at %g series." % [c.stormMinRatio, c.stormRatioMinSeries, c.stormMinSeries], [g.target(r(n.anomalousRatio), groupLegend)], 'percentunit', min=0),

        g.table(
          'Groups with anomalies now',
          'Per group: anomalous series, scored series, the share anomalous and the highest score.',
          [
            g.target(r(n.anomalousSeries), instant=true, format='table'),
            g.target(r(n.scoredSeries), instant=true, format='table'),
            g.target(r(n.anomalousRatio), instant=true, format='table'),
            g.target(r(n.maxScore), instant=true, format='table'),
          ],
          transformations=[
            { id: 'merge', options: {} },
            { id: 'filterByValue', options: { type: 'include', match: 'any', filters: [{ fieldName: 'Value #A', config: { id: 'greater', options: { value: 0 } } }] } },
            { id: 'organize', options: {
              excludeByName: { Time: true },
              renameByName: { 'Value #A': 'Anomalous', 'Value #B': 'Scored', 'Value #C': 'Share anomalous', 'Value #D': 'Highest score' },
            } },
          ],
          overrides=[
            g.override('Share anomalous', { unit: 'percentunit' }),
            g.override('Highest score', { decimals: 2 }),
          ],
          sortBy=[{ displayName: 'Anomalous', desc: true }],
        ),
        g.table(
          'Top metrics',
          'The input metrics with the highest score of a trusted series, per group.',
          [g.target('topk(%d, %s)' % [c.topN, r(n.maxScoreByMetric)], instant=true, format='table')],
          transformations=[{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'Highest score' } } }],
          overrides=[g.override('Highest score', { decimals: 2 })],
          sortBy=[{ displayName: 'Highest score', desc: true }],
        ),
        g.table(
          'Top series',
          'The %d series with the highest scores now, not counting series still learning. A click on a row opens the series dashboard.' % c.topN,
          [g.target('topk(%d, %s unless (%s == 1))' % [c.topN, utils.selector('anomaly_score', filter + [c.anomalySeriesSelector]), utils.selector('anomaly_learning', filter + [c.anomalySeriesSelector])], instant=true, format='table')],
          w=24,
          h=10,
          transformations=[{ id: 'organize', options: { excludeByName: { Time: true, __name__: true }, renameByName: { Value: 'Score' } } }],
          overrides=[
            g.override('Score', {
              decimals: 2,
              links: [{ title: 'Open the series dashboard', url: seriesLink }],
            }),
          ],
          sortBy=[{ displayName: 'Score', desc: true }],
        ),
        g.timeseries('Highest score by metric', 'The highest score of a trusted series of each input metric, over time; 1 is the edge of the normal band.', [g.target('max by (anomaly_metric) (%s)' % r(n.maxScoreByMetric), '{{anomaly_metric}}')], 'none', w=24, min=0, overrides=[]) {
          fieldConfig+: { defaults+: { thresholds: { mode: 'absolute', steps: [{ value: null, color: 'green' }, { value: c.scoreThreshold, color: 'red' }] }, custom+: { thresholdsStyle: { mode: 'line' } } } },
        },
      ],
    ),
  },
}
