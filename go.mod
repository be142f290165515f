module github.com/anomaly-exporter/anomaly_exporter

go 1.26.8

require github.com/prometheus/prometheus v0.316.0
