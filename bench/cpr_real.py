#!/usr/bin/env python3
"""CPR against its base ranker on the real logs (issue 13, item 5): the
MIND subset and the EB-NeRD week of ../shared/data, replayed in time order
through `cfrec eval --protocol stream` (each impression scored by the
snapshot of its moment, then learned), with the stream features on and
off. Paired differences (same log, same seed) of AUC and NDCG@10 over all
impressions, mean over seeds with a 95% Student t interval.

Runs are cached in docs/results/cpr_real_runs.jsonl (keyed by command
line and config); --resume reuses them. Each run is single-threaded, so
--jobs (default: the number of cores) run at a time. Writes
docs/results/CPR_REAL.md. The logs are read in place; without them the
script says so and stops.
"""

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import time

from bench_common import load_cache

DATASETS = {
    "mind": "../shared/data/mind-small-subset/behaviors.tsv",
    "ebnerd": "../shared/data/ebnerd-demo-week1/behaviors.tsv",
}
# Two-sided 95% Student t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447,
       7: 2.365, 8: 2.306, 9: 2.262}
METRICS = ("auc", "ndcg@10")
ARM_LABEL = {"learned": "CPR (logistic simulator, the default)",
             "learned@shared": "CPR (the paper's SEMs)"}


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def argv_of(dataset, ranker, arm, features, seed, config):
    intervention, _, variant = arm.partition("@")
    argv = ["eval", "--data", DATASETS[dataset], "--protocol", "stream",
            "--ranker", ranker, "--intervention", intervention,
            "--stream-features", features, "--seed", str(seed)]
    if variant:
        argv += ["--config", config]
    return argv


def run(cfrec, argv, key):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.time()
    proc = subprocess.run([cfrec] + argv, capture_output=True, text=True,
                          cwd=repo_root(), env=env)
    if proc.returncode != 0:
        sys.stderr.write("%s failed: %s\n" % (" ".join(argv),
                                              proc.stderr.strip()[-300:]))
        return None
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    cf = r.get("counterfactual") or {}
    return {"run_key": key, "metrics": r["metrics"],
            "wall_seconds": time.time() - start,
            "simulator_refits": cf.get("simulator_refits"),
            "samples_counterfactual": cf.get("samples_counterfactual")}


def main():
    root = repo_root()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cfrec", default=os.path.join(root, "build", "release",
                                                   "app", "cfrec"))
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--rankers", nargs="+", default=["bpr", "gmf"])
    p.add_argument("--arms", nargs="+", default=["learned"],
                   help="CPR arms, each paired with intervention none: "
                   "learned, or learned@shared (the paper's SEMs)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="runs at a time (each run is single-threaded)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the runs cached in cpr_real_runs.jsonl")
    p.add_argument("--out", default=os.path.join(root, "docs", "results"))
    args = p.parse_args()
    for d in args.datasets:
        if not os.path.exists(os.path.join(root, DATASETS[d])):
            sys.exit("%s is not there (%s): the real logs are read in place"
                     % (d, DATASETS[d]))
    config = os.path.join(root, "build", "cpr_real_shared.json")
    os.makedirs(os.path.dirname(config), exist_ok=True)
    with open(config, "w") as f:
        json.dump({"models": {r: {"cf_simulator": "shared"}
                              for r in args.rankers}}, f)
    config_rel = os.path.relpath(config, root)
    cache_path = os.path.join(args.out, "cpr_real_runs.jsonl")
    cache = load_cache(cache_path) if args.resume else {}
    grid, todo = {}, []
    for seed in args.seeds:
        for d in args.datasets:
            for r in args.rankers:
                for features in ("on", "off"):
                    for arm in ["none"] + args.arms:
                        argv = argv_of(d, r, arm, features, seed, config_rel)
                        key = " ".join(argv[:-2] if "--config" in argv
                                       else argv) + (
                            " cf_simulator=shared" if "@shared" in arm
                            else "")
                        grid[(d, r, features, arm, seed)] = key
                        if key not in cache:
                            todo.append((key, argv))
    started = time.time()
    with open(cache_path, "a") as log, \
            concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run, args.cfrec, argv, key): key
                   for key, argv in todo}
        for n, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            r = fut.result()
            if r is not None:
                cache[r["run_key"]] = r
                log.write(json.dumps(r, sort_keys=True) + "\n")
                log.flush()
            sys.stderr.write("[%d/%d] %.1f min %s\n" % (
                n, len(todo), (time.time() - started) / 60, futures[fut]))
    lines = [
        "# CPR on the real logs (generated)", "",
        "Generated by `python3 bench/cpr_real.py --resume%s` from" % (
            " --arms " + " ".join(args.arms) if args.arms != ["learned"]
            else ""),
        "`docs/results/cpr_real_runs.jsonl`; the text that reads it is",
        "CPR_STUDY.md, section 13. `cfrec eval --protocol stream` with",
        "`cfrec eval`'s defaults: each impression scored by the snapshot of",
        "its moment, then learned. Each cell: the base ranker's mean over",
        "seeds, and the CPR arm's paired difference (same log and seed) with",
        "the 95% interval; bold: the interval excludes zero.", ""]
    for metric in METRICS:
        lines += ["## %s over all impressions" % metric.upper(), "",
                  "| log | ranker | stream features | base | " +
                  " | ".join(ARM_LABEL.get(a, a) for a in args.arms) + " |",
                  "|---|---|---|---|" + "---|" * len(args.arms)]
        for d in args.datasets:
            for r in args.rankers:
                for features in ("on", "off"):
                    base = {s: cache.get(grid[(d, r, features, "none", s)])
                            for s in args.seeds}
                    base = {s: x for s, x in base.items() if x}
                    if not base:
                        continue
                    row = [d, r, features, "%.4f (n=%d)" % (statistics.fmean(
                        x["metrics"][metric] for x in base.values()),
                        len(base))]
                    for arm in args.arms:
                        diffs = []
                        for s in base:
                            x = cache.get(grid[(d, r, features, arm, s)])
                            if x:
                                diffs.append(x["metrics"][metric] -
                                             base[s]["metrics"][metric])
                        if len(diffs) < 2:
                            row.append("-")
                            continue
                        m = statistics.fmean(diffs)
                        h = T95[len(diffs) - 1] * statistics.stdev(
                            diffs) / math.sqrt(len(diffs))
                        text = "%+.4f [%+.4f, %+.4f]" % (m, m - h, m + h)
                        row.append("**%s**" % text if m - h > 0 or m + h < 0
                                   else text)
                    lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    with open(os.path.join(args.out, "CPR_REAL.md"), "w") as f:
        f.write("\n".join(lines))
    sys.stderr.write("ran %d in %.1f min\n" % (
        len(todo), (time.time() - started) / 60))


if __name__ == "__main__":
    main()
