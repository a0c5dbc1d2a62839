#!/usr/bin/env bash
# Builds the zip the Functions host runs, as deploy.sh uploads it (remote build installs requirements.txt):
#   infra/package.sh <output.zip>
# Exactly host.json, requirements.txt, function_app.py and the product package eventstore/ (no __pycache__);
# the local tools (eventstore_local/), tests, bench, docs and scripts stay out. Python's zipfile writes it,
# so that no zip tool needs installing (deploy.sh needs python3 already).
set -euo pipefail
output=${1:?output zip path}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "$output" in /*) ;; *) output="$PWD/$output" ;; esac
mkdir -p "$(dirname "$output")"

cd "$root"
python3 - "$output" host.json requirements.txt function_app.py eventstore <<'PY'
import os
import sys
import zipfile

output, *sources = sys.argv[1:]
files = []
for source in sources:
    if os.path.isfile(source):
        files.append(source)
        continue
    if not os.path.isdir(source):
        sys.exit(f"package.sh: {source} is missing")
    for folder, subfolders, names in os.walk(source):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        files.extend(os.path.join(folder, name) for name in sorted(names) if not name.endswith((".pyc", ".pyo")))
temporary = output + ".partial"
with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, strict_timestamps=False) as archive:
    for path in files:
        archive.write(path, path.replace(os.sep, "/"))
os.replace(temporary, output)  # a failed run leaves no half-written zip behind
PY
