"""Prints taskweave's figures next to Dask's and Celery's, workload by workload.

    python benches/compare/ratios.py OTHERS_JSON TASKWEAVE_JSON [TASKWEAVE_JSON ...]

The files hold rows as written by `cargo bench --bench overhead -- --json` (and the Redis
bench) and by dask_celery.py. Dask rows are compared with taskweave's in-process rows, Celery
rows (Redis broker) with taskweave's Redis rows (`redis-*` executors) when there are any. For
each workload and size measured by both, it prints the other system's figure, taskweave's
best and worst executor, and how many times better taskweave's best is.
"""

import json
import sys

# Units where more is better; for the others (times, bytes) less is better.
HIGHER_IS_BETTER = {"tasks/s"}


def comparable(ours, row):
    on_redis = [r for r in ours if r["executor"].startswith("redis")]
    in_process = [r for r in ours if not r["executor"].startswith("redis")]
    if row["executor"].startswith("celery") and on_redis:
        return on_redis
    return in_process


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: ratios.py OTHERS_JSON TASKWEAVE_JSON [TASKWEAVE_JSON ...]")
    with open(sys.argv[1]) as f:
        theirs = json.load(f)
    ours = []
    for path in sys.argv[2:]:
        with open(path) as f:
            ours += json.load(f)

    print()
    print(f"{'workload':<24} {'n':>7} {'unit':<8} {'system':<13} {'theirs':>12} "
          f"{'taskweave best':>27} {'worst':>10} {'better':>8}")
    print("-" * 118)
    for row in theirs:
        matching = [r for r in comparable(ours, row)
                    if r["workload"] == row["workload"] and r["unit"] == row["unit"]
                    and (r["n"] == row["n"] or row["workload"] == "memory per pending task")]
        if not matching:
            continue
        higher = row["unit"] in HIGHER_IS_BETTER
        ordered = sorted(matching, key=lambda r: r["value"], reverse=higher)
        best, worst = ordered[0], ordered[-1]
        if higher:
            better = best["value"] / row["value"]
        else:
            better = row["value"] / best["value"] if best["value"] > 0 else float("inf")
        print(f"{row['workload']:<24} {row['n']:>7} {row['unit']:<8} {row['executor']:<13} "
              f"{row['value']:>12.1f} {best['value']:>12.1f} ({best['executor']:<14}) "
              f"{worst['value']:>10.1f} {better:>7.0f}x")
    if any(row["executor"].startswith("celery") for row in theirs) and not any(
            r["executor"].startswith("redis") for r in ours):
        print("\nNo taskweave Redis rows were given: the Celery rows above are compared with "
              "taskweave's in-process backend.")


if __name__ == "__main__":
    main()
