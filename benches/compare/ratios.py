"""Prints taskweave's figures next to Dask's and Celery's, workload by workload.

    python benches/compare/ratios.py TASKWEAVE_JSON OTHERS_JSON

Both files hold rows as written by `cargo bench --bench overhead -- --json` and by
dask_celery.py. For each workload and size measured by both, it prints the other system's
figure, taskweave's best and worst executor, and how many times faster taskweave's best is.
"""

import json
import sys

# Units where more is better; for the others (times, bytes) less is better.
HIGHER_IS_BETTER = {"tasks/s"}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: ratios.py TASKWEAVE_JSON OTHERS_JSON")
    with open(sys.argv[1]) as f:
        ours = json.load(f)
    with open(sys.argv[2]) as f:
        theirs = json.load(f)

    print()
    print(f"{'workload':<24} {'n':>7} {'unit':<8} {'system':<13} {'theirs':>12} "
          f"{'taskweave best':>22} {'worst':>10} {'faster':>9}")
    print("-" * 114)
    for row in theirs:
        matching = [r for r in ours
                    if r["workload"] == row["workload"] and r["unit"] == row["unit"]
                    and (r["n"] == row["n"] or row["workload"] == "memory per pending task")]
        if not matching:
            continue
        higher = row["unit"] in HIGHER_IS_BETTER
        ordered = sorted(matching, key=lambda r: r["value"], reverse=higher)
        best, worst = ordered[0], ordered[-1]
        if higher:
            faster = best["value"] / row["value"]
        else:
            faster = row["value"] / best["value"] if best["value"] > 0 else float("inf")
        print(f"{row['workload']:<24} {row['n']:>7} {row['unit']:<8} {row['executor']:<13} "
              f"{row['value']:>12.1f} {best['value']:>12.1f} ({best['executor']:<9}) "
              f"{worst['value']:>10.1f} {faster:>8.0f}x")
    if any(row["executor"].startswith("celery") for row in theirs):
        print("\nCelery runs on Redis; taskweave's figures above are its in-process backend (its "
              "Redis backend is not benchmarked yet), so those rows show the cost of a broker.")


if __name__ == "__main__":
    main()
