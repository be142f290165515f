// Small helpers shared by the alerts, the recording rules and the dashboards.
{
  // selector renders a series selector from a metric name and matchers; empty matchers are
  // dropped, so a selector without matchers is the bare name.
  selector(name, matchers=[])::
    local ms = std.filter(function(m) m != '', matchers);
    if std.length(ms) == 0 then name else '%s{%s}' % [name, std.join(', ', ms)],

  // level is the "level" part of a recording rule name for an aggregation by these labels,
  // after the level:metric:operations convention: ['cluster', 'job'] -> 'cluster_job'.
  level(labels):: std.join('_', labels),

  // by renders the label list of an aggregation clause: ['cluster', 'job'] -> 'cluster, job'.
  by(labels):: std.join(', ', labels),

  // runbook is the runbook_url of an alert.
  runbook(config, alert):: config.runbookURLPattern % std.asciiLower(alert),

  // names are the recording rules' names, shared by the rules, the alerts and the dashboards.
  names(config):: {
    local group = $.level(config.groupLabels),
    anomalousSeries: '%s:anomaly_anomalous_series:count' % group,
    scoredSeries: '%s:anomaly_scored_series:count' % group,
    learningSeries: '%s:anomaly_learning_series:count' % group,
    anomalousRatio: '%s:anomaly_anomalous_series:ratio' % group,
    maxScore: '%s:anomaly_score:max' % group,
    maxScoreByMetric: '%s_anomaly_metric:anomaly_score:max' % group,
    samplesReceived: 'instance:anomaly_exporter_remote_write_samples_received:rate5m',
    samplesScored: 'instance:anomaly_exporter_detector_samples_scored:rate5m',
    samplesSkipped: 'instance_reason:anomaly_exporter_detector_samples_skipped:rate5m',
    requests: 'instance_code:anomaly_exporter_remote_write_requests:rate5m',
  },

  // anomalous is the PromQL of "this series is anomalous now": its score is above the
  // threshold and its baseline is no longer learning. Both sides carry the same labels.
  anomalous(config)::
    '(%s > %g) unless (%s == 1)' % [
      $.selector('anomaly_score', [config.anomalySeriesSelector]),
      config.scoreThreshold,
      $.selector('anomaly_learning', [config.anomalySeriesSelector]),
    ],
}
