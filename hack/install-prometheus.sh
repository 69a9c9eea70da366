#!/usr/bin/env bash
# Installs Debian's Prometheus server when it is missing. The analysis and e2e tests start their own
# Prometheus process (temp config, temp data dir, a free port on 127.0.0.1); they only need the
# binary, so the packaged service is stopped and disabled again right after installation.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-prometheus: prometheus is missing and installing it needs root (apt-get install prometheus)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d 101 keeps the package's postinst from starting a system-wide Prometheus on :9090.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
remove_policy() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap remove_policy EXIT
apt-get install -y -qq --no-install-recommends prometheus
prometheus --version | head -1
