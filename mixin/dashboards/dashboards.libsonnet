// The mixin's Grafana dashboards, keyed by file name.
(import 'overview.libsonnet') +
(import 'series.libsonnet') +
(import 'exporter.libsonnet')
