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
             "learned@shared": "CPR (the paper's SEMs)",
             "random@logm1": "CPR-r, margin >= 1",
             "learned@logpool20m1": "CPR, pool 20, margin >= 1"}
# Named changes of the ranker's settings (CPR_STUDY.md): the paper's SEMs
# as the simulator; only pairs whose click-model logit gap is at least 1;
# the learned policy choosing from a random pool of 20 items.
VARIANTS = {
    "shared": {"cf_simulator": "shared"},
    "logm1": {"cf_min_margin": 1.0},
    "logpool20m1": {"cf_candidate_pool": 20, "cf_min_margin": 1.0},
}


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def argv_of(dataset, ranker, arm, features, seed, configs):
    intervention, _, variant = arm.partition("@")
    argv = ["eval", "--data", DATASETS[dataset], "--protocol", "stream",
            "--ranker", ranker, "--intervention", intervention,
            "--stream-features", features, "--seed", str(seed)]
    if variant:
        argv += ["--config", configs[variant]]
    return argv


def key_of(argv, arm):
    """The cache key: the command line without the config's path, and the
    variant's settings (the paper's SEMs keep the key they were run with)."""
    variant = arm.partition("@")[2]
    key = " ".join(argv[:-2] if "--config" in argv else argv)
    if variant == "shared":
        return key + " cf_simulator=shared"
    if variant:
        return key + " " + " ".join(
            "%s=%s" % kv for kv in sorted(VARIANTS[variant].items()))
    return key


def run(cfrec, argv, key):
    # One BLAS thread, as in cpr_study.py: OpenBLAS reads OPENBLAS_NUM_THREADS
    # before OMP_NUM_THREADS, and NeuMF's sums depend on the thread count.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
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
                   "learned or random, optionally @variant (VARIANTS: "
                   "shared, the paper's SEMs; logm1, the margin filter; "
                   "logpool20m1, the policy over a pool of 20 with it)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--features", nargs="+", default=["off", "on"],
                   choices=["off", "on"],
                   help="stream features of the runs (the tables show "
                   "whatever the cache holds for both)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="runs at a time (each run is single-threaded)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the runs cached in cpr_real_runs.jsonl")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: CPR_REAL.md from the cache (cells "
                   "without runs show '-')")
    p.add_argument("--out", default=os.path.join(root, "docs", "results"))
    args = p.parse_args()
    for d in args.datasets:
        if not os.path.exists(os.path.join(root, DATASETS[d])):
            sys.exit("%s is not there (%s): the real logs are read in place"
                     % (d, DATASETS[d]))
    for arm in args.arms:
        variant = arm.partition("@")[2]
        if variant and variant not in VARIANTS:
            p.error("unknown variant %s (known: %s)" % (
                variant, ", ".join(sorted(VARIANTS))))
    configs = {}
    for variant, settings in VARIANTS.items():
        config = os.path.join(root, "build", "cpr_real_%s.json" % variant)
        os.makedirs(os.path.dirname(config), exist_ok=True)
        with open(config, "w") as f:
            json.dump({"models": {r: settings for r in args.rankers}}, f)
        configs[variant] = os.path.relpath(config, root)
    cache_path = os.path.join(args.out, "cpr_real_runs.jsonl")
    cache = load_cache(cache_path) if (args.resume or
                                       args.report_only) else {}
    grid, todo = {}, []
    for seed in args.seeds:
        for d in args.datasets:
            for r in args.rankers:
                for features in ("off", "on"):
                    for arm in ["none"] + args.arms:
                        argv = argv_of(d, r, arm, features, seed, configs)
                        key = key_of(argv, arm)
                        grid[(d, r, features, arm, seed)] = key
                        if (key not in cache and features in args.features
                                and not args.report_only):
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
        "CPR_STUDY.md, sections 13 and 16. `cfrec eval --protocol stream`",
        "with `cfrec eval`'s defaults: each impression scored by the",
        "snapshot of its moment, then learned. Each cell: the base ranker's",
        "mean over seeds, and the CPR arm's paired difference (same log and",
        "seed) with the 95% interval (n: seeds, when fewer than the base's);",
        "bold: the interval excludes zero.", ""]
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
                        if len(diffs) != len(base):
                            text += " (n=%d)" % len(diffs)
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
