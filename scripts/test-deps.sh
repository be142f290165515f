#!/usr/bin/env bash
# Installs the real components the end-to-end tests start (Debian's Prometheus and promtool) when
# they are missing. Shared by `make test` and .ci/run so that both work on a fresh machine.
set -euo pipefail
missing=()
for bin in prometheus promtool; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian's prometheus package (missing: ${missing[*]})"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package may start a system service; the tests run their own instances on free ports.
($SUDO systemctl stop prometheus || $SUDO service prometheus stop || true) >/dev/null 2>&1
