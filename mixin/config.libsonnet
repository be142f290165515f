// The knobs of the anomaly_exporter mixin. Override them when importing the mixin:
//
//   (import 'anomaly_exporter/mixin.libsonnet') + {
//     _config+:: { anomalyExporterSelector: 'job="anomaly"', anomalyFor: '10m' },
//   }
//
// Every alert, recording rule and dashboard reads them from here, so the rendered rules/ and
// dashboards/ at the top of the repository are this file with its defaults.
{
  _config+:: {
    // Selects the exporter's own /metrics scrape (its self metrics and `up`).
    anomalyExporterSelector: 'job="anomaly-exporter"',
    // Selects the /scores scrape, for its `up`. The score series themselves carry the labels of
    // their input series (the scrape uses honor_labels), so their job is not this one.
    anomalyScoresSelector: 'job="anomaly-scores"',
    // Extra matchers for the output series (anomaly_score, anomaly_learning, ...), e.g.
    // 'env="prod"' to alert on part of what is scored. Empty: every scored series.
    anomalySeriesSelector: '',

    // A series is anomalous while its score is above this: 1 is the edge of the normal band.
    scoreThreshold: 1,
    // How long one series must stay anomalous (and not learning) before AnomalyDetected fires.
    // Short spikes do not page; raise it for noisy inputs, but keep it under 15m: the model
    // flags a lasting level change for at least 15 minutes of sample time (and at least five
    // samples), then learns it as the new normal, and an alert whose `for` is longer than that
    // never fires for it.
    anomalyFor: '5m',
    anomalySeverity: 'warning',

    // The labels that make a group of series: one incident in a group (a job, a namespace, a
    // cluster) makes many of its series anomalous at once. Used by the recording rules, the
    // group alert AnomalyStorm, and the Alertmanager example's group_by and inhibition.
    groupLabels: ['cluster', 'namespace', 'job'],
    // AnomalyStorm fires for a group with at least stormMinSeries anomalous series, or with at
    // least stormMinRatio of its scored series anomalous (but never for fewer than
    // stormRatioMinSeries: one anomalous series of two is AnomalyDetected's job).
    stormMinSeries: 5,
    stormMinRatio: 0.2,
    stormRatioMinSeries: 2,
    // Keep it shorter than anomalyFor, so that the group alert fires (and, in Alertmanager,
    // inhibits the per-series alerts) before the per-series alerts of the same incident do.
    stormFor: '3m',
    stormSeverity: 'critical',

    // Self-monitoring of the exporter.
    exporterDownFor: '5m',
    exporterDownSeverity: 'critical',
    // Share of remote-write requests answered with a non-2xx status that is worth an alert.
    remoteWriteErrorRatio: 0.05,
    remoteWriteErrorsFor: '15m',
    samplesRejectedFor: '15m',
    configReloadFor: '10m',
    seriesLimitFor: '15m',
    scoresNotScrapedFor: '10m',
    exporterSeverity: 'warning',

    // Where each alert's runbook_url points; %s is the alert name, lower-cased.
    runbookURLPattern: 'https://github.com/anomaly-exporter/anomaly_exporter/blob/main/mixin/runbook.md#%s',

    // Dashboards.
    dashboardTags: ['anomaly-exporter'],
    dashboardNamePrefix: 'Anomaly Exporter / ',
    dashboardUIDs: {
      overview: 'anomaly-exporter-overview',
      series: 'anomaly-exporter-series',
      exporter: 'anomaly-exporter-self',
    },
    dashboardRefresh: '30s',
    dashboardTimezone: 'utc',
    dashboardFrom: 'now-6h',
    // The label that tells clusters apart; its dashboard variable matches series without it too.
    clusterLabel: 'cluster',
    // Rows of the overview's "top scores" table.
    topN: 20,
  },
}
