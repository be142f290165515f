// Recording rules, named level:metric:operations. The anomaly group feeds AnomalyStorm and the
// overview dashboard; the exporter group feeds the self-monitoring dashboard.
local utils = import '../lib/utils.libsonnet';

{
  prometheusRules+:: {
    local c = $._config,
    local n = utils.names(c),
    local by = utils.by(c.groupLabels),
    local trusted = '%s unless (%s == 1)' % [
      utils.selector('anomaly_score', [c.anomalySeriesSelector]),
      utils.selector('anomaly_learning', [c.anomalySeriesSelector]),
    ],
    local exporter(metric) = utils.selector(metric, [c.anomalyExporterSelector]),

    groups+: [
      {
        name: 'anomaly-exporter-anomalies.rules',
        rules: [
          {
            // Series anomalous now (score above the threshold, not learning), per group.
            record: n.anomalousSeries,
            expr: 'count by (%s) (%s)' % [by, utils.anomalous(c)],
          },
          {
            // Series whose baseline is trusted (no longer learning), per group.
            record: n.scoredSeries,
            expr: 'count by (%s) (%s == 0)' % [by, utils.selector('anomaly_learning', [c.anomalySeriesSelector])],
          },
          {
            // Series still learning their baseline, per group.
            record: n.learningSeries,
            expr: 'count by (%s) (%s == 1)' % [by, utils.selector('anomaly_learning', [c.anomalySeriesSelector])],
          },
          {
            // Share of a group's trusted series that are anomalous now.
            record: n.anomalousRatio,
            expr: '%s / %s' % [n.anomalousSeries, n.scoredSeries],
          },
          {
            // Highest score of a group's trusted series.
            record: n.maxScore,
            expr: 'max by (%s) (%s)' % [by, trusted],
          },
          {
            // Highest score per input metric of a group's trusted series: the top metrics.
            record: n.maxScoreByMetric,
            expr: 'max by (%s, anomaly_metric) (%s)' % [by, trusted],
          },
        ],
      },
      {
        name: 'anomaly-exporter-self.rules',
        rules: [
          {
            record: n.samplesReceived,
            expr: 'sum without (protocol) (rate(%s[5m]))' % exporter('anomaly_exporter_remote_write_samples_received_total'),
          },
          {
            record: n.samplesScored,
            expr: 'rate(%s[5m])' % exporter('anomaly_exporter_detector_samples_scored_total'),
          },
          {
            record: n.samplesSkipped,
            expr: 'rate(%s[5m])' % exporter('anomaly_exporter_detector_samples_skipped_total'),
          },
          {
            record: n.requests,
            expr: 'sum without (protocol) (rate(%s[5m]))' % exporter('anomaly_exporter_remote_write_requests_total'),
          },
        ],
      },
    ],
  },
}
