#!/usr/bin/env bash
# Executes every notebook in examples/ headless with the tslab (TypeScript) kernel and fails
# when a cell raises. Needs jupyter-nbconvert, jupyter-client and python3-ipykernel (Debian).
# tslab is installed into a folder of its own, not the project's node_modules: it ships its own
# TypeScript whose `tsc` would shadow the project's.
set -euo pipefail
cd "$(dirname "$0")/.."
tslab_dir=${TSLAB_DIR:-$PWD/.cache/tslab}
if [ ! -x "$tslab_dir/node_modules/.bin/tslab" ]; then
  npm install --prefix "$tslab_dir" --no-save --no-audit --no-fund tslab@1.0.22 >/dev/null
fi
export PATH="$tslab_dir/node_modules/.bin:$PATH"
python=${PYTHON:-/usr/bin/python3}
tslab install --python="$python" >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for nb in examples/*.ipynb; do
  # frozen-modules warnings of the Debian debugger are noise here
  if PYDEVD_DISABLE_FILE_VALIDATION=1 jupyter nbconvert --to notebook --execute "$nb" \
      --ExecutePreprocessor.timeout=300 --output-dir "$out" >"$out/log" 2>&1; then
    echo "notebook ok: $nb"
  else
    echo "notebook FAILED: $nb"
    grep -v -i -e debugger -e frozen "$out/log" | tail -20
    status=1
  fi
done
exit $status
