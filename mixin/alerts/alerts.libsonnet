// Alerts: anomalies of the scored series (one per series, one per group) and the health of the
// exporter itself. Every alert has a for, a severity, a summary, a description and a runbook_url.
local utils = import '../lib/utils.libsonnet';
local t = import 'templates.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local n = utils.names(c),
    local exporter(metric, matchers=[]) = utils.selector(metric, [c.anomalyExporterSelector] + matchers),
    local alert(name, severity, x) = x {
      alert: name,
      labels+: { severity: severity },
      annotations+: { runbook_url: utils.runbook(c, name) },
    },

    groups+: [
      {
        name: 'anomaly-exporter-anomalies',
        rules: [
          alert('AnomalyDetected', c.anomalySeverity, {
            expr: utils.anomalous(c),
            'for': c.anomalyFor,
            annotations: {
              summary: 'A scored series is outside its normal band.',
              description:
                t.selector + t.fetch(['value', 'expected', 'lower', 'upper']) +
                t.series + ' is {{ $v_value }} where its baseline expected {{ $v_expected }} ' +
                '(normal band {{ $v_lower }} to {{ $v_upper }}): anomaly score {{ printf "%.3g" $value }}, ' +
                'above %g for %s.' % [c.scoreThreshold, c.anomalyFor],
              // The same facts one by one, for receivers that template their own messages.
              metric: t.series,
              value: t.selector + t.fetch(['value']) + '{{ $v_value }}',
              expected: t.selector + t.fetch(['expected']) + '{{ $v_expected }}',
              band: t.selector + t.fetch(['lower', 'upper']) + '{{ $v_lower }} to {{ $v_upper }}',
              score: '{{ printf "%.4g" $value }}',
            },
          }),
          alert('AnomalyStorm', c.stormSeverity, {
            expr: |||
              %(count)s >= %(floor)g
              and
              (
                %(count)s >= %(minSeries)g
                or
                %(ratio)s >= %(minRatio)g
              )
            ||| % {
              count: n.anomalousSeries,
              ratio: n.anomalousRatio,
              floor: std.min(c.stormMinSeries, c.stormRatioMinSeries),
              minSeries: c.stormMinSeries,
              minRatio: c.stormMinRatio,
            },
            'for': c.stormFor,
            annotations: {
              summary: 'Many series of one group are anomalous at once.',
              description:
                t.groupSelector(c.groupLabels) + '\n' + std.rstripChars(|||
                  {{ $value }} series of {%(group)s} are anomalous at once
                  {{- with printf "%(ratio)s{%%s}" $gsel | query }} ({{ . | first | value | humanizePercentage }} of its scored series){{ end -}}
                  : one incident rather than many. Highest scores:
                  {{- $comma := "" -}}
                  {{- range printf "sort_desc(topk(5, %(top)s{%%s}))" $gsel | query -}}
                    {{ $comma }} {{ label "anomaly_metric" . }} {{ printf "%%.3g" .Value }}{{ $comma = "," }}
                  {{- end -}}
                  .
                |||, '\n') % { group: t.group(c.groupLabels), ratio: n.anomalousRatio, top: n.maxScoreByMetric },
            },
          }),
        ],
      },
      {
        name: 'anomaly-exporter-self',
        rules: [
          alert('AnomalyExporterDown', c.exporterDownSeverity, {
            expr: 'up{%(s)s} == 0 or absent(up{%(s)s})' % { s: c.anomalyExporterSelector },
            'for': c.exporterDownFor,
            annotations: {
              summary: 'The anomaly exporter is down.',
              description: 'The anomaly exporter{{ with $labels.instance }} {{ . }}{{ end }} of job {{ $labels.job }} has been down, or missing from the targets, for %s: nothing it is sent is scored, and no anomaly alert can fire.' % c.exporterDownFor,
            },
          }),
          alert('AnomalyExporterRemoteWriteErrors', c.exporterSeverity, {
            expr: |||
              sum without (code, protocol) (rate(%(failed)s[5m]))
              /
              sum without (code, protocol) (rate(%(all)s[5m]))
              > %(ratio)g
            ||| % {
              failed: exporter('anomaly_exporter_remote_write_requests_total', ['code!~"2.."']),
              all: exporter('anomaly_exporter_remote_write_requests_total'),
              ratio: c.remoteWriteErrorRatio,
            },
            'for': c.remoteWriteErrorsFor,
            annotations: {
              summary: 'Remote-write requests to the anomaly exporter fail.',
              description: '{{ $value | humanizePercentage }} of the remote-write requests to {{ $labels.instance }} are answered with a non-2xx status. 400 and 413 drop samples for good; 429 and 503 mean it is overloaded and the senders retry while their queues grow.',
            },
          }),
          alert('AnomalyExporterSamplesRejected', c.exporterSeverity, {
            expr: 'rate(%s[5m]) > 0' % exporter('anomaly_exporter_remote_write_samples_rejected_total'),
            'for': c.samplesRejectedFor,
            annotations: {
              summary: 'The anomaly exporter rejects remote-write samples.',
              description: '{{ $labels.instance }} rejects {{ $value | humanize }} samples per second ({{ $labels.reason }}): the senders get a 400 for them and drop them, so these series are not scored.',
            },
          }),
          alert('AnomalyExporterConfigReloadFailed', c.exporterSeverity, {
            expr: 'max_over_time(%s[5m]) == 0' % exporter('anomaly_exporter_config_last_reload_successful'),
            'for': c.configReloadFor,
            annotations: {
              summary: 'The anomaly exporter failed to reload its configuration.',
              description: 'The last configuration reload of {{ $labels.instance }} failed: it keeps scoring with the previous configuration until the file loads. Its log names the error.',
            },
          }),
          alert('AnomalyExporterSeriesLimitReached', c.exporterSeverity, {
            expr: 'rate(%s[5m]) > 0' % exporter('anomaly_exporter_detector_samples_skipped_total', ['reason="series_limit"']),
            'for': c.seriesLimitFor,
            annotations: {
              summary: 'The anomaly exporter is at its series limit.',
              description: '{{ $labels.instance }} tracks as many series as global.max_series allows: {{ $value | humanize }} samples per second of new series are not scored.',
            },
          }),
          alert('AnomalyExporterScoresNotScraped', c.exporterSeverity, {
            expr: |||
              up{%(scores)s} == 0
              or
              (
                absent(anomaly_score)
                and on ()
                sum(rate(%(scored)s[5m])) > 0
              )
            ||| % {
              scores: c.anomalyScoresSelector,
              scored: exporter('anomaly_exporter_detector_samples_scored_total'),
            },
            'for': c.scoresNotScrapedFor,
            annotations: {
              summary: 'The anomaly scores are not scraped.',
              description: 'Samples are scored, but Prometheus does not get the scores{{ with $labels.instance }}: the /scores scrape of {{ . }} fails{{ else }}: no anomaly_score series exists (is /scores scraped, with honor_labels?){{ end }}. No anomaly alert can fire.',
            },
          }),
        ],
      },
    ],
  },
}
