#!/bin/sh
# Creates models/train/.venv with the pinned trainer packages (idempotent) and prints its python.
# Usage: sh models/train/setup.sh   (from anywhere)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
py="$venv/bin/python"
stamp="$venv/.requirements.installed"
if [ ! -x "$py" ]; then
    python3 -m venv "$venv"
fi
# Reinstall only when requirements.txt changed since the last successful install.
if [ ! -f "$stamp" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    "$py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi
echo "$py"
