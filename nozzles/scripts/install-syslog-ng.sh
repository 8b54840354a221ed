#!/usr/bin/env bash
# Installs the Debian syslog-ng daemon next to rsyslog for the drain tests.
# rsyslog and syslog-ng-core conflict in apt (both provide system-log-daemon),
# so rsyslog is installed normally and syslog-ng-core is unpacked into
# /opt/syslog-ng (its shared-library dependencies are installed normally).
# The tests find /opt/syslog-ng/usr/sbin/syslog-ng and set LD_LIBRARY_PATH and
# --module-path themselves. Safe to run repeatedly.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
prefix=${SYSLOG_NG_PREFIX:-/opt/syslog-ng}
if [ -x "$prefix/usr/sbin/syslog-ng" ] || command -v syslog-ng >/dev/null 2>&1; then
  exit 0
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  libcap2 libglib2.0-0 libivykis0 libjson-c5 libnet1 libpcre3 libssl3 libwrap0 >/dev/null
tmp=$(mktemp -d)
(cd "$tmp" && apt-get download -qq syslog-ng-core)
mkdir -p "$prefix"
dpkg -x "$tmp"/syslog-ng-core_*.deb "$prefix"
rm -rf "$tmp"
LD_LIBRARY_PATH="$prefix/usr/lib/syslog-ng" "$prefix/usr/sbin/syslog-ng" --version | head -1
