#!/usr/bin/env bash
# Installs the real components the tests start or run when they are missing: Debian's
# Prometheus and promtool (end-to-end tests, promtool check/test rules of the mixin) and
# Alertmanager and amtool (the mixin's end-to-end test, amtool check-config), VictoriaMetrics
# and vmagent (the sharding end-to-end test). Shared by `make test` and .ci/run so that both
# work on a fresh machine.
set -euo pipefail
declare -A package=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [victoria-metrics]=victoria-metrics
  [vmagent]=victoria-metrics
)
missing=()
for bin in "${!package[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${package[$bin]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "installing Debian's ${pkgs[*]} (missing binaries)"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
# The packages may start system services; the tests run their own instances on free ports.
for svc in "${pkgs[@]}"; do
  ($SUDO systemctl stop "$svc" || $SUDO service "$svc" stop || true) >/dev/null 2>&1
done
