#!/bin/sh
# Provision Asterisk for callroute. The ONE script shared by the Docker image
# (Dockerfile.asterisk) and the test PBX root filesystem (tests/harness/rootfs.py
# runs it in a chroot on every `up`), so both run the same config and code.
#
# Usage: provision.sh [WHEELDIR]    (or CALLROUTE_WHEELS=WHEELDIR)
# WHEELDIR holds callroute's wheel and its pure-Python dependencies; nothing is
# downloaded. The source tree is the directory above this script: it must hold
# docker/asterisk/*.conf and dialplan/callroute.conf.
# Idempotent: safe to run again on an already provisioned system.
set -eu

WHEELS="${1:-${CALLROUTE_WHEELS:-}}"
SRC="$(cd "$(dirname "$0")/.." && pwd)"
VENV=/opt/callroute
ETC=/etc/asterisk
DIST="$ETC.dist"   # the distro's sample configs, kept for reference only

if [ -z "$WHEELS" ] || [ ! -d "$WHEELS" ]; then
    echo "provision.sh: give the wheel directory as argument or CALLROUTE_WHEELS" >&2
    exit 2
fi

# callroute in its own venv (the AGI runs /opt/callroute/bin/callroute-agi).
# Uninstall first: the version number does not change between builds, and the
# PBX must run the code of this very wheel.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" uninstall -q -y callroute >/dev/null 2>&1 || true
"$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" callroute

# Asterisk config: only ours loads. The ~100 distro samples would start
# services and contexts we don't want (users.conf, extensions.ael, iax.conf...),
# so move them all aside once, then keep only the samples that merely hold
# defaults for core subsystems (they log errors when absent).
if [ ! -d "$DIST" ]; then
    mv "$ETC" "$DIST"
fi
rm -rf "$ETC"
mkdir -p "$ETC"
for conf in asterisk indications ccss features acl udptl pjproject; do
    cp "$DIST/$conf.conf" "$ETC/"
done
cp "$SRC"/docker/asterisk/*.conf "$ETC/"
# Required: if the file extensions.conf #includes is missing, pbx_config
# declines to load and Asterisk runs with no dialplan at all.
cp "$SRC/dialplan/callroute.conf" "$ETC/callroute.conf"

# The agent's settings. The Redis URL is deliberately absent: it comes from
# CALLROUTE_REDIS_URL in Asterisk's environment, which AGI children inherit.
cat > /etc/callroute.conf <<'CONF'
[callroute]
country = FR
trunk_dial = PJSIP/{number}@carrier
default_device = PJSIP/{ext}
timeout_ms = 300
CONF
chmod 0644 /etc/callroute.conf
