"""The workloads of benches/overhead.rs on Dask distributed and, when redis-server is
available, on Celery with Redis, printed as the same rows (workload, executor, n, value,
unit, baseline_ratio) so that benches/compare/run.sh can put them next to taskweave's.

Usage (run.sh does this in a venv with the packages installed):

    python benches/compare/dask_celery.py [--quick] [--full] [--json PATH] [--no-celery]

Dask runs with an asynchronous Client on LocalCluster(processes=False, n_workers=1,
threads_per_worker=2). Dask does about a thousand tasks per second here, so the N = 100,000
batches (several minutes each) run only with --full. Everything talks to 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def wait_for_gate(name):
    # Runs on a worker thread: blocks it until the benchmark sets the event.
    from distributed import Event
    return Event(name).wait()


def resident_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def row(workload, executor, n, value, unit):
    return {"workload": workload, "executor": executor, "n": n, "value": value,
            "unit": unit, "baseline_ratio": None}


def percentile(sorted_samples, fraction):
    index = round((len(sorted_samples) - 1) * fraction)
    return sorted_samples[min(index, len(sorted_samples) - 1)]


# --------------------------------------------------------------------------------------------
# Dask

async def dask_suite(sizes):
    from dask.distributed import Client, Event, LocalCluster, as_completed

    rows = []
    async with LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                            asynchronous=True, dashboard_address=None) as cluster:
        async with Client(cluster, asynchronous=True) as client:
            # Warm up: the first tasks pay for imports and connections.
            await client.gather(client.map(inc, range(200), pure=False))

            # Memory first, while the heap is fresh (Python reuses freed memory, which would
            # hide the growth after the other workloads).
            # Both worker threads blocked, n tasks queued behind them.
            n = sizes["memory"]
            gate = Event("taskweave-bench-gate", client=client)
            blockers = [client.submit(wait_for_gate, gate.name, pure=False) for _ in range(2)]
            while len(client.cluster.scheduler.tasks) < 2:
                await asyncio.sleep(0.05)
            before = resident_bytes()
            pending = [client.submit(inc, i, pure=False) for i in range(n)]
            # Let the scheduler register them (submission is asynchronous in Dask).
            await asyncio.sleep(0)
            while len(client.cluster.scheduler.tasks) < n + 2:
                await asyncio.sleep(0.05)
            after = resident_bytes()
            await gate.set()
            await client.gather(blockers)
            await client.gather(pending)
            rows.append(row("memory per pending task", "dask", n, (after - before) / n, "bytes"))

            for n in sizes["batch"]:
                started = time.perf_counter()
                futures = [client.submit(inc, i, pure=False) for i in range(n)]
                values = await client.gather(futures)
                del futures
                took = time.perf_counter() - started
                assert values == [i + 1 for i in range(n)]
                rows.append(row("submit+gather", "dask", n, n / took, "tasks/s"))
                rows.append(row("submit+gather", "dask", n, took * 1e6 / n, "us/task"))
                print(f"dask submit+gather n={n}: {n / took:.0f} tasks/s", file=sys.stderr)

            for n in sizes["batch"]:
                started = time.perf_counter()
                futures = client.map(inc, range(n), pure=False)
                values = await client.gather(futures)
                del futures
                took = time.perf_counter() - started
                assert values == [i + 1 for i in range(n)]
                rows.append(row("map+gather", "dask", n, n / took, "tasks/s"))
                rows.append(row("map+gather", "dask", n, took * 1e6 / n, "us/task"))
                print(f"dask map+gather n={n}: {n / took:.0f} tasks/s", file=sys.stderr)

            n = sizes["round_trips"]
            samples = []
            for i in range(n):
                started = time.perf_counter()
                value = await client.submit(inc, i, pure=False)
                samples.append(time.perf_counter() - started)
                assert value == i + 1
            samples.sort()
            rows.append(row("round trip", "dask", n, percentile(samples, 0.5) * 1e6, "us p50"))
            rows.append(row("round trip", "dask", n, percentile(samples, 0.99) * 1e6, "us p99"))

            n = sizes["chain"]
            started = time.perf_counter()
            future = client.submit(inc, 0, pure=False)
            for _ in range(n - 1):
                future = client.submit(inc, future, pure=False)
            value = await future
            took = time.perf_counter() - started
            assert value == n
            rows.append(row("chain", "dask", n, took * 1e3, "ms"))

            leaves = sizes["tree_leaves"]
            started = time.perf_counter()
            level = [client.submit(inc, i, pure=False) for i in range(leaves)]
            tasks = len(level)
            while len(level) > 1:
                level = [client.submit(add, level[i], level[i + 1], pure=False)
                         for i in range(0, len(level), 2)]
                tasks += len(level)
            value = await level[0]
            took = time.perf_counter() - started
            assert value == leaves * (leaves + 1) // 2
            rows.append(row("tree", "dask", tasks, took * 1e3, "ms"))

            n = sizes["as_completed"]
            started = time.perf_counter()
            total = 0
            async for future in as_completed(client.map(inc, range(n), pure=False)):
                total += await future
            took = time.perf_counter() - started
            assert total == n * (n + 1) // 2
            rows.append(row("as_completed", "dask", n, took * 1e3, "ms"))

    return rows


# --------------------------------------------------------------------------------------------
# Celery on Redis

CELERY_APP = '''
import os
from celery import Celery

port = os.environ["BENCH_REDIS_PORT"]
app = Celery("bench_tasks", broker=f"redis://127.0.0.1:{port}/0",
             backend=f"redis://127.0.0.1:{port}/1")
app.conf.worker_prefetch_multiplier = int(os.environ.get("BENCH_CELERY_PREFETCH", "4"))
app.conf.result_expires = 600

@app.task
def inc(x):
    return x + 1
'''


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def celery_suite(sizes, prefetch):
    """Celery 5 with its Redis broker and result backend: a prefork worker of 2 processes
    (Celery's default concurrency on 2 cores) and the given prefetch multiplier (Celery's
    default is 4)."""
    if shutil.which("redis-server") is None:
        print("celery: redis-server is missing (apt-get install redis-server); skipped",
              file=sys.stderr)
        return []
    rows = []
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="taskweave-celery-")
    with open(os.path.join(workdir, "bench_tasks.py"), "w") as module:
        module.write(CELERY_APP)
    env = dict(os.environ, BENCH_REDIS_PORT=str(port), PYTHONPATH=workdir,
               BENCH_CELERY_PREFETCH=str(prefetch))
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        wait_for_port(port, 10)
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "bench_tasks", "worker",
                                   "--concurrency", "2", "--pool", "prefork",
                                   "--loglevel", "WARNING", "--without-gossip",
                                   "--without-mingle", "--without-heartbeat"],
                                  env=env, cwd=workdir)
        sys.path.insert(0, workdir)
        os.environ["BENCH_REDIS_PORT"] = str(port)
        os.environ["BENCH_CELERY_PREFETCH"] = str(prefetch)
        import bench_tasks

        # Wait until the worker answers (bounded), then warm up.
        bench_tasks.inc.delay(0).get(timeout=60)
        for i in range(50):
            bench_tasks.inc.delay(i).get(timeout=10)

        for n in sizes["celery_batch"]:
            started = time.perf_counter()
            results = [bench_tasks.inc.delay(i) for i in range(n)]
            values = [result.get(timeout=600) for result in results]
            took = time.perf_counter() - started
            assert values == [i + 1 for i in range(n)]
            rows.append(row("submit+gather", "celery-redis", n, n / took, "tasks/s"))
            rows.append(row("submit+gather", "celery-redis", n, took * 1e6 / n, "us/task"))
            print(f"celery (prefetch multiplier {prefetch}) submit+gather n={n}: "
                  f"{n / took:.0f} tasks/s", file=sys.stderr)

        n = sizes["round_trips"]
        samples = []
        for i in range(n):
            started = time.perf_counter()
            value = bench_tasks.inc.delay(i).get(timeout=10)
            samples.append(time.perf_counter() - started)
            assert value == i + 1
        samples.sort()
        rows.append(row("round trip", "celery-redis", n, percentile(samples, 0.5) * 1e6,
                        "us p50"))
        rows.append(row("round trip", "celery-redis", n, percentile(samples, 0.99) * 1e6,
                        "us p99"))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        redis.terminate()
        redis.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--full", action="store_true", help="include N = 100,000 for Dask")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--no-celery", action="store_true", help="skip Celery")
    parser.add_argument("--only-celery", action="store_true", help="skip Dask")
    parser.add_argument("--celery-n", type=int, help="one Celery batch of this size")
    parser.add_argument("--celery-prefetch", type=int, default=64,
                        help="Celery's worker_prefetch_multiplier (Celery's default: 4)")
    arguments = parser.parse_args()

    if arguments.quick:
        sizes = {"batch": [1000], "celery_batch": [1000], "round_trips": 300, "chain": 500,
                 "tree_leaves": 1024, "as_completed": 2000, "memory": 2000}
    else:
        sizes = {"batch": [1000, 10000] + ([100000] if arguments.full else []),
                 "celery_batch": [1000, 10000], "round_trips": 1000, "chain": 2000,
                 "tree_leaves": 4096, "as_completed": 10000, "memory": 10000}

    if arguments.celery_n is not None:
        sizes["celery_batch"] = [arguments.celery_n]
    rows = [] if arguments.only_celery else asyncio.run(dask_suite(sizes))
    if not arguments.no_celery:
        rows += celery_suite(sizes, arguments.celery_prefetch)

    for r in rows:
        print(f"{r['workload']:<24} {r['executor']:<13} {r['n']:>8} {r['value']:>14.1f} "
              f"{r['unit']}")
    if arguments.json:
        with open(arguments.json, "w") as out:
            json.dump(rows, out, indent=1)
        print(f"wrote {len(rows)} rows to {arguments.json}")


if __name__ == "__main__":
    main()
