#!/usr/bin/env bash
# Load test of the remote-write receiver: what one exporter process accepts, and what it costs in
# CPU and memory per sample and per series, on realistic traffic from `anomalytool loadgen`.
# Optionally the same load against Debian's Prometheus, for a side-by-side ratio.
#
# Everything runs on 127.0.0.1 on free ports, in a temporary directory; every process this script
# starts is stopped when it exits, however it exits. Each load run stops by itself (--duration,
# --rounds).
#
# Variables (make loadtest VAR=value, or the environment):
#   SERIES=100000       distinct series
#   DURATION=30s        length of the measured run
#   PROTOCOL=1          remote write 1 or 2 (Prometheus 2.42 receives only 1)
#   CONCURRENCY=4       loadgen workers (the exporter admits 4×GOMAXPROCS requests at once)
#   TARGET=exporter     exporter, prometheus, or both (then also prints prometheus/exporter ratios)
#   RATE=0              samples/s ceiling, 0 = as fast as the receiver answers
#   SERIES_PER_REQUEST=2000  LABELS=8  STEP=15s (sample time per round)
#   HISTORY=0           rounds of time-compressed history the exporter is primed with, ending
#                       now, HISTORY_STEP apart (HISTORY=168 HISTORY_STEP=1h: a week, every hour
#                       of every day seen), so that RSS is measured with learned baselines;
#                       Prometheus is primed with one round whatever HISTORY says
#   HISTORY_STEP=1h
#   SCRAPE_EVERY=0      scrape the exporter's /scores gzipped every so often during the measured
#                       run (e.g. 15s), as Prometheus would, and report how long each took; 0: off.
#                       After the run, /scores is scraped once plain and once gzipped in any case.
#   PROFILE=            a file to write a CPU profile of the exporter during the measured run to
#                       (it then runs with --web.enable-pprof); read it with go tool pprof
#   EXPORTER=           an exporter binary to measure instead of building ./anomaly_exporter
#                       (comparing two builds)
#   PROMETHEUS=prometheus    the Prometheus binary
#   GO=go
set -euo pipefail

SERIES=${SERIES:-100000}
DURATION=${DURATION:-30s}
PROTOCOL=${PROTOCOL:-1}
CONCURRENCY=${CONCURRENCY:-4}
TARGET=${TARGET:-exporter}
RATE=${RATE:-0}
SERIES_PER_REQUEST=${SERIES_PER_REQUEST:-2000}
LABELS=${LABELS:-8}
STEP=${STEP:-15s}
HISTORY=${HISTORY:-0}
HISTORY_STEP=${HISTORY_STEP:-1h}
SCRAPE_EVERY=${SCRAPE_EVERY:-0}
PROFILE=${PROFILE:-}
PROMETHEUS=${PROMETHEUS:-prometheus}
EXPORTER=${EXPORTER:-}
GO=${GO:-go}

die() {
	echo "loadtest: $*" >&2
	exit 1
}

case $TARGET in
exporter | prometheus | both) ;;
*) die "TARGET=$TARGET: want exporter, prometheus or both" ;;
esac
case $PROTOCOL in
1 | 1.0 | 2 | 2.0) ;;
*) die "PROTOCOL=$PROTOCOL: want 1 or 2" ;;
esac
if [[ $TARGET != exporter ]]; then
	command -v "$PROMETHEUS" >/dev/null || die "TARGET=$TARGET needs $PROMETHEUS (apt-get install prometheus)"
	[[ $PROTOCOL == 1* ]] || die "Prometheus $("$PROMETHEUS" --version 2>&1 | awk 'NR==1{print $3}') receives remote write 1.0 only: use PROTOCOL=1"
fi
[[ -r /proc/self/stat ]] || die "needs /proc (Linux) to read the receiver's CPU time and RSS"

cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/loadtest.XXXXXX")
receiver= # the pid of the receiver running now, if any

# scripts/lib.sh: stop, free_port, rss_kib, wait_ready, json_get, duration_s.
source scripts/lib.sh # after the cd to the repository root

cleanup() {
	[[ -z $receiver ]] || stop "$receiver"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z $EXPORTER ]]; then
	echo "== building ./anomaly_exporter and ./anomalytool"
	"$GO" build -o anomaly_exporter ./cmd/anomaly_exporter
	EXPORTER=./anomaly_exporter
