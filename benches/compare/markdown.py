"""Turns one run of benches/compare/run.sh into the Markdown tables of BENCHMARKS.md.

    python benches/compare/markdown.py target/compare

Reads taskweave.json, taskweave-redis.json and dask.json from the directory and prints three
tables: taskweave in-process (value, and in parentheses the ratio to the raw runtime doing
the same work), taskweave on Redis, and the side-by-side with Dask and Celery.
"""

import json,sys
d=sys.argv[1]
tw=json.load(open(f'{d}/taskweave.json'))
try:
    rd=json.load(open(f'{d}/taskweave-redis.json'))
except FileNotFoundError:
    rd=[]
dk=json.load(open(f'{d}/dask.json'))
ex=['embedded','tokio-mt','tokio-ct','async-std','smol']
def fmt(v):
    if v>=1000: return f"{v:,.0f}"
    if v>=10: return f"{v:.1f}"
    return f"{v:.2f}"
# pivot: rows = (workload,n,unit), cols = executors, cell "value (ratio)"
keys=[]
for r in tw:
    k=(r['workload'],r['n'],r['unit'])
    if k not in keys: keys.append(k)
print("| workload | n | unit | " + " | ".join(ex) + " |")
print("|---|---:|---|" + "---:|"*len(ex))
for k in keys:
    cells=[]
    for e in ex:
        m=[r for r in tw if (r['workload'],r['n'],r['unit'])==k and r['executor']==e]
        if not m: cells.append("–"); continue
        r=m[0]
        c=fmt(r['value'])
        if r['baseline_ratio'] is not None: c+=f" ({r['baseline_ratio']:.1f}×)"
        cells.append(c)
    print(f"| {k[0]} | {k[1]:,} | {k[2]} | " + " | ".join(cells) + " |")
print()
print("| workload | n | unit | redis-embedded |")
print("|---|---:|---|---:|")
for r in rd:
    print(f"| {r['workload']} | {r['n']:,} | {r['unit']} | {fmt(r['value'])} |")
print()
print("| workload | n | unit | system | theirs | taskweave best (executor) | taskweave worst | taskweave better by |")
print("|---|---:|---|---|---:|---:|---:|---:|")
HB={"tasks/s"}
for row in dk:
    pool=[r for r in (rd if row['executor'].startswith('celery') else tw)]
    m=[r for r in pool if r['workload']==row['workload'] and r['unit']==row['unit'] and (r['n']==row['n'] or row['workload']=='memory per pending task')]
    if not m: continue
    hi=row['unit'] in HB
    o=sorted(m,key=lambda r:r['value'],reverse=hi)
    b,w=o[0],o[-1]
    better=b['value']/row['value'] if hi else row['value']/b['value']
    print(f"| {row['workload']} | {row['n']:,} | {row['unit']} | {row['executor']} | {fmt(row['value'])} | {fmt(b['value'])} ({b['executor']}) | {fmt(w['value'])} | {better:,.0f}× |")
