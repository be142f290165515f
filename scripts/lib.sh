# Shell helpers shared by the scripts that start processes (loadtest.sh, soak.sh). Sourced.

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
