#!/bin/sh
# Seed the demo company and extensions 1001-1003 (the topology in
# docker/asterisk/pjsip.conf and voicemail.conf) into callroute's Redis.
# Used by compose.yml's `callroute` service and by `scripts/testpbx up`.
# Needs CALLROUTE_REDIS_URL (and CALLROUTE_COUNTRY=FR) in the environment;
# CALLROUTE selects the CLI binary (default: callroute on PATH).
set -eu
CALLROUTE="${CALLROUTE:-callroute}"

"$CALLROUTE" company set +33100001000 --name "Callroute Demo"
for n in 1 2 3; do
    "$CALLROUTE" ext add "100$n" --device "PJSIP/100$n" --mailbox "100$n@default" \
        --did "+3310000100$n"
done