else
	echo "== building ./anomalytool; measuring $EXPORTER"
fi
"$GO" build -o anomalytool ./cmd/anomalytool
./anomalytool loadgen --help >/dev/null 2>&1 ||
	die "./anomalytool has no loadgen subcommand: register loadgenCmd in cmd/anomalytool/main.go"

# cpu_ticks is utime+stime of pid (fields 14 and 15 of /proc/<pid>/stat, counted after the
# parenthesised command name, which may contain spaces).
cpu_ticks() {
	local f
	read -r -a f < <(sed 's/^.*) //' "/proc/$1/stat")
	echo $((f[11] + f[12]))
}


# metric prints the sum of a metric's samples on a /metrics page.
metric() { curl -sf "$1" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%.0f\n", s}'; }

calc() { awk "BEGIN {printf \"$1\", $2}"; }

# scrape_loop scrapes url gzipped every interval seconds until killed, printing the time each
# took and its size.
scrape_loop() {
	while sleep "$2"; do
		curl -sf -o /dev/null -H 'Accept-Encoding: gzip' -w '%{time_total} %{size_download}\n' "$1" || true
	done
}

hz=$(getconf CLK_TCK)
loadgen_flags=(--protocol="$PROTOCOL" --series="$SERIES" --labels="$LABELS" --concurrency="$CONCURRENCY"
	--series-per-request="$SERIES_PER_REQUEST" --time.step="$STEP" --output=json)

# measure starts one receiver, primes it with one round of every series, measures one run of
# DURATION, prints the figures, stops the receiver, and leaves the figures in $tmp/<target>.vars.
measure() {
	local target=$1 port log pid url metrics series_metric scored_metric name
	port=$(free_port)
	log=$tmp/$target.log
	case $target in
	exporter)
		name="anomaly_exporter"
		cat >"$tmp/anomaly.yml" <<-EOF
			global:
			  max_series: 0
			rules:
			  - name: everything
		EOF
		# loadgen runs sample time ahead of the wall clock (a round advances it by STEP): no
		# bound on future timestamps, or the run would measure skips.
		local pprof=()
		[[ -z $PROFILE ]] || pprof=(--web.enable-pprof)
		"$EXPORTER" --web.listen-address="127.0.0.1:$port" --config.file="$tmp/anomaly.yml" \
			--storage.path="$tmp/exporter-data" --log.level=warn --remote-write.max-sample-ahead=0 "${pprof[@]}" >"$log" 2>&1 &
		series_metric=anomaly_exporter_detector_series
		scored_metric=anomaly_exporter_detector_samples_scored_total
		;;
	prometheus)
		name="prometheus $("$PROMETHEUS" --version 2>&1 | awk 'NR==1{print $3}')"
		printf 'global:\n  scrape_interval: 1m\n' >"$tmp/prometheus.yml"
		"$PROMETHEUS" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prometheus-data" \
			--web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver --log.level=warn >"$log" 2>&1 &
		series_metric=prometheus_tsdb_head_series
		scored_metric=prometheus_tsdb_head_samples_appended_total
		;;
	esac
	pid=$!
	receiver=$pid
	url=http://127.0.0.1:$port/api/v1/write
	metrics=http://127.0.0.1:$port/metrics
	wait_ready "http://127.0.0.1:$port/-/ready" "$pid" "$log"
	local rss_idle
	rss_idle=$(rss_kib "$pid")

	local start rounds=1 prime_flags=("${loadgen_flags[@]}")
	start=$(date +%s)
	if [[ $target == exporter && $HISTORY -gt 0 ]]; then
		rounds=$HISTORY
		prime_flags=("${loadgen_flags[@]/--time.step=*/--time.step=$HISTORY_STEP}")
		start=$((start - HISTORY * $(duration_s "$HISTORY_STEP")))
		echo "== $name on 127.0.0.1:$port (pid $pid): priming with $HISTORY rounds of history, $HISTORY_STEP apart, of $SERIES series"
	else
		echo "== $name on 127.0.0.1:$port (pid $pid): priming with one round of $SERIES series"
	fi
	local prime_start prime_end
	prime_start=$(date +%s.%N)
	./anomalytool loadgen --url="$url" "${prime_flags[@]}" --rounds="$rounds" --duration=0 \
		--time.start="$start" >"$tmp/$target-prime.json" 2>"$tmp/$target-prime.err" ||
		die "priming failed: $(cat "$tmp/$target-prime.json" "$tmp/$target-prime.err")"
	prime_end=$(date +%s.%N)
	local primed
	primed=$(json_get "$tmp/$target-prime.json" samples_accepted)
	[[ $primed == "$((SERIES * rounds))" ]] || echo "   warning: priming accepted $primed of $((SERIES * rounds)) samples" >&2
	[[ $rounds == 1 ]] || echo "   primed in $(calc %.0f "$prime_end - $prime_start") s ($(calc %.0f "$primed / ($prime_end - $prime_start)") samples/s)"

	local cpu0 rss0 scored0 cpu1 rss1 scored1 tracked load0 load1
	scored0=$(metric "$metrics" "$scored_metric")
	load0=$(cut -d' ' -f1-3 /proc/loadavg)
	cpu0=$(cpu_ticks "$pid")
	rss0=$(rss_kib "$pid")
	echo "== measuring: $DURATION of remote write $PROTOCOL, $CONCURRENCY workers, rate ${RATE}/s (0 = unbounded)"
	local out=$tmp/$target-run.json scraper= profiler=
	if [[ $target == exporter && -n $PROFILE ]]; then
		# A second shorter than the run, so that the profile covers load only.
		curl -sf -o "$PROFILE" "http://127.0.0.1:$port/debug/pprof/profile?seconds=$(($(duration_s "$DURATION") - 1))" &
		profiler=$!
	fi
	if [[ $target == exporter && $SCRAPE_EVERY != 0 ]]; then
		scrape_loop "http://127.0.0.1:$port/scores" "$(duration_s "$SCRAPE_EVERY")" >"$tmp/$target-scrapes" &
		scraper=$!
	fi
	./anomalytool loadgen --url="$url" "${loadgen_flags[@]}" --duration="$DURATION" --rate="$RATE" \
		--time.start="$(json_get "$tmp/$target-prime.json" next_start_unix)" >"$out" 2>"$tmp/$target-run.err" ||
		die "load run failed: $(cat "$out" "$tmp/$target-run.err")"
	cpu1=$(cpu_ticks "$pid")
	rss1=$(rss_kib "$pid")
	if [[ -n $profiler ]]; then
		wait "$profiler" || echo "   warning: no CPU profile written to $PROFILE" >&2
	fi
	if [[ -n $scraper ]]; then
		kill "$scraper" 2>/dev/null || true
		wait "$scraper" 2>/dev/null || true
	fi
	local scrape_plain= scrape_gzip=
	if [[ $target == exporter ]]; then
		scrape_plain=$(curl -sf -o /dev/null -w '%{time_total} s, %{size_download} bytes' "http://127.0.0.1:$port/scores")
		scrape_gzip=$(curl -sf -o /dev/null -H 'Accept-Encoding: gzip' -w '%{time_total} s, %{size_download} bytes' "http://127.0.0.1:$port/scores")
	fi
	load1=$(cut -d' ' -f1-3 /proc/loadavg)
	scored1=$(metric "$metrics" "$scored_metric")
	tracked=$(metric "$metrics" "$series_metric")
	stop "$pid"
	receiver=

	local accepted sent elapsed rate_s cpu_s cpu_pm lg_cpu lg_pm p50 p99 pmax status
	accepted=$(json_get "$out" samples_accepted)
	sent=$(json_get "$out" samples)
	elapsed=$(json_get "$out" elapsed_seconds)
	rate_s=$(json_get "$out" samples_accepted_per_second)
	lg_cpu=$(json_get "$out" cpu_seconds)
	lg_pm=$(json_get "$out" cpu_seconds_per_million_samples)
	p50=$(json_get "$out" latency_p50_seconds)
	p99=$(json_get "$out" latency_p99_seconds)
	pmax=$(json_get "$out" latency_max_seconds)
	status=$(tr -d '\n "' <"$out" | sed -n 's/.*status:{\([^}]*\)}.*/\1/p')
	cpu_s=$(calc %.2f "($cpu1 - $cpu0) / $hz")
	cpu_pm=$(calc %.3f "$cpu_s / ($accepted > 0 ? $accepted : 1) * 1e6")

	printf '%-28s %s\n' \
		"samples accepted" "$accepted of $sent sent in $(calc %.1f "$elapsed")s (status $status)" \
		"samples/s" "$(calc %.0f "$rate_s")" \
		"receiver samples counted" "$((scored1 - scored0)) ($scored_metric), $tracked series ($series_metric)" \
		"receiver CPU" "$cpu_s s = $cpu_pm CPU-s per million samples ($(calc %.2f "$cpu_s / $elapsed") cores)" \
		"receiver RSS" "$(calc %.1f "$rss_idle / 1024") MiB idle, $(calc %.1f "$rss0 / 1024") MiB primed, $(calc %.1f "$rss1 / 1024") MiB after" \
		"RSS per series" "$(calc %.0f "($rss1 - $rss_idle) * 1024 / $SERIES") bytes ((after - idle) / series), $(calc %.0f "$rss1 * 1024 / $SERIES") bytes (after / series)" \
		"loadgen CPU" "$(calc %.2f "$lg_cpu") s = $(calc %.3f "$lg_pm") CPU-s per million samples" \
		"latency" "p50 $(calc %.1f "$p50 * 1000") ms, p99 $(calc %.1f "$p99 * 1000") ms, max $(calc %.1f "$pmax * 1000") ms" \
		"machine load average" "$load0 before, $load1 after ($(nproc) CPUs, shared with whatever else runs)"
	if [[ -n $scrape_plain ]]; then
		printf '%-28s %s\n' "/scores after the run" "plain $scrape_plain; gzip $scrape_gzip"
	fi
	if [[ -s $tmp/$target-scrapes ]]; then
		printf '%-28s %s\n' "/scores during the run" "$(awk '{n++; s += $1; if ($1 > m) m = $1; b = $2} END {printf "%d scrapes (gzip), mean %.2f s, max %.2f s, last %d bytes", n, s / n, m, b}' "$tmp/$target-scrapes")"
	fi
	cat >"$tmp/$target.vars" <<-EOF
		rate=$rate_s
		cpu_pm=$cpu_pm
		rss_ps=$(calc %.0f "($rss1 - $rss_idle) * 1024 / $SERIES")
		p99=$p99
	EOF
}

