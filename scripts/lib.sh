# Shell helpers shared by the scripts that start processes (loadtest.sh, soak.sh). Sourced;
# the sourcing script defines die (the functions call it when they are called, not before).

# stop ends a process the script started, politely first: SIGTERM, up to 10 s, then SIGKILL.
stop() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# free_port prints a port nothing listens on (a connection to it is refused).
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# rss_kib prints the resident set size of pid in KiB.
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# wait_ready waits for url to answer 200 while pid runs.
wait_ready() {
	local url=$1 pid=$2 log=$3
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || {
			tail -20 "$log" >&2
			die "the receiver exited before it was ready"
		}
		curl -sf -o /dev/null "$url" && return
		sleep 0.1
	done
	die "$url not ready after 30s"
}

# json_get prints the value of a top-level key of loadgen's indented JSON report.
json_get() { sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -1; }

# duration_s prints a duration of whole seconds, minutes, hours or days (90s, 10m, 1h, 2d, or a
# bare number of seconds) in seconds.
duration_s() {
	case $1 in
	*d) echo $((${1%d} * 86400)) ;;
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*[0-9]) echo "$1" ;;
	*) die "duration $1: want a whole number of s, m, h or d" ;;
	esac
}
