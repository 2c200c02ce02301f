#!/usr/bin/env bash
# Stops the process whose PID is in FILE: SIGTERM, then SIGKILL after 10 s.
pidfile=$1
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
if kill "$pid" 2>/dev/null; then
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
