# Shell helpers shared by the scripts that start processes (loadtest.sh, soak.sh). Sourced;
# the sourcing script defines die.

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
