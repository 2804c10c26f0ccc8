#!/usr/bin/env bash
# Runs taskweave's overhead benchmark and the same workloads on Dask (and Celery on Redis, when
# redis-server is installed) in one go, then prints taskweave's figures next to theirs.
#
#   bash benches/compare/run.sh            # the full suites (a few minutes; Dask is slow)
#   bash benches/compare/run.sh --quick    # smaller sizes
#
# Python packages go into a venv (default target/compare-venv; set VENV to reuse another).
# Results are written to target/compare/{taskweave,dask}.json. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=()
if [ "${1:-}" = "--quick" ]; then
  quick=(--quick)
fi
venv="${VENV:-target/compare-venv}"
out=target/compare
mkdir -p "$out"

if [ ! -x "$venv/bin/python" ]; then
  echo "run.sh: creating a venv in $venv" >&2
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import dask, distributed, celery, redis, packaging" 2>/dev/null; then
  echo "run.sh: installing dask, distributed, celery and redis into $venv" >&2
  "$venv/bin/pip" install --quiet dask distributed celery redis packaging
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "run.sh: redis-server is missing, so Celery is skipped (apt-get install redis-server)" >&2
fi

echo "run.sh: taskweave (cargo bench --bench overhead)" >&2
cargo bench --bench overhead -- "${quick[@]}" --json "$out/taskweave.json"

others=("$out/taskweave.json")
if command -v redis-server >/dev/null 2>&1; then
  echo "run.sh: taskweave on Redis (cargo bench --features redis --bench redis)" >&2
  cargo bench --features redis --bench redis -- "${quick[@]}" --json "$out/taskweave-redis.json"
  others+=("$out/taskweave-redis.json")
fi

echo "run.sh: Dask and Celery" >&2
"$venv/bin/python" benches/compare/dask_celery.py "${quick[@]}" --json "$out/dask.json"

echo "run.sh: Dask's coordination primitives and actors (next to cargo bench --bench coordination)" >&2
"$venv/bin/python" benches/compare/dask_coordination.py "${quick[@]}" --json "$out/dask-coordination.json"

"$venv/bin/python" benches/compare/ratios.py "$out/dask.json" "${others[@]}"
