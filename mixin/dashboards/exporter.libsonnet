// Exporter: the health of the anomaly exporter itself, from its /metrics: what it receives and
// how it answers, what it scores and skips, how many series it tracks, what that costs.
local g = import '../lib/grafana.libsonnet';
local utils = import '../lib/utils.libsonnet';

{
  grafanaDashboards+:: {
    local c = $._config,
    local n = utils.names(c),
    local cl = c.clusterLabel,
    local f = ['%s=~"$cluster"' % cl, 'job=~"$job"', 'instance=~"$instance"'],
    local m(name, extra=[]) = utils.selector(name, f + extra),
    local rate(name, extra=[]) = 'rate(%s[$__rate_interval])' % m(name, extra),
    // Process and Go runtime metrics of the exporter's targets only, whatever job is picked.
    local own(name) = '%s and on (job, instance) %s' % [m(name), m('anomaly_exporter_build_info')],

    'anomaly-exporter.json': g.dashboard(
      c,
      c.dashboardUIDs.exporter,
      'Exporter',
      "The anomaly exporter's own health: remote-write ingest, scoring, series, resources.",
      [
        g.variable('cluster', 'Cluster', 'label_values(anomaly_exporter_build_info, %s)' % cl, allValue='.*'),
        g.variable('job', 'Job', 'label_values(anomaly_exporter_build_info{%s=~"$cluster"}, job)' % cl),
        g.variable('instance', 'Instance', 'label_values(anomaly_exporter_build_info{%s=~"$cluster", job=~"$job"}, instance)' % cl),
      ],
      [
        g.stat('Samples received', 'Samples per second received by remote write, averaged over 5m.', [g.target('sum(%s)' % m(n.samplesReceived))], 'cps'),
        g.stat('Samples scored', 'Samples per second scored against a baseline, averaged over 5m.', [g.target('sum(%s)' % m(n.samplesScored))], 'cps'),
        g.stat('Series tracked', 'Series with a baseline.', [g.target('sum(%s)' % m('anomaly_exporter_detector_series'))], 'short'),
        g.stat('Failed requests', 'Share of remote-write requests answered with a non-2xx status, over 5m.', [g.target('sum(%s) / sum(%s)' % [m(n.requests, ['code!~"2.."']), m(n.requests)])], 'percentunit', thresholds=[[null, 'green'], [c.remoteWriteErrorRatio, 'red']]),
        g.stat('Config reload', 'Whether the last configuration reload succeeded on every instance.', [g.target('min(%s)' % m('anomaly_exporter_config_last_reload_successful'))], 'none', thresholds=[[null, 'red'], [1, 'green']], mappings=[{ type: 'value', options: { '0': { text: 'failed', index: 0 }, '1': { text: 'ok', index: 1 } } }]),
        g.stat('Up', 'Exporter targets up, of those selected.', [g.target('sum(%s)' % m('up'))], 'short'),

        g.timeseries('Samples received by protocol', 'Float samples (stale markers included) decoded from remote-write requests per second, by remote-write protocol version.', [g.target('sum by (instance, protocol) (%s)' % rate('anomaly_exporter_remote_write_samples_received_total'), '{{instance}} RW {{protocol}}')], 'cps', stack=true, min=0),
        g.timeseries('Samples scored and skipped', 'Samples per second scored, and those not scored by reason (no_rule, series_limit, own_output, ...).', [
          g.target('sum by (instance) (%s)' % rate('anomaly_exporter_detector_samples_scored_total'), '{{instance}} scored'),
          g.target('sum by (instance, reason) (%s) > 0' % rate('anomaly_exporter_detector_samples_skipped_total'), '{{instance}} skipped: {{reason}}'),
        ], 'cps', min=0),
        g.timeseries('Requests by status code', 'Remote-write requests per second by HTTP status: 400 and 413 drop samples, 429 and 503 make senders retry.', [g.target('sum by (code) (%s)' % rate('anomaly_exporter_remote_write_requests_total'), '{{code}}')], 'reqps', stack=true, min=0),
        g.timeseries('Request latency', 'Time to answer a remote-write request, scoring included: quantiles over the selected instances.', [
          g.target('histogram_quantile(%s, sum by (le) (%s))' % [q, rate('anomaly_exporter_remote_write_request_duration_seconds_bucket')], 'p%s' % std.strReplace(std.toString(q * 100), '.0', ''))
          for q in [0.5, 0.9, 0.99]
        ], 's', min=0),
        g.timeseries('Rejected samples by reason', 'Samples of series rejected with a 400, per second, by reason; the senders drop them.', [g.target('sum by (reason) (%s) > 0' % rate('anomaly_exporter_remote_write_samples_rejected_total'), '{{reason}}')], 'cps', min=0),
        g.timeseries('Requests in flight', 'Remote-write requests being processed at once; beyond the limit they get a 429.', [g.target('sum by (instance) (%s)' % m('anomaly_exporter_remote_write_requests_in_flight'), '{{instance}}')], 'short', min=0),
        g.timeseries('Series tracked', 'Series with a baseline, per instance.', [g.target('sum by (instance) (%s)' % m('anomaly_exporter_detector_series'), '{{instance}}')], 'short', min=0),
        g.timeseries('Series churn', 'Series created, expired (no sample for series_expiry) and unselected by a reload, per second.', [
          g.target('sum(%s)' % rate('anomaly_exporter_detector_series_created_total'), 'created'),
          g.target('sum(%s)' % rate('anomaly_exporter_detector_series_expired_total'), 'expired'),
          g.target('sum(%s)' % rate('anomaly_exporter_detector_series_unselected_total'), 'unselected'),
        ], 'cps', min=0),
        g.timeseries('Scoring time per sample', 'CPU time spent scoring, per sample scored.', [g.target('sum by (instance) (%s) / sum by (instance) (%s)' % [rate('anomaly_exporter_detector_scoring_seconds_total'), rate('anomaly_exporter_detector_samples_scored_total')], '{{instance}}')], 's', min=0),
        g.timeseries('Memory', 'Resident memory and Go heap in use, per instance.', [
          g.target(own('process_resident_memory_bytes'), '{{instance}} resident'),
          g.target(own('go_memstats_heap_inuse_bytes'), '{{instance}} heap in use'),
        ], 'bytes', min=0),
        g.timeseries('Memory per series', 'Resident memory divided by the series tracked.', [g.target('sum by (instance) (%s) / sum by (instance) (%s)' % [own('process_resident_memory_bytes'), m('anomaly_exporter_detector_series')], '{{instance}}')], 'bytes', min=0),
        g.timeseries('CPU', 'CPU cores used, per instance.', [g.target('sum by (instance) (%s and on (job, instance) %s)' % [rate('process_cpu_seconds_total'), m('anomaly_exporter_build_info')], '{{instance}}')], 'short', min=0),
        g.timeseries('/scores scrape', 'How long Prometheus takes to scrape /scores; keep it well under the scrape interval.', [g.target('max by (instance) (%s)' % utils.selector('scrape_duration_seconds', [c.anomalyScoresSelector, 'instance=~"$instance"']), '{{instance}}')], 's', min=0),
        g.timeseries('Score series scraped', 'Samples in each /scores scrape: six per scored series.', [g.target('sum by (instance) (%s)' % utils.selector('scrape_samples_scraped', [c.anomalyScoresSelector, 'instance=~"$instance"']), '{{instance}}')], 'short', min=0),
      ],
    ),
  },
}
