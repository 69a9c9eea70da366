#!/usr/bin/env bash
# Installs the Debian packages the tests and the local cluster need, only those that are missing,
# so a fresh machine sets itself up and a set-up one pays one dpkg-query per package.
#   hack/install-debs.sh PACKAGE...
# The package index is refreshed only when it is absent or an install fails against it (a stale
# index names .debs the mirror no longer has). Packages that ship a service (containerd)
# are installed without starting it: hack/node.sh runs its own processes.
set -euo pipefail
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "$@"; do installed "$pkg" || missing+=("$pkg"); done
[ ${#missing[@]} -gt 0 ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
  # A CI runner's user has passwordless sudo; anyone else is told what to install.
  if sudo -n true 2>/dev/null; then exec sudo -n "$0" "${missing[@]}"; fi
  echo "install-debs: missing ${missing[*]}; installing needs root (apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-debs: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Exit code 101 from policy-rc.d tells a package's postinst not to start its service.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
# Several checkouts may set up at once: wait for dpkg's lock instead of failing on it.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -qq "$@"; }
install() { apt_get install --no-install-recommends "${missing[@]}" >/dev/null; }
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || ! install; then
  apt_get update
  install
fi
