#!/usr/bin/env python3
"""Critical path of one graph node in a simulator trace, and what it is made of.

Usage:
  BENCH_TRACE=t.json build-rel/bench_model_step CONFIG trn2 2 1024 1
  bench/trace_critical_path.py t.json h.0.attn.bwd.grad [--detail] [--core N] [--show LO HI]

Walks back from the node's last instruction to its first: an instruction that waited on a
semaphore continues at the instruction that satisfied the wait (the last one to finish on the
signalling engine or DMA queue by then); a DMA transfer continues at its trigger on the issuing
engine, or at the transfer ahead of it on its queue when that one finished later (QWAIT: the
FIFO queue held it); otherwise the previous instruction on the same engine (GAP: the engine was
idle without waiting).  Prints the time on the path per (engine, instruction, node), largest
first; --detail keeps the operands (addresses dropped), --show prints the path between two
timestamps (us) in time order.

Semaphores follow the compiler's convention (src/compiler/kir_sync.c): s0..s4 are the progress
counts of the Sync, Tensor, Vector, Scalar and GpSimd engines, s5 + q that of DMA queue q.  The
trace format is the simulator's Perfetto JSON (docs/performance.md: "How this was found")."""
import argparse
import bisect
import collections
import json
import re
import sys

SEM_SOURCE = {0: 'sync', 1: 'tensor', 2: 'vector', 3: 'scalar', 4: 'gpsimd'}
SEM_SOURCE.update({5 + q: 'dma q%d' % q for q in range(16)})


def load(path, core):
    trace = json.load(open(path))
    thread, process = {}, {}
    for e in trace['traceEvents']:
        if e['ph'] == 'M' and e['name'] == 'thread_name':
            thread[(e['pid'], e['tid'])] = e['args']['name']
        if e['ph'] == 'M' and e['name'] == 'process_name':
            process[e['pid']] = e['args']['name']
    pids = sorted(process) or sorted({p for p, _ in thread})
    pid = pids[core] if core < len(pids) else pids[0]
    per = collections.defaultdict(list)
    for e in trace['traceEvents']:
        if e['ph'] == 'X' and e['pid'] == pid:
            per[thread[(e['pid'], e['tid'])]].append(e)
    for v in per.values():
        v.sort(key=lambda e: (e['ts'], e['ts'] + e['dur']))
    return per


def walk(per, tag, detail):
    ends = {k: [e['ts'] + e['dur'] for e in v] for k, v in per.items()}
    triggers = collections.defaultdict(list)
    for k, v in per.items():
        if not k.startswith('dma'):
            for i, e in enumerate(v):
                if e['name'].startswith('dma_'):
                    triggers[e['name']].append((e['ts'], k, i))
    mine = [(e['ts'] + e['dur'], k, i) for k, v in per.items() for i, e in enumerate(v)
            if e.get('args', {}).get('tag') == tag and e['cat'] != 'wait']
    if not mine:
        sys.exit('no instruction tagged %r in this trace' % tag)
    t_end, eng, idx = max(mine)
    t_start = min(per[k][i]['ts'] for _, k, i in mine)
    total, count, path = collections.Counter(), collections.Counter(), []
    while True:
        e = per[eng][idx]
        if e['ts'] < t_start:
            break
        if e['cat'] != 'wait':
            name = re.sub(r'@[0-9]+', '', e['name'])
            key = (eng.split()[0] if eng.startswith('dma') else eng, name[:80] if detail else name.split()[0],
                   e.get('args', {}).get('tag', '?'))
            total[key] += e['dur']
            count[key] += 1
            path.append((e['ts'], e['dur'], eng, name[:100], key[2]))
        else:
            m = re.match(r'wait s(\d+)', e['name'])
            src = SEM_SOURCE.get(int(m.group(1))) if m else None
            if src in ends:
                j = bisect.bisect_right(ends[src], e['ts'] + e['dur'] + 1e-6) - 1
                if j >= 0:
                    eng, idx = src, j
                    continue
        if eng.startswith('dma'):
            cands = [c for c in triggers.get(e['name'], []) if c[0] <= e['ts'] + 1e-6]
            ahead = per[eng][idx - 1] if idx > 0 else None
            if cands:
                _, k2, i2 = cands[-1]
                issued = per[k2][i2]['ts'] + per[k2][i2]['dur']
                if ahead is None or ahead['ts'] + ahead['dur'] < issued - 1e-6:
                    total[('dma', 'QWAIT', '')] += max(0.0, e['ts'] - issued)
                    eng, idx = k2, i2
                    continue
        if idx == 0:
            break
        before = per[eng][idx - 1]
        gap = e['ts'] - (before['ts'] + before['dur'])
        if gap > 0.01:
            total[(eng, 'GAP', '')] += gap
        idx -= 1
    return t_end - t_start, total, count, path[::-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('trace')
    ap.add_argument('node', help='the node tag, e.g. h.0.attn.bwd.grad')
    ap.add_argument('--detail', action='store_true', help='keep operands (addresses dropped)')
    ap.add_argument('--core', type=int, default=0)
    ap.add_argument('--top', type=int, default=25)
    ap.add_argument('--show', nargs=2, type=float, metavar=('LO', 'HI'), help='print the path between two times (us)')
    a = ap.parse_args()
    span, total, count, path = walk(load(a.trace, a.core), a.node, a.detail)
    print('%s: span %.1f us, critical path %.1f us' % (a.node, span, sum(total.values())))
    for k, v in total.most_common(a.top):
        print('%9.1f us %6d  %-8s %s  [%s]' % (v, count[k], k[0], k[1], k[2]))
    if a.show:
        for ts, dur, eng, name, tag in path:
            if a.show[0] <= ts <= a.show[1]:
                print('%10.2f %6.2f %-8s %s  [%s]' % (ts, dur, eng, name, tag))


if __name__ == '__main__':
    main()
