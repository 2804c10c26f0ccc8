"""The calls of benches/coordination.rs on Dask distributed: a lock's acquire+release, a
semaphore's, a queue's put+get, a variable's set+get, an event's set+wait, and an actor's
method call, each timed one at a time from an asynchronous client, printed as the same rows
(workload, backend, n, value, unit) so that the figures sit beside taskweave's.

Usage (run.sh does this in a venv with the packages installed):

    python benches/compare/dask_coordination.py [--quick] [--json PATH]

Dask runs with an asynchronous Client on LocalCluster(processes=False, n_workers=1,
threads_per_worker=2): everything in one process, so the figures are Dask's in-process
best; its coordination calls still go through the scheduler. Loopback only.
"""

import argparse
import asyncio
import json
import statistics
import time


class Counter:
    """A Dask actor: one integer, incremented per call."""

    def __init__(self):
        self.n = 0

    def increment(self):
        self.n += 1
        return self.n


def row(workload, n, samples):
    samples = sorted(samples)
    return {
        "workload": workload,
        "backend": "dask (LocalCluster, processes=False)",
        "n": n,
        "p50_us": samples[len(samples) // 2] * 1e6,
        "mean_us": statistics.fmean(samples) * 1e6,
    }


async def timed(n, call):
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def main(n):
    from distributed import Client, Event, Lock, LocalCluster, Queue, Semaphore, Variable

    async with LocalCluster(
        processes=False, n_workers=1, threads_per_worker=2, asynchronous=True,
        dashboard_address=None,
    ) as cluster:
        async with Client(cluster, asynchronous=True) as client:
            rows = []

            lock = Lock("bench-lock")

            async def lock_round():
                await lock.acquire()
                await lock.release()

            rows.append(row("lock acquire+release", n, await timed(n, lock_round)))

            semaphore = Semaphore(max_leases=4, name="bench-semaphore")

            async def semaphore_round():
                await semaphore.acquire()
                await semaphore.release()

            rows.append(row("semaphore acquire+release", n, await timed(n, semaphore_round)))

            queue = await Queue("bench-queue")

            async def queue_round():
                await queue.put(1)
                await queue.get()

            rows.append(row("queue put+get", n, await timed(n, queue_round)))

            variable = Variable("bench-variable")

            async def variable_round():
                await variable.set(1)
                await variable.get()

            rows.append(row("variable set+get", n, await timed(n, variable_round)))

            event = Event("bench-event")

            async def event_round():
                await event.set()
                await event.wait()
                await event.clear()

            rows.append(row("event set+wait+clear", n, await timed(n, event_round)))

            actor = await client.submit(Counter, actor=True)

            async def actor_round():
                await actor.increment()

            rows.append(row("actor call round trip", n, await timed(n, actor_round)))
            return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    rows = asyncio.run(main(n))
    print(f"{'workload':<28} {'n':>6} {'p50 µs':>10} {'mean µs':>10}")
    for r in rows:
        print(f"{r['workload']:<28} {r['n']:>6} {r['p50_us']:>10.1f} {r['mean_us']:>10.1f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)
