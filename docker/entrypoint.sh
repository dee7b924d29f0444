#!/usr/bin/env bash
# The image's entry point: run jb with the container's arguments.
#
# It waits for nothing: jb listens at once and waits for Redis and RabbitMQ
# itself (503 NotReady meanwhile; startup_timeout makes it exit instead).
# Configuration comes from JUNEBUG_* variables (the image sets
# JUNEBUG_INTERFACE=0.0.0.0 and JUNEBUG_PORT=8080), a mounted file
# (-c /app/config.yaml) or flags; flags win over variables.
#
#   (no arguments), --flag ...      jb [flags]
#   jb ... / message-api ...        jb ... / jb message-api ...
#   anything else (sh, python ...)  run that command instead
set -euo pipefail

if [[ $# -eq 0 || "$1" == -* || "$1" == "message-api" ]]; then
    exec jb "$@"
fi
if [[ "$1" == "jb" ]]; then
    shift
    exec jb "$@"
fi
exec "$@"
