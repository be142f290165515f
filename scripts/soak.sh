#!/usr/bin/env bash
# Soak test of the exporter: SOAK_DURATION of mixed remote-write load from `anomalytool loadgen`
# (steady series, a churn of new series every round, and broken or hostile requests mixed in:
# corrupt bodies, length bombs, 10k-label series, 1 MB values, timestamps far off, slowloris
# connections), paced so that sample time follows the wall clock. Every SAMPLE_EVERY seconds it
# prints the exporter's RSS (/proc), go_goroutines, heap and tracked series; at the end it checks
# that after WARMUP neither RSS nor the goroutine count grows, that no request got a 5xx, and that
# every hostile request was answered as owed.
#
# Everything runs on 127.0.0.1 on a free port, in a temporary directory; the exporter is stopped
# when the script exits, however it exits, and the load stops by itself after SOAK_DURATION.
#
# Variables (make soak VAR=value, or the environment):
#   SOAK_DURATION=30m   length of the load (s, m or h)
#   WARMUP=             time before growth is judged; default: 5m, or a third of shorter runs
#   SERIES=20000        steady series, one sample per ROUND seconds each
#   CHURN=200           new series per round (each sent once, then expired)
#   ROUND=5             seconds per round, of wall clock and of sample time
#   HOSTILE_INTERVAL=1s one hostile request per interval
#   SERIES_EXPIRY=3m    the exporter's series_expiry, so that churned series are forgotten
#   MAX_SERIES=100000   the exporter's max_series
#   SAMPLE_EVERY=30     time between readings (30, 30s, 1m)
#   MAX_GROWTH=10       % of RSS growth after warm-up that fails the run
#   PROTOCOL=1          remote write 1 or 2
#   GO=go
set -euo pipefail

SOAK_DURATION=${SOAK_DURATION:-30m}
WARMUP=${WARMUP:-}
SERIES=${SERIES:-20000}
CHURN=${CHURN:-200}
ROUND=${ROUND:-5}
HOSTILE_INTERVAL=${HOSTILE_INTERVAL:-1s}
SERIES_EXPIRY=${SERIES_EXPIRY:-3m}
MAX_SERIES=${MAX_SERIES:-100000}
SAMPLE_EVERY=${SAMPLE_EVERY:-30}
MAX_GROWTH=${MAX_GROWTH:-10}
PROTOCOL=${PROTOCOL:-1}
GO=${GO:-go}

die() {
	echo "soak: $*" >&2
	exit 1
}

# scripts/lib.sh: stop, free_port, rss_kib, wait_ready, json_get, duration_s.
source "$(dirname "$0")/lib.sh"

duration=$(duration_s "$SOAK_DURATION")
((duration >= 60)) || die "SOAK_DURATION=$SOAK_DURATION: at least 1m"
if [[ -n $WARMUP ]]; then
	warmup=$(duration_s "$WARMUP")
else
	warmup=$((duration / 3 < 300 ? duration / 3 : 300))
fi
((warmup < duration)) || die "WARMUP=$WARMUP is not shorter than SOAK_DURATION=$SOAK_DURATION"
sample_every=$(duration_s "$SAMPLE_EVERY")
[[ -r /proc/self/status ]] || die "needs /proc (Linux) to read the exporter's RSS"

cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
exporter=
loadgen=

