#!/usr/bin/env python3
"""The layers of src/, and a check that calls go one way.

Every file of src/ belongs to one group, every group to one layer; a file
may include the headers of its own group and of groups in its layer or
below (a larger number), never above, and the groups must not include
each other in a circle.  Run by test/run_tests.sh; prints every upward
include and circle and exits 1 when there is one.  A file of src/ that no
group lists is an error too: a new file gets its place here.
"""
import os
import re
import sys

# layer: group: files.  1 is the top.
LAYERS = """
1 entry:      stockx_enrich.c
1 sql:        sql_runs.c sql_budget.c sql_views.c sql_oauth.c
2 worker:     worker.c worker.h worker_int.h worker_commit.c worker_run.c worker_token.c worker_tx.c worker_sync.c
3 enrich:     enrich.c enrich.h
3 store:      store.c store.h store_int.h store_claim.c store_write.c store_runs.c store_alerts.c store_selling.c
3 events:     events.c events.h
3 quota:      quota.c quota.h
3 extension:  extension.c extension.h
4 http:       http.c http.h
4 token:      token_cache.c token_cache.h
4 slots:      slots.c slots.h
4 limiter_sh: shared_limiter.c shared_limiter.h
4 shmem:      shmem.c shmem.h
5 settings:   settings.c settings.h
5 credentials: credentials.c credentials.h
5 support:    support.c support.h
5 config:     stockx_config.h
6 limiter:    limiter.c limiter.h
6 json:       stockx_json.c stockx_json.h
6 fold:       unicode_fold.c unicode_fold.h unicode_fold_table.h
6 checks:     checks.c checks.h
7 types:      stockx_types.h
7 clock:      clock.h
7 compat:     compat.h
"""


def main():
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    group_of, layer_of = {}, {}
    for line in LAYERS.strip().splitlines():
        m = re.match(r"(\d+) (\w+):\s+(.*)", line)
        layer, group, files = int(m.group(1)), m.group(2), m.group(3).split()
        layer_of[group] = layer
        for f in files:
            group_of[f] = group
    problems = []
    edges = {}
    for f in sorted(os.listdir(top)):
        if not f.endswith((".c", ".h")):
            continue
        if f not in group_of:
            problems.append(f"{f}: in no group of test/check_layers.py")
            continue
        g = group_of[f]
        with open(os.path.join(top, f), encoding="utf-8") as fh:
            for n, text in enumerate(fh, 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', text)
                if not m or m.group(1) not in group_of:
                    continue
                h = group_of[m.group(1)]
                if h == g:
                    continue
                edges.setdefault(g, set()).add(h)
                if layer_of[h] < layer_of[g]:
                    problems.append(f"{f}:{n}: includes {m.group(1)} of layer {layer_of[h]} "
                                    f"({h}) from layer {layer_of[g]} ({g}): upward")
    # circles among groups
    state = {}

    def visit(g, path):
        state[g] = 1
        for h in sorted(edges.get(g, ())):
            if state.get(h) == 1:
                problems.append("circle: " + " -> ".join(path[path.index(h):] + [h]))
            elif not state.get(h):
                visit(h, path + [h])
        state[g] = 2

    for g in sorted(edges):
        if not state.get(g):
            visit(g, [g])
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"layers: {len(group_of)} files in {len(layer_of)} groups, "
          f"{sum(len(v) for v in edges.values())} dependencies, all downward, no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