echo "== load: $SERIES series × $LABELS labels, remote write $PROTOCOL, $SERIES_PER_REQUEST series per request, step $STEP"
case $TARGET in
exporter) measure exporter ;;
prometheus) measure prometheus ;;
both)
	measure exporter
	measure prometheus
	# shellcheck disable=SC1090
	e_rate=$(. "$tmp/exporter.vars" && echo "$rate") e_cpu=$(. "$tmp/exporter.vars" && echo "$cpu_pm")
	e_rss=$(. "$tmp/exporter.vars" && echo "$rss_ps") e_p99=$(. "$tmp/exporter.vars" && echo "$p99")
	p_rate=$(. "$tmp/prometheus.vars" && echo "$rate") p_cpu=$(. "$tmp/prometheus.vars" && echo "$cpu_pm")
	p_rss=$(. "$tmp/prometheus.vars" && echo "$rss_ps") p_p99=$(. "$tmp/prometheus.vars" && echo "$p99")
	echo "== side by side (ratio = exporter / prometheus)"
	printf '%-30s %12s %12s %8s\n' "" exporter prometheus ratio
	printf '%-30s %12.0f %12.0f %8.2f\n' "samples/s" "$e_rate" "$p_rate" "$(calc %.4f "$e_rate / $p_rate")"
	printf '%-30s %12.3f %12.3f %8.2f\n' "CPU-s per million samples" "$e_cpu" "$p_cpu" "$(calc %.4f "$e_cpu / $p_cpu")"
	printf '%-30s %12.0f %12.0f %8.2f\n' "RSS bytes per series" "$e_rss" "$p_rss" "$(calc %.4f "$e_rss / ($p_rss > 0 ? $p_rss : 1)")"
	printf '%-30s %12.1f %12.1f %8.2f\n' "p99 latency ms" "$(calc %.3f "$e_p99 * 1000")" "$(calc %.3f "$p_p99 * 1000")" "$(calc %.4f "$e_p99 / $p_p99")"
	;;
esac