cleanup() {
	[[ -z $loadgen ]] || stop "$loadgen"
	[[ -z $exporter ]] || stop "$exporter"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# val prints the sum of a metric's samples in the /metrics page in $m, whose series contain $2.
val() { awk -v m="$1" -v f="${2:-}" '($1 == m || index($1, m "{") == 1) && index($1, f) {s += $2} END {printf "%.0f\n", s}' <<<"$m"; }

echo "== building ./anomaly_exporter and ./anomalytool"
"$GO" build -o anomaly_exporter ./cmd/anomaly_exporter
"$GO" build -o anomalytool ./cmd/anomalytool

port=$(free_port)
base=http://127.0.0.1:$port
cat >"$tmp/anomaly.yml" <<EOF
global:
  max_series: $MAX_SERIES
  stale_after: 1m
  series_expiry: $SERIES_EXPIRY
rules:
  - name: everything
EOF
./anomaly_exporter --web.listen-address="127.0.0.1:$port" --config.file="$tmp/anomaly.yml" \
	--storage.path="$tmp/data" --log.level=warn >"$tmp/exporter.log" 2>&1 &
exporter=$!
wait_ready "$base/-/ready" "$exporter" "$tmp/exporter.log"

rate=$(((SERIES + CHURN) / ROUND))
echo "== soak: $SOAK_DURATION against pid $exporter on $base: $SERIES series + $CHURN new per ${ROUND}s round" \
	"($rate samples/s), a hostile request every $HOSTILE_INTERVAL; warm-up ${warmup}s"
./anomalytool loadgen --url="$base/api/v1/write" --protocol="$PROTOCOL" --series="$SERIES" --churn="$CHURN" \
	--rate="$rate" --time.step="${ROUND}s" --time.start="$(($(date +%s) - ROUND))" --duration="${duration}s" \
	--hostile-interval="$HOSTILE_INTERVAL" --output=json >"$tmp/loadgen.json" 2>"$tmp/loadgen.err" &
loadgen=$!

printf '%8s %10s %10s %10s %9s %12s %10s %8s\n' elapsed rss_mib heap_mib goroutines series scored new_total 5xx
readings=$tmp/readings
start=$(date +%s)
next=$start
while kill -0 "$loadgen" 2>/dev/null; do
	now=$(date +%s)
	if ((now >= next)); then
		kill -0 "$exporter" 2>/dev/null || die "the exporter died: $(tail -5 "$tmp/exporter.log")"
		m=$(curl -sf "$base/metrics") || die "the exporter did not answer /metrics"
		rss=$(rss_kib "$exporter")
		heap=$(val go_memstats_heap_inuse_bytes)
		gor=$(val go_goroutines)
		series=$(val anomaly_exporter_detector_series)
		scored=$(val anomaly_exporter_detector_samples_scored_total)
		created=$(val anomaly_exporter_detector_series_created_total)
		fivexx=$(($(val anomaly_exporter_remote_write_requests_total 'code="500"') + $(val anomaly_exporter_remote_write_requests_total 'code="503"')))
		elapsed=$((now - start))
		echo "$elapsed $rss $gor" >>"$readings"
		printf '%7ss %10.1f %10.1f %10s %9s %12s %10s %8s\n' "$elapsed" "$(awk "BEGIN{print $rss/1024}")" \
			"$(awk "BEGIN{print $heap/1048576}")" "$gor" "$series" "$scored" "$created" "$fivexx"
		next=$((next + sample_every))
	fi
	sleep 1
done
wait "$loadgen" || die "loadgen failed: $(cat "$tmp/loadgen.err" "$tmp/loadgen.json")"
loadgen=

echo "== load: $(json_get "$tmp/loadgen.json" samples) samples sent, $(json_get "$tmp/loadgen.json" samples_accepted) accepted," \
	"$(json_get "$tmp/loadgen.json" new_series) new series, $(json_get "$tmp/loadgen.json" hostile_requests) hostile requests" \
	"($(json_get "$tmp/loadgen.json" hostile_unexpected) not answered as owed), latency p99 $(json_get "$tmp/loadgen.json" latency_p99_seconds)s"
echo "== the exporter's counts of what it did not accept or score:"
curl -sf "$base/metrics" | grep -E '^anomaly_exporter_(remote_write_requests_(rejected|shed)|remote_write_samples_rejected|detector_samples_skipped)_total' |
	awk '$2 != 0 {printf "   %s %s\n", $1, $2}'

# Judge growth after warm-up: RSS of the last third of the readings against the first third,
# and the goroutine count's maximum against its first reading.
fail=0
read -r rss_first rss_last gor_first gor_max n < <(awk -v w="$warmup" 'BEGIN {n = 0} $1 >= w {t[n] = $1; r[n] = $2; g[n] = $3; n++}
	END {
		if (n < 3) { print 0, 0, 0, 0, n; exit }
		k = int(n / 3); a = 0; b = 0; gm = 0
		for (i = 0; i < k; i++) { a += r[i]; b += r[n - 1 - i] }
		for (i = 0; i < n; i++) if (g[i] > gm) gm = g[i]
		print a / k, b / k, g[0], gm, n
	}' "$readings")
if ((n < 3)); then
	echo "soak: only $n readings after warm-up: make SOAK_DURATION longer or SAMPLE_EVERY shorter" >&2
	fail=1
else
	growth=$(awk "BEGIN {printf \"%.1f\", ($rss_last / $rss_first - 1) * 100}")
	echo "== after warm-up ($n readings): RSS $(awk "BEGIN {printf \"%.1f\", $rss_first / 1024}") MiB (first third)" \
		"-> $(awk "BEGIN {printf \"%.1f\", $rss_last / 1024}") MiB (last third), ${growth}%;" \
		"goroutines $gor_first at the start, at most $gor_max"
	if awk "BEGIN {exit !($growth > $MAX_GROWTH)}"; then
		echo "soak: RSS grew ${growth}% after warm-up (limit ${MAX_GROWTH}%)" >&2
		fail=1
	fi
	if ((gor_max > gor_first + 20)); then
		echo "soak: goroutines grew from $gor_first to $gor_max after warm-up" >&2
		fail=1
	fi
fi
if [[ $(json_get "$tmp/loadgen.json" hostile_unexpected) != 0 ]]; then
	echo "soak: hostile requests not answered as owed: $(json_get "$tmp/loadgen.json" first_unexpected)" >&2
	fail=1
fi
if ((fivexx > 0)); then
	echo "soak: $fivexx requests were answered 500 or 503" >&2
	fail=1
fi
((fail == 0)) && echo "soak: PASS" || {
	echo "soak: FAIL"
	exit 1
}
