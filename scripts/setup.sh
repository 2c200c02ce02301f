#!/usr/bin/env bash
# Installs what the product needs on a fresh machine: Node packages, a Python virtual
# environment under .venv with the worker's pinned packages, and (with --browser) Debian's
# Chromium for the end-to-end tests. Safe to run again: each step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> installing Node packages"
  npm ci --no-audit --no-fund
fi

stamp=.venv/.requirements.sha256
wanted=$(cat gpu-runner/worker/requirements.txt gpu-runner/worker/requirements-nodeps.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "==> creating the Python environment in .venv (PyTorch CPU build, transformers, PEFT)"
  python3 -m venv .venv
  # `python -m pip` installs into this .venv even when .venv was copied from another
  # checkout, whose bin/pip still starts that checkout's interpreter.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r gpu-runner/worker/requirements.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r gpu-runner/worker/requirements-nodeps.txt
  echo "$wanted" > "$stamp"
fi

if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's Chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
fi
