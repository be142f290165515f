#!/usr/bin/env bash
# The committed profile that Go builds the exporter with (cmd/anomaly_exporter/default.pgo,
# written by `make pgo`) is a measurement, not derived from the source, so no rebuild reproduces
# it byte for byte. What can go stale is what it names: this checks that every function of this
# module among its hottest is still declared, under that name, in the source. A renamed or
# removed hot function fails it: run `make pgo`. (The source, not a binary's symbols: the
# profile-guided build inlines what the profile says is hot, and those have no symbol.)
set -euo pipefail
GO=${GO:-go}
module=github.com/anomaly-exporter/anomaly_exporter
profile=cmd/anomaly_exporter/default.pgo
[[ -s $profile ]] || { echo "pgo-check: $profile is missing: run make pgo" >&2; exit 1; }
hot=$("$GO" tool pprof -top -nodecount=25 "$profile" 2>/dev/null | awk -v m="$module/" 'index($6, m) == 1 {print substr($6, length(m) + 1)}')
[[ -n $hot ]] || { echo "pgo-check: no function of this module among the hottest of $profile" >&2; exit 1; }
missing=()
n=0
for f in $hot; do
	n=$((n + 1))
	dir=${f%%.*}            # detector/model
	rest=${f#*.}            # (*Model).ObserveAt, Type.Method, function, function.func1
	rest=${rest%%.func[0-9]*} # a closure counts as the function that holds it
	if [[ $rest =~ ^\(\*?([A-Za-z0-9_]+)\)\.([A-Za-z0-9_]+)$ || $rest =~ ^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)$ ]]; then
		re="^func \\([A-Za-z0-9_]+ \\*?${BASH_REMATCH[1]}(\\[[^]]*\\])?\\) ${BASH_REMATCH[2]}[[(]"
	else
		re="^func ${rest}[[(]"
	fi
	grep -Eq "$re" "$dir"/*.go 2>/dev/null || missing+=("$f")
done
if ((${#missing[@]} > 0)); then
	echo "pgo-check: $profile names functions the source no longer declares: run make pgo" >&2
	printf '  %s\n' "${missing[@]}" >&2
	exit 1
fi
echo "pgo-check: the $n hot functions of this module that $profile names are all declared"
