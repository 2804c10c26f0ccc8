#!/usr/bin/env bash
# taskweave's Redis backend (worker defaults, then the bench's tuned settings), apalis 1.x
# with its Redis backend (its defaults, then a 1 ms poll) and Celery 5 on Redis (a prefork
# worker of 2 processes with Celery's default prefetch multiplier 4, then 64), N trivial
# tasks each (default 2,000), one after another on the same machine. Not part of CI; builds
# apalis-compare in its own target directory (APALIS_TARGET, default target/apalis-compare)
# and installs Celery into a venv (VENV, default target/compare-venv) when it is missing.
#
#   bash benches/compare/redis_compare.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-1}"
# apalis-compare did not finish 10,000 jobs within 5 minutes in the one run so far (2,000
# did); N sets the size for both.
n="${N:-2000}"
target="${APALIS_TARGET:-target/apalis-compare}"
CARGO_TARGET_DIR="$target" cargo build --release --manifest-path benches/compare/apalis/Cargo.toml
cargo bench --features redis --bench redis --no-run
venv="${VENV:-target/compare-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import celery, redis, packaging" 2>/dev/null || "$venv/bin/pip" install --quiet celery redis packaging
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --save '' --appendonly no --dir "$dir" --daemonize yes >/dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
for round in $(seq "$rounds"); do
  echo "== round $round, load $(cut -d' ' -f1-3 /proc/loadavg)"
  cargo bench --features redis --bench redis -- --defaults --commandstats "$n" | grep "tasks/s" | sed 's/^/taskweave defaults: /'
  cargo bench --features redis --bench redis -- --commandstats "$n" | grep "tasks/s" | sed 's/^/taskweave tuned (4, 64): /'
  redis-cli -p "$port" flushall >/dev/null
  "$target/release/apalis-compare" "redis://127.0.0.1:$port" "$n"
  redis-cli -p "$port" flushall >/dev/null
  "$target/release/apalis-compare" "redis://127.0.0.1:$port" "$n" 1
  # Celery starts its own redis-server (dask_celery.py) and prints its figures on stderr.
  for prefetch in 4 64; do
    "$venv/bin/python" benches/compare/dask_celery.py --only-celery --celery-n "$n" \
      --celery-prefetch "$prefetch" 2>&1 | grep "^celery (prefetch"
  done
done
