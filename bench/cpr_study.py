#!/usr/bin/env python3
"""The CPR study: does CPR help, and where? A sparsity sweep on the CPR
generator (non-linear response) with base, CPR-r, CPR and CPR-oracle.

For every setting (users x lists per user x d) and seed, `cfrec synth` draws
a data set and `cfrec eval` (leave-one-out, ranked against all items) trains
the ranker once per arm on it, with the same seed. The table gives each
CPR arm's paired difference to its base (same data, same seed) with a 95%
confidence interval (Student t over seeds), and a figure plots the lift
against the data size.

Budgets are equal in the way the harness makes them equal: every arm gets
the same epoch limit and the same validation-based selection (patience), and
its test figures come from the epoch validation liked best; CPR arms take
extra ranker steps on their counterfactual samples on top.

Arms are `intervention` or `intervention@variant`, a variant being a named
change of the ranker's hyper-parameters (VARIANTS below), e.g.
`learned@round` is CPR with the counterfactual samples trained one step per
generation round (the behaviour before the fix).

Runs are cached in docs/results/cpr_runs.jsonl (keyed by command line and
config); --resume reuses them, so an interrupted study continues where it
stopped, and --report-only rewrites the tables and the figure from the cache.
Each run is single-threaded (the ranker's train_threads default 1, and the
runs get OMP_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1), so --jobs runs
(default: the core count) go at a time, each job through one `cfrec eval --batch` process that answers its
runs one after the other (the same results as a process per run, which
--no-batch restores, without paying LibTorch's start-up per run). --estimate prints how long the missing runs would take, from the
run times recorded in the cache. Parts (or arms) marked as appendix are
explorations the report's conclusions no longer rest on: their tables come
from the cache, and only --with-appendix runs them. Standard library, plus
matplotlib for the figure (Debian: python3-matplotlib).
"""

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time

from bench_common import load_cache, pyplot

ARM_LABEL = {"none": "base", "random": "CPR-r", "learned": "CPR",
             "oracle": "CPR-oracle"}
ARM_COLOR = {"random": "#8c8c3c", "learned": "#d1495b", "oracle": "#2e6f9e"}
VARIANTS = {
    # The behaviour before the fix: one ranker step per generation round.
    "round": {"cf_batch": "round"},
    # p_R and p_S learning rate of the committed report config.
    "semlr01": {"sem_lr": 0.01},
    # Counterfactual samples only once the SEMs had more passes.
    "start10": {"cf_start_epoch": 10},
    # Share of counterfactual samples, and noise control k.
    "mix10": {"cf_mix_ratio": 0.1},
    "mix100": {"cf_mix_ratio": 1.0},
    "k2": {"cf_noise_k": 2},
    # Only lists where p_S is confident of a click.
    "top50": {"cf_min_top_prob": 0.5},
    # The oracle's pairs with the true clicks only (clicked vs not).
    "click": {"cf_oracle": "click"},
    # Whose click model simulates (cf_simulator): the SEMs trained with the
    # ranker (CPR's Algorithm 1), the SEMs of a learner of their own trained
    # to convergence on held-out lists and refreshed per epoch, or a
    # logistic click model with user and item intercepts (cf_click_model.h).
    "shared": {"cf_simulator": "shared"},
    "converged": {"cf_simulator": "converged"},
    "logistic": {"cf_simulator": "logistic"},
    # Schedules and filters, with the SEMs and with the logistic model.
    "decay": {"cf_mix_decay": 0.9},
    "few": {"cf_max_user_clicks": 5},
    "logdecay": {"cf_simulator": "logistic", "cf_mix_decay": 0.9},
    "logfew": {"cf_simulator": "logistic", "cf_max_user_clicks": 5},
    "logtop50": {"cf_simulator": "logistic", "cf_min_top_prob": 0.5},
    # Only pairs of a simulated click and a simulated non-click (the
    # logistic model's own probabilities; cf_oracle "click"'s counterpart).
    "logclick": {"cf_simulator": "logistic", "cf_sim_clicks": True},
    "logmix50": {"cf_simulator": "logistic", "cf_mix_ratio": 0.5},
    "logstart10": {"cf_simulator": "logistic", "cf_start_epoch": 10},
    # Loss weights of the counterfactual samples: by the logistic model's
    # confidence in the pair's order (mean weight 1), and a constant 2.
    "logconf": {"cf_simulator": "logistic", "cf_weight_by": "confidence"},
    "logw2": {"cf_simulator": "logistic", "cf_weight": 2},
    # Counterfactual samples from the first epoch (NeuMF's validation picks
    # an early epoch).
    "start1": {"cf_start_epoch": 1},
    "logstart1": {"cf_simulator": "logistic", "cf_start_epoch": 1},
    # The sparse end's levers with the logistic model: larger loss weights,
    # larger shares (mix 1.0: as many counterfactual samples as observed),
    # noise control k = 2 (four pairs per list) and lists of 10 (the pair
    # of the most and the least likely click of ten).
    "logw4": {"cf_simulator": "logistic", "cf_weight": 4},
    "logmix100": {"cf_simulator": "logistic", "cf_mix_ratio": 1.0},
    "logk2": {"cf_simulator": "logistic", "cf_noise_k": 2},
    "logK10": {"cf_simulator": "logistic", "cf_list_size": 10},
    "logw2start1": {"cf_simulator": "logistic", "cf_weight": 2,
                    "cf_start_epoch": 1},
    # The 150 x 5 cell: the click model's settings chosen by 5-fold
    # cross-validation over all lists instead of the single held-out split
    # (a few dozen lists with a click there), with the default L2 grid and
    # with a wider one (more shrinkage); only pairs whose click-model logit
    # gap is at least 1 or 2 (the wrong pairs are the close ones).
    "logcv": {"cf_simulator": "logistic", "cf_sim_folds": 5},
    "logcvwide": {"cf_simulator": "logistic", "cf_sim_folds": 5,
                  "cf_sim_l2": [1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1]},
    "logm1": {"cf_simulator": "logistic", "cf_min_margin": 1.0},
    "logm2": {"cf_simulator": "logistic", "cf_min_margin": 2.0},
    "logm2mix100": {"cf_simulator": "logistic", "cf_min_margin": 2.0,
                    "cf_mix_ratio": 1.0},
    # The learned policy choosing its K items from a random pool of 10 or
    # 20 (of the catalog's 300 at 150 users) instead of the whole catalog,
    # with the margin filter: lists between the policy's and random ones.
    "logpool10m1": {"cf_simulator": "logistic", "cf_candidate_pool": 10,
                    "cf_min_margin": 1.0},
    "logpool20m1": {"cf_simulator": "logistic", "cf_candidate_pool": 20,
                    "cf_min_margin": 1.0},
    # The policy over a pool of 20 with the margin filter, and 1, 2 or 3
    # of each list's 5 slots drawn uniformly from the pool instead
    # (cf_explore_share 0.2, 0.4, 0.6: epsilon-greedy exploration).
    "logpool20m1e20": {"cf_simulator": "logistic", "cf_candidate_pool": 20,
                       "cf_min_margin": 1.0, "cf_explore_share": 0.2},
    "logpool20m1e40": {"cf_simulator": "logistic", "cf_candidate_pool": 20,
                       "cf_min_margin": 1.0, "cf_explore_share": 0.4},
    "logpool20m1e60": {"cf_simulator": "logistic", "cf_candidate_pool": 20,
                       "cf_min_margin": 1.0, "cf_explore_share": 0.6},
    # Random lists with the margin filter from the first epoch (NeuMF's
    # validation picks an early epoch, before cf_start_epoch 3).
    "logm1start1": {"cf_simulator": "logistic", "cf_min_margin": 1.0,
                    "cf_start_epoch": 1},
}
# Two-sided 95% Student t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447,
       7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179,
       13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 24: 2.064, 29: 2.045}
METRIC = "ndcg@10_all"
VALID_METRIC = "valid_ndcg@10_all"


def t95(df):
    if df in T95:
        return T95[df]
    below = [k for k in T95 if k <= df]
    return T95[max(below)] if below else float("nan")


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arm_label(arm):
    intervention, _, variant = arm.partition("@")
    label = ARM_LABEL[intervention]
    return label + (" (%s)" % variant if variant else "")


class Runner:
    """Looks runs up in the cache and collects the missing ones (plan), then
    runs them, `jobs` at a time (execute)."""

    def __init__(self, args, cache, log, times):
        self.args = args
        self.cache = cache
        self.log = log
        # Run key -> recorded seconds, for estimates. Read-only: predicted()
        # answers from the per-setting means built here once (the progress
        # lines ask for every queued run after each finished one).
        self.times = times
        by_setting = {}  # run key without its seed -> recorded seconds
        for k, t in times.items():
            by_setting.setdefault(without_seed(k), []).append(t)
        self.mean_by_setting = {
            k: statistics.fmean(ts) for k, ts in by_setting.items()}
        self.mean_time = statistics.fmean(times.values()) if times else 10.0
        self.started = time.time()
        self.ran = 0
        self.failed = 0
        self.skipped = 0
        self.pending = []
        self.pending_keys = set()
        self.lock = threading.Lock()
        self.data_locks = {}
        self.local = threading.local()  # each job thread's batch worker
        self.workers = []

    def over_budget(self):
        return (self.args.budget_minutes and
                time.time() - self.started > 60 * self.args.budget_minutes)

    def data(self, users, lists, dim, seed):
        d = os.path.join(self.args.work, "u%d_l%d_d%d_s%d" % (
            users, lists, dim, seed))
        with self.lock:
            lock = self.data_locks.setdefault(d, threading.Lock())
        with lock:  # two runs on one data set: one synth
            if not os.path.exists(os.path.join(d, "ground_truth.json")):
                subprocess.run(
                    [self.args.cfrec, "synth", "--out", d, "--seed",
                     str(seed), "--dim", str(dim), "--response", "nonlinear",
                     "--users", str(users), "--lists-per-user", str(lists)],
                    check=True, stdout=subprocess.DEVNULL)
        return d

    def config(self, ranker, arm):
        """The config of an arm and the config its cache key names: the
        study's base config with the arm's variant merged into
        models.<ranker>. CPR and CPR-r arms whose variant does not name
        cf_simulator run with "shared", the default of the binaries that
        made the cached runs (cfrec eval's default is "logistic" since), and
        are keyed as before. Returns (config dict or None, key dict)."""
        base = {}
        if self.args.config:
            with open(self.args.config) as f:
                base = json.load(f)
        intervention, _, variant = arm.partition("@")
        if variant:
            base.setdefault("models", {}).setdefault(ranker, {}).update(
                VARIANTS[variant])
        key = json.loads(json.dumps(base))
        if intervention in ("learned", "random") and "cf_simulator" not in (
                base.get("models", {}).get(ranker, {})):
            base.setdefault("models", {}).setdefault(ranker, {})[
                "cf_simulator"] = "shared"
        return (base or None), key

    def lookup(self, users, lists, dim, seed, ranker, arm, runnable=True):
        """The cached run, or None; a missing run that may run (`runnable`,
        not --report-only) is queued for execute()."""
        config, key_config = self.config(ranker, arm)
        # The key names the setting, not the scratch directory.
        # A part's tag (its binary's generation) keeps its runs, the base
        # ones included, apart from runs of older binaries.
        tag = getattr(self.args, "tag", "")
        key = " ".join(["study", "u%d" % users, "l%d" % lists, "d%d" % dim,
                        "s%d" % seed, ranker, arm] +
                       ([tag] if tag else [])) + " " + (
                           json.dumps(key_config, sort_keys=True)
                           if key_config else "")
        if key in self.cache:
            return self.cache[key]
        if self.args.report_only or not runnable:
            self.skipped += 1
            return None
        if key not in self.pending_keys:
            self.pending_keys.add(key)
            self.pending.append({
                "key": key, "users": users, "lists": lists, "dim": dim,
                "seed": seed, "ranker": ranker, "arm": arm, "tag": tag,
                "config": config})
        return None

    def predicted(self, spec):
        """Seconds a run is expected to take: its own recorded time, else
        the mean of the recorded runs of the same setting (other seeds),
        else the mean of all recorded runs (10 s without any). The means
        are computed once, in __init__ (a scan of the recorded times per
        run took a core of its own when none of the runs had a recorded
        time)."""
        key = spec["key"]
        if key in self.times:
            return self.times[key]
        return self.mean_by_setting.get(without_seed(key), self.mean_time)

    def estimate(self, jobs):
        """(serial seconds, wall seconds on `jobs` workers): the queued
        runs' predicted times, each started on the first free worker in
        launch order (as execute() does)."""
        workers = [0.0] * jobs
        serial = 0.0
        for spec in self.pending:
            t = self.predicted(spec)
            serial += t
            k = workers.index(min(workers))
            workers[k] += t
        return serial, max(workers) if workers else 0.0

    def run_one(self, spec):
        if self.over_budget():
            with self.lock:
                self.skipped += 1
            return None
        data_dir = self.data(spec["users"], spec["lists"], spec["dim"],
                             spec["seed"])
        intervention = spec["arm"].partition("@")[0]
        root = repo_root()
        request = {
            "data": os.path.relpath(os.path.join(data_dir, "behaviors.tsv"),
                                    root),
            "ranker": spec["ranker"], "intervention": intervention,
            "seed": spec["seed"]}
        if spec["config"]:
            text = json.dumps(spec["config"], sort_keys=True)
            path = os.path.join(self.args.work,
                                "config_%s.json" % hash_text(text))
            with self.lock:
                if not os.path.exists(path):
                    with open(path + ".tmp", "w") as f:
                        f.write(text)
                    os.replace(path + ".tmp", path)
            request["config"] = os.path.relpath(path, root)
        start = time.time()
        r = (self.evaluate_in_process(request) if self.args.no_batch
             else self.evaluate_in_worker(request))
        if r is None:
            with self.lock:
                self.failed += 1
            return None
        slim = {
            "run_key": spec["key"], "users": spec["users"],
            "lists": spec["lists"], "dim": spec["dim"], "seed": spec["seed"],
            "ranker": spec["ranker"], "arm": spec["arm"], "tag": spec["tag"],
            "metrics": r["metrics"], "best_epoch": r.get("best_epoch"),
            "dataset": r.get("dataset"), "wall_seconds": time.time() - start,
            "jobs": self.args.jobs, "counterfactual": r.get("counterfactual"),
        }
        cf = slim["counterfactual"]
        if cf:  # the per-epoch figures of the last setting only: keep size
            cf["by_epoch"] = [
                {k: e.get(k) for k in ("epoch", "mean_reward",
                                       "pair_agreement", "list_click_auc",
                                       "catalog_share", "ranker_agrees",
                                       "pairs_teaching",
                                       "gradient_true_share")}
                for e in cf.get("by_epoch", [])]
        with self.lock:
            self.cache[spec["key"]] = slim
            self.log.write(json.dumps(slim, sort_keys=True) + "\n")
            self.log.flush()
            self.ran += 1
        return slim

    def evaluate_in_process(self, request):
        """One `cfrec eval` process for the run: its JSON, or None."""
        cmd = [self.args.cfrec, "eval"]
        for flag in ("data", "ranker", "intervention", "seed", "config"):
            if flag in request:
                cmd += ["--" + flag, str(request[flag])]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  cwd=repo_root(), env=RUN_ENV)
        except OSError as e:  # e.g. the binary replaced by a build
            sys.stderr.write("%s did not start: %s\n" % (" ".join(cmd), e))
            return None
        if proc.returncode != 0:
            sys.stderr.write("%s failed (%d): %s\n" % (
                " ".join(cmd), proc.returncode, proc.stderr.strip()[-300:]))
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def evaluate_in_worker(self, request):
        """The run in this thread's `cfrec eval --batch` process (started
        on first use, and again after one died): its JSON, or None. A
        worker answers one request at a time, so runs of one thread follow
        each other as separate processes' would; it saves the start-up."""
        worker = getattr(self.local, "worker", None)
        if worker is None or worker.poll() is not None:
            try:
                worker = subprocess.Popen(
                    [self.args.cfrec, "eval", "--batch"], cwd=repo_root(),
                    env=RUN_ENV, stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True, bufsize=1)
            except OSError as e:  # e.g. the binary replaced by a build
                sys.stderr.write("%s did not start: %s\n" % (
                    self.args.cfrec, e))
                return None
            self.local.worker = worker
            with self.lock:
                self.workers.append(worker)
        line = ""
        try:
            worker.stdin.write(json.dumps(request) + "\n")
            worker.stdin.flush()
            line = worker.stdout.readline()
        except OSError:
            pass
        if not line:  # the worker died on this run
            sys.stderr.write("cfrec eval --batch ended on %s (status %s)\n" % (
                json.dumps(request), worker.wait()))
            return None
        try:
            r = json.loads(line)
        except ValueError:
            r = None
        # An answer must be this request's: a line that is not JSON, or an
        # answer for other data, ranker, intervention or seed, means the
        # pairing of requests and answers is lost, so the worker is ended
        # (the next run starts another) and this run counts as failed.
        if not isinstance(r, dict) or ("error" not in r and any(
                key in r and key in request and r[key] != request[key]
                for key in ("data", "ranker", "intervention", "seed"))):
            sys.stderr.write("cfrec eval --batch answered %r to %s; "
                             "restarting it\n" % (line[:200],
                                                   json.dumps(request)))
            worker.kill()
            worker.wait()
            self.local.worker = None
            return None
        if "error" in r:
            sys.stderr.write("cfrec eval failed on %s: %s\n" % (
                json.dumps(request), r["error"]))
            return None
        return r

    def close_workers(self):
        for worker in self.workers:
            if worker.poll() is None:
                worker.stdin.close()
                worker.wait()
        self.workers = []

    def execute(self, jobs):
        """Runs the queued runs, `jobs` at a time, in the order queued;
        prints one progress line per finished run."""
        total = len(self.pending)
        if not total:
            return
        _, left = self.estimate(jobs)
        sys.stderr.write("%d runs to go, %d at a time; estimated %.1f min "
                         "from the recorded run times\n" % (
                             total, jobs, left / 60))
        done = 0
        expected_done = 0.0
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futures = {pool.submit(self.run_one, spec): spec
                       for spec in self.pending}
            for future in concurrent.futures.as_completed(futures):
                spec = futures[future]
                r = future.result()
                done += 1
                expected_done += self.predicted(spec)
                elapsed = time.time() - self.started
                # Remaining: the recorded estimate of what is left, scaled
                # by how fast the finished runs went against theirs.
                pace = elapsed / (expected_done / jobs) if expected_done else 1
                rest = sum(self.predicted(s) for s in self.pending) - \
                    expected_done
                sys.stderr.write(
                    "[%d/%d] %5.1f min, about %.1f min to go | u%d l%d d%d "
                    "s%d %s %s %s\n" % (
                        done, total, elapsed / 60, pace * rest / jobs / 60,
                        spec["users"], spec["lists"], spec["dim"],
                        spec["seed"], spec["ranker"], spec["arm"],
                        "%s=%.4f" % (METRIC, r["metrics"].get(
                            METRIC, float("nan"))) if r else "not run"))
        self.pending = []


# Each run single-threaded (runs go --jobs at a time). One BLAS thread also
# keeps the runs reproducible: NeuMF's products go through OpenBLAS, whose
# sums depend on how many threads split them (NeuMF at the paper's size,
# seed 1: NDCG@10 0.2802 on one thread, 0.2810 on two). OpenBLAS reads
# OPENBLAS_NUM_THREADS before OMP_NUM_THREADS, so both are pinned.
RUN_ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")


def without_seed(key):
    """A run key with its seed left out: the setting of the run."""
    words = key.split(" ")
    return " ".join(words[:4] + words[5:])


def hash_text(text):
    """A stable name for a config's content (Python's hash() is salted)."""
    h = 1469598103934665603
    for b in text.encode():
        h = ((h ^ b) * 1099511628211) % (1 << 64)
    return "%016x" % h


def paired(results, base, metric):
    """(mean diff, half-width of the 95% CI, n, mean base, mean arm)."""
    seeds = sorted(set(results) & set(base))
    diffs = [results[s]["metrics"][metric] - base[s]["metrics"][metric]
             for s in seeds]
    if not diffs:
        return None
    n = len(diffs)
    mean = statistics.fmean(diffs)
    half = (t95(n - 1) * statistics.stdev(diffs) / math.sqrt(n)
            if n > 1 else float("nan"))
    return (mean, half, n,
            statistics.fmean(base[s]["metrics"][metric] for s in seeds),
            statistics.fmean(results[s]["metrics"][metric] for s in seeds))


def fmean_key(runs, path):
    values = []
    for r in runs:
        x = r
        for k in path:
            x = (x or {}).get(k) if isinstance(x, dict) else None
        if isinstance(x, (int, float)):
            values.append(float(x))
    return statistics.fmean(values) if values else None


def table_lines(args, grid, metric, figure_series, suffix="", ref="none"):
    """One table per ranker and d: each arm's paired difference in `metric`
    to the base, or to the arm `ref` (figure points into figure_series when
    given)."""
    lines = []
    arms = [a for a in args.arms if a not in ("none", ref)]
    for ranker in args.rankers:
        for dim in args.dims:
            lines.append("### %s, d = %d%s" % (ranker.upper(), dim, suffix))
            lines.append("")
            header = ["users", "lists/user", "test users",
                      "base" if ref == "none" else arm_label(ref)]
            header += [arm_label(a) for a in arms]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            for users in args.users:
                for lists in args.lists:
                    cell = grid.get((ranker, dim, users, lists), {})
                    base = cell.get(ref, {})
                    if not base:
                        continue
                    tu = fmean_key(base.values(), ["metrics", "test_users"])
                    row = [str(users), str(lists),
                           "%.0f" % tu if tu is not None else "-",
                           "%.3f (n=%d)" % (statistics.fmean(
                               r["metrics"][metric] for r in base.values()),
                               len(base))]
                    for arm in arms:
                        p = paired(cell.get(arm, {}), base, metric)
                        if p is None:
                            row.append("-")
                            continue
                        mean, half, n, mb, ma = p
                        sig = (not math.isnan(half) and
                               (mean - half > 0 or mean + half < 0))
                        text = "%.3f, %+.3f [%+.3f, %+.3f] %s" % (
                            ma, mean, mean - half, mean + half,
                            "%+.0f%%" % (100 * mean / mb) if mb else "")
                        row.append("**%s**" % text if sig else text)
                        if figure_series is None:
                            continue
                        figure_series.setdefault(
                            (ranker, dim, users, arm), []).append(
                                (users * lists, mean, half))
                    lines.append("| " + " | ".join(row) + " |")
            lines.append("")
    return lines


def write_report(args, grid, title, out_fig):
    """The Markdown lines of one part of the study (and its figure)."""
    config = (os.path.relpath(args.config, repo_root()) if args.config
              else "none (cfrec eval's defaults)")
    lines = [
        "## " + title,
        "",
        "Command of this part: `python3 bench/cpr_study.py %s`; config %s." % (
            " ".join(args.argv_for_report), config),
        "",
        "CPR generator, non-linear response; leave-one-out, held-out click",
        "ranked against all items. Each cell: the arm's mean %s, its" % METRIC,
        "paired difference to the base ranker (same data set and seed) with",
        "the 95% confidence interval over seeds, and the relative change.",
        "Bold: the interval excludes zero. `test users`: held-out users per",
        "data set (a user needs 3 distinct clicks).",
        "",
    ]
    if getattr(args, "appendix", False):
        lines += ["Appendix: these runs come from the cache; `--study` runs "
                  "them only with `--with-appendix`.", ""]
    elif getattr(args, "appendix_arms", []):
        lines += ["Appendix arms (from the cache; `--study` runs them only "
                  "with `--with-appendix`): %s." % ", ".join(
                      arm_label(a) for a in args.appendix_arms), ""]
    figure_series = {}
    lines += table_lines(args, grid, METRIC, figure_series)
    if getattr(args, "valid", False):
        lines += ["Validation (`%s`, the figure models are selected on; "
                  "same arms and seeds):" % VALID_METRIC, ""]
        lines += table_lines(args, grid, VALID_METRIC, None,
                             " (validation)")
    versus = getattr(args, "versus", "")
    if versus:
        lines += ["Each variant against %s (paired over the same seeds; "
                  "test, then validation):" % arm_label(versus), ""]
        for metric, suffix in ((METRIC, ", against " + arm_label(versus)),
                               (VALID_METRIC, ", against %s (validation)"
                                % arm_label(versus))):
            lines += table_lines(args, grid, metric, None, suffix, versus)
    # Fidelity, averaged over seeds, per arm and setting.
    lines += [
        "### Fidelity of the simulators (means over seeds)",
        "",
        "p_S AUC: in-list AUC of clicked vs not clicked entries, on training",
        "lists and on fresh lists drawn from the generator (the true model",
        "scores 1.0 there without click noise). Pair agreement: share of the",
        "counterfactual pairs whose order the true click logit agrees with.",
        "List click AUC: the simulated click probabilities against the true",
        "clicks on the counterfactual lists. Catalog share: items the",
        "counterfactual lists reach in the last epoch. Ranker AUC fresh: the",
        "trained ranker's in-list AUC on the same fresh lists as p_S's (a",
        "simulator can only teach where it knows the clicks better). Ranker",
        "agrees: share of counterfactual pairs the ranker already orders as",
        "the pair does when they are drawn; teaching: pairs it orders wrongly",
        "whose order the truth agrees with; gradient true: share of the pairs'",
        "BPR gradient weight sigma(-margin) on pairs with the true order.",
        "Reward: the policy's mean reward in the first and the last epoch of",
        "counterfactual training (learned policy only).",
        "",
        "| ranker | d | users | lists/user | arm | p_S AUC train | p_S AUC "
        "fresh | ranker AUC fresh | p_R AUC | pair agreement | list click "
        "AUC | ranker agrees | teaching | gradient true | reward first, last "
        "| catalog share (last epoch) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (ranker, dim, users, lists), cell in sorted(grid.items()):
        for arm in args.arms:
            runs = list(cell.get(arm, {}).values())
            if arm == "none" or not runs:
                continue

            def f(path, fmt="%.3f"):
                v = fmean_key(runs, path)
                return fmt % v if v is not None else "-"
            last_share = [r["counterfactual"]["by_epoch"][-1]["catalog_share"]
                          for r in runs if r.get("counterfactual") and
                          r["counterfactual"].get("by_epoch")]
            rewards = [(r["counterfactual"]["by_epoch"][0]["mean_reward"],
                        r["counterfactual"]["by_epoch"][-1]["mean_reward"])
                       for r in runs if r.get("counterfactual") and
                       r["counterfactual"].get("by_epoch") and
                       r["counterfactual"]["by_epoch"][0].get("mean_reward")
                       is not None and
                       r["counterfactual"]["by_epoch"][-1].get("mean_reward")
                       is not None]
            lines.append("| %s | %d | %d | %d | %s | %s | %s | %s | %s | %s "
                         "| %s | %s | %s | %s | %s | %s |" % (
                             ranker, dim, users, lists, arm_label(arm),
                             f(["counterfactual", "sem", "ps_auc_train"]),
                             f(["counterfactual", "sem", "ps_auc_fresh"]),
                             f(["counterfactual", "sem", "ranker_auc_fresh"]),
                             f(["counterfactual", "sem", "pr_auc_train"]),
                             f(["counterfactual", "total", "pair_agreement"]),
                             f(["counterfactual", "total", "list_click_auc"]),
                             f(["counterfactual", "total", "ranker_agrees"]),
                             f(["counterfactual", "total", "pairs_teaching"]),
                             f(["counterfactual", "total",
                                "gradient_true_share"]),
                             "%.3f, %.3f" % (
                                 statistics.fmean(a for a, _ in rewards),
                                 statistics.fmean(b for _, b in rewards))
                             if rewards else "-",
                             "%.2f" % statistics.fmean(last_share)
                             if last_share else "-"))
    lines.append("")
    if plot(args, figure_series, out_fig):
        name = os.path.basename(out_fig)
        lines[2:2] = ["![%s](%s)" % (title, name), ""]
    return lines


def plot(args, series, path):
    if not series:
        return False
    plt = pyplot()
    panels = [(r, d, u) for r in args.rankers for d in args.dims
              for u in args.users
              if any((r, d, u, a) in series for a in args.arms)]
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows + 0.4),
                             squeeze=False, sharey=True)
    flat = [ax for row in axes for ax in row]
    for ax, (ranker, dim, users) in zip(flat, panels):
        ax.axhline(0, color="#999999", lw=0.8)
        for k, arm in enumerate(a for a in args.arms if a != "none"):
            pts = sorted(series.get((ranker, dim, users, arm), []))
            if not pts:
                continue
            intervention = arm.partition("@")[0]
            color = ARM_COLOR.get(intervention, "#555555")
            xs = [p[0] * (1 + 0.04 * (k - 1)) for p in pts]  # dodge
            ax.errorbar(xs, [p[1] for p in pts],
                        yerr=[0 if math.isnan(p[2]) else p[2] for p in pts],
                        color=color, marker="o", ms=3, lw=1.2, capsize=2,
                        ls="-" if "@" not in arm else "--",
                        label=arm_label(arm))
        ax.set_xscale("log")
        sizes = sorted({p[0] for a in args.arms
                        for p in series.get((ranker, dim, users, a), [])})
        ax.minorticks_off()
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(x) for x in sizes])
        ax.set_title("%s, d=%d, %d users" % (ranker.upper(), dim, users))
        ax.set_xlabel("lists in the log (users x lists/user)")
        ax.grid(color="#ebebeb", lw=0.6)
    for ax in flat[len(panels):]:
        ax.axis("off")
    for row in axes:
        row[0].set_ylabel("paired diff. in NDCG@10 (all)")
    handles, labels = flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels),
               frameon=False)
    fig.suptitle("CPR lift over its base against data size (95% CI)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, metadata={"Date": None})
    fig.savefig(os.path.splitext(path)[0] + ".png", dpi=110,
                metadata={"Software": None})
    plt.close(fig)
    return True


# The parts added after the ranker's triple sampler changed its random
# draws (the base rankers' figures moved by a few per cent): their runs,
# bases included, are keyed apart from the earlier parts'.
TAG2 = "sampler2"
# Runs of a build whose fused MF kernel takes loss weights (weighted
# batches no longer go through the LibTorch step).
TAG3 = "fusedw"
# Runs of a build with the click model's cross-validated selection and the
# margin filter (and the fused kernel's one-exponential loss).
TAG4 = "cv150"
# Runs of a later build than TAG4's (NeuMF with section 15's settings); it
# reproduced the TAG4 and NeuMF runs checked bit for bit, but its runs are
# keyed apart all the same.
TAG5 = "neumf15"
# Runs of the confirmatory test at 150 x 5 (part "power150"), every arm
# from one build.
TAG6 = "power150"
# Part "simulators" as regenerated from an empty cache with the build of
# commit f870787 (the whole study in one piece): its runs are keyed apart
# from the earlier build's TAG2 runs, which the appendix parts that share
# its cells (sparse10, schedules, levers, logclick) keep pairing with.
TAG7 = "f870787"

# Runs of the build with the policy's exploration share (section 18).
TAG8 = "explore"

# --study: every part of the committed study, one command (--resume).
# Parts and arms marked appendix are explorations the report's conclusions
# no longer rest on (superseded by the logistic simulator, or too few
# held-out users to conclude anything): reported from the cache, run only
# with --with-appendix, so that the study regenerates within an hour.
SEEDS10 = list(range(1, 11))
STUDY_PARTS = [
    ("defaults", "BPR at cfrec eval's defaults (the issue's setting), "
     "before and after the fix",
     {"config": "", "users": [600], "lists": [25],
      "arms": ["none", "learned@round", "random", "learned", "oracle"]}),
    ("sweep", "Sparsity sweep, BPR, d = 16",
     {"arms": ["none", "random", "learned", "oracle", "oracle@click"],
      "appendix": True}),
    ("variants", "Candidate settings of CPR with the SEMs, BPR, d = 16",
     {"users": [150, 600], "lists": [5, 25],
      "arms": ["none", "learned", "learned@start10", "learned@mix10",
               "learned@mix100", "learned@k2", "learned@top50"],
      "appendix": True}),
    ("gmf", "Sparsity sweep, GMF, d = 16",
     {"rankers": ["gmf"], "appendix": True}),
    ("d32", "BPR, d = 32, 600 users",
     {"dims": [32], "users": [600], "appendix": True}),
    ("neumf", "NeuMF, d = 16, 3 seeds",
     {"rankers": ["neumf"], "lists": [5, 25], "seeds": [1, 2, 3],
      "appendix": True}),
    ("defaults_logistic", "BPR and GMF at cfrec eval's defaults (the "
     "paper's size), the SEMs against the logistic click model, 10 seeds "
     "(the SEMs: 5)",
     {"config": "", "rankers": ["bpr", "gmf"], "users": [600], "lists": [25],
      "seeds": SEEDS10,
      "arms": ["none", "learned@shared", "learned@logistic", "oracle"],
      "arm_seeds": {"learned@shared": [1, 2, 3, 4, 5]},
      "valid": True, "tag": TAG2, "appendix": True}),
    ("simulators", "Simulators: the SEMs trained with the ranker (shared), "
     "the SEMs trained to convergence on held-out lists (converged), a "
     "logistic click model (logistic); BPR and GMF, d = 16",
     {"rankers": ["bpr", "gmf"],
      "arms": ["none", "learned@shared", "learned@converged",
               "learned@logistic", "oracle"],
      "appendix_arms": ["learned@converged"], "valid": True, "tag": TAG7}),
    ("sparse10", "The sparse end with 10 seeds: BPR and GMF, 5 lists per "
     "user, the logistic simulator and the oracle",
     {"rankers": ["bpr", "gmf"], "users": [150, 600], "lists": [5],
      "seeds": SEEDS10, "arms": ["none", "learned@logistic", "oracle"],
      "valid": True, "tag": TAG2, "appendix": True}),
    ("schedules", "Schedules and filters with each simulator, BPR, d = 16",
     {"users": [150, 600], "lists": [5, 25],
      "arms": ["none", "learned@shared", "learned@logistic",
               "learned@logdecay", "learned@logfew", "learned@logtop50",
               "learned@logmix50"], "valid": True, "tag": TAG2,
      "appendix": True}),
    ("confirm600x5", "The variants that led at 600 x 5 on seeds 1-5, on "
     "fresh seeds 6-10, BPR",
     {"users": [600], "lists": [5], "seeds": [6, 7, 8, 9, 10],
      "arms": ["none", "learned@logistic", "learned@logtop50",
               "learned@logmix50", "learned@logclick"],
      "valid": True, "tag": TAG2, "appendix": True}),
    ("levers", "Levers at the sparse end, 10 seeds: loss weights by the "
     "simulator's confidence and a constant 2, and simulated-click pairs; "
     "BPR and GMF, 5 lists per user",
     {"rankers": ["bpr", "gmf"], "users": [150, 600], "lists": [5],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "learned@logconf",
               "learned@logw2", "learned@logclick"],
      "versus": "learned@logistic", "valid": True, "tag": TAG2,
      "appendix": True}),
    ("levers_defaults", "Loss weights at cfrec eval's defaults (the paper's "
     "size), GMF, 10 seeds",
     {"config": "", "rankers": ["gmf"], "users": [600], "lists": [25],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "learned@logconf",
               "learned@logw2"], "versus": "learned@logistic",
      "valid": True, "tag": TAG2, "appendix": True}),
    ("neumf_logistic", "NeuMF with the logistic click model, d = 16, 3 seeds",
     {"rankers": ["neumf"], "lists": [5, 25], "seeds": [1, 2, 3],
      "arms": ["none", "oracle", "learned@logistic"], "valid": True,
      "tag": TAG2, "appendix": True}),
    ("neumf_start1", "NeuMF with counterfactual samples from the first "
     "epoch, d = 16, 3 seeds",
     {"rankers": ["neumf"], "lists": [5, 25], "seeds": [1, 2, 3],
      "arms": ["none", "oracle@start1", "learned@logstart1"], "valid": True,
      "tag": TAG2, "appendix": True}),
    ("sparse_levers", "The sparse end's levers with the fused kernel's "
     "loss weights, 10 seeds: loss weights 2 and 4, mix 0.5 and 1.0, noise "
     "control k = 2, lists of 10; BPR and GMF, 5 lists per user",
     {"rankers": ["bpr", "gmf"], "users": [150, 600], "lists": [5],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "learned@logw2", "learned@logw4",
               "learned@logmix50", "learned@logmix100", "learned@logk2",
               "learned@logK10", "oracle"],
      "versus": "learned@logistic", "valid": True, "tag": TAG3,
      "appendix": True}),
    ("target_defaults", "The paper's size at cfrec eval's defaults with "
     "the build of the sparse end's levers, BPR and GMF, 10 seeds",
     {"config": "", "rankers": ["bpr", "gmf"], "users": [600], "lists": [25],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "learned@logw2", "oracle"],
      "versus": "learned@logistic", "valid": True, "tag": TAG3,
      "appendix": True}),
    ("defaults_mix100", "The sparse end's strongest lever (mix 1.0) at "
     "the paper's size, cfrec eval's defaults, BPR and GMF, 5 seeds",
     {"config": "", "rankers": ["bpr", "gmf"], "users": [600], "lists": [25],
      "seeds": [1, 2, 3, 4, 5], "arms": ["none", "learned@logistic",
                                         "learned@logmix100"],
      "versus": "learned@logistic", "valid": True, "tag": TAG3,
      "appendix": True}),
    ("confirm_mix100", "Mix 1.0 at 600 x 5 on fresh seeds 11-15 (chosen "
     "on seeds 1-10 among six levers), BPR and GMF",
     {"rankers": ["bpr", "gmf"], "users": [600], "lists": [5],
      "seeds": [11, 12, 13, 14, 15],
      "arms": ["none", "learned@logistic", "learned@logmix100"],
      "versus": "learned@logistic", "valid": True, "tag": TAG3,
      "appendix": True}),
    ("neumf_sparse", "NeuMF at the sparse end, 5 seeds: the oracle and the "
     "logistic simulator from epoch 1 and 3, and a loss weight of 2",
     {"rankers": ["neumf"], "users": [150, 600], "lists": [5],
      "seeds": [1, 2, 3, 4, 5],
      "arms": ["none", "oracle", "oracle@start1", "learned@logistic",
               "learned@logstart1", "learned@logw2start1"],
      "valid": True, "tag": TAG3, "appendix": True}),
    ("sparse150", "The 150 x 5 cell: the click model chosen by "
     "cross-validation (default and wider L2 grid), a margin filter on the "
     "pairs (logit gap >= 1, >= 2), random lists (CPR-r) with the logistic "
     "model; BPR and GMF, 10 seeds",
     {"rankers": ["bpr", "gmf"], "users": [150], "lists": [5],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "random@logistic",
               "learned@logcv", "learned@logcvwide", "learned@logm1",
               "learned@logm2", "oracle"],
      "appendix_arms": ["learned@logcv", "learned@logcvwide",
                        "learned@logm1", "learned@logm2"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4}),
    ("sparse150_random", "The 150 x 5 cell: random lists (CPR-r) with the "
     "logistic model, with the margin filter (logit gap >= 1, >= 2), mix "
     "1.0, and both; BPR and GMF, 10 seeds",
     {"rankers": ["bpr", "gmf"], "users": [150], "lists": [5],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "random@logistic", "random@logm1",
               "random@logm2", "random@logmix100", "random@logm2mix100"],
      "appendix_arms": ["random@logm2", "random@logmix100",
                        "random@logm2mix100"],
      "versus": "random@logistic", "valid": True, "tag": TAG4}),
    ("confirm_random150", "Random lists with the margin filter (logit gap "
     ">= 1) at 150 x 5 on fresh seeds 11-15 (chosen on seeds 1-10 among "
     "eight settings), BPR and GMF",
     {"rankers": ["bpr", "gmf"], "users": [150], "lists": [5],
      "seeds": [11, 12, 13, 14, 15],
      "arms": ["none", "learned@logistic", "random@logistic",
               "random@logm1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4,
      "appendix": True}),
    ("confirm_random150_more", "The same on fresh seeds 11-20 (seeds "
     "16-20 added after seeds 11-15 left GMF's interval across zero)",
     {"rankers": ["bpr", "gmf"], "users": [150], "lists": [5],
      "seeds": list(range(11, 21)),
      "arms": ["none", "learned@logistic", "random@logistic",
               "random@logm1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4,
      "appendix": True}),
    ("random600x5", "Random lists with the margin filter at 600 x 5, BPR "
     "and GMF, 10 seeds",
     {"rankers": ["bpr", "gmf"], "users": [600], "lists": [5],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "random@logm1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4}),
    ("confirm_random600x5", "Random lists with the margin filter at 600 x 5 "
     "on fresh seeds 11-15, BPR and GMF",
     {"rankers": ["bpr", "gmf"], "users": [600], "lists": [5],
      "seeds": [11, 12, 13, 14, 15],
      "arms": ["none", "learned@logistic", "random@logm1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4}),
    ("pool150", "The learned policy over a random candidate pool of 10 or "
     "20 items with the margin filter, 150 x 5, BPR and GMF, 10 seeds",
     {"rankers": ["bpr", "gmf"], "users": [150], "lists": [5],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "random@logm1",
               "learned@logpool10m1", "learned@logpool20m1"],
      "appendix_arms": ["learned@logpool10m1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4}),
    ("confirm_pool150", "The learned policy over a pool of 20 with the "
     "margin filter on fresh seeds 11-20 (chosen on seeds 1-10 between "
     "pools of 10 and 20), 150 x 5, BPR and GMF",
     {"rankers": ["bpr", "gmf"], "users": [150], "lists": [5],
      "seeds": list(range(11, 21)),
      "arms": ["none", "learned@logistic", "random@logm1",
               "learned@logpool20m1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4,
      "appendix": True}),
    # Fixed before any of its runs (its fresh-seed question supersedes the
    # parts confirm_random150, confirm_random150_more and confirm_pool150,
    # now appendix parts): 30 fresh seeds, the two settings of
    # section 15 and the default, BPR and GMF; a setting counts as above
    # its base at 150 x 5 if its 95% interval on test is above zero for
    # both rankers.
    ("power150", "Confirmatory test at 150 x 5 on 30 fresh seeds 21-50 "
     "(seeds, arms and rule fixed before the runs): random lists with the "
     "margin filter and the policy over a pool of 20 with the margin "
     "filter, against the base and the default CPR, BPR and GMF",
     {"rankers": ["bpr", "gmf"], "users": [150], "lists": [5],
      "seeds": list(range(21, 51)),
      "arms": ["none", "learned@logistic", "random@logm1",
               "learned@logpool20m1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG6}),
    # Section 18, the choice: the exploration share of the policy over a
    # pool of 20 with the margin filter, on seeds 1-10 only. Fixed before
    # its runs: the share chosen is the one with the largest paired
    # VALIDATION difference to the base, averaged over BPR and GMF.
    ("explore150", "The policy over a pool of 20 with the margin filter and "
     "an exploration share of 0.2, 0.4 or 0.6 (1, 2 or 3 of 5 slots drawn "
     "uniformly from the pool), 150 x 5, BPR and GMF, seeds 1-10 (the "
     "share chosen on validation)",
     {"rankers": ["bpr", "gmf"], "users": [150], "lists": [5],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logpool20m1", "learned@logpool20m1e20",
               "learned@logpool20m1e40", "learned@logpool20m1e60"],
      "versus": "learned@logpool20m1", "valid": True, "tag": TAG8}),
    # Section 18, the test: fixed before any of its runs, with the share
    # explore150 chose (0.4, the largest mean validation difference on
    # seeds 1-10): 30 seeds never used before (51-80), BPR and GMF. The
    # explored policy counts as above its base at 150 x 5 if its 95%
    # interval on test is above zero for both rankers.
    ("explore150_confirm", "Confirmatory test at 150 x 5 on 30 fresh seeds "
     "51-80 (seeds, arms and rule fixed before the runs): the policy over a "
     "pool of 20 with the margin filter and an exploration share of 0.4, "
     "against the base, the policy without it and random lists with the "
     "margin filter, BPR and GMF",
     {"rankers": ["bpr", "gmf"], "users": [150], "lists": [5],
      "seeds": list(range(51, 81)),
      "arms": ["none", "learned@logpool20m1", "learned@logpool20m1e40",
               "random@logm1"],
      "versus": "learned@logpool20m1", "valid": True, "tag": TAG8}),
    ("pool_sizes", "The learned policy over a pool of 20 with the margin "
     "filter at 600 x 5, BPR and GMF, 10 seeds",
     {"rankers": ["bpr", "gmf"], "users": [600], "lists": [5],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "random@logm1",
               "learned@logpool20m1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4}),
    ("defaults_pool", "The learned policy over a pool of 20 with the margin "
     "filter at the paper's size, cfrec eval's defaults, BPR and GMF, 10 "
     "seeds",
     {"config": "", "rankers": ["bpr", "gmf"], "users": [600], "lists": [25],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "random@logm1",
               "learned@logpool20m1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4}),
    ("defaults_random", "Random lists with the margin filter at the paper's "
     "size, cfrec eval's defaults, BPR and GMF, 10 seeds",
     {"config": "", "rankers": ["bpr", "gmf"], "users": [600], "lists": [25],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "random@logm1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG4}),
    ("neumf150", "NeuMF at 150 x 5 with section 15's settings (random "
     "lists with the margin filter, the policy over a pool of 20 with the "
     "margin filter; random lists with the margin filter from epoch 1), "
     "and the oracle, 10 seeds",
     {"rankers": ["neumf"], "users": [150], "lists": [5], "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "random@logm1",
               "learned@logpool20m1", "random@logm1start1", "oracle"],
      "appendix_arms": ["random@logm1start1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG5}),
    ("neumf_defaults", "NeuMF at the paper's size with section 15's "
     "settings, cfrec eval's defaults, 10 seeds",
     {"config": "", "rankers": ["neumf"], "users": [600], "lists": [25],
      "seeds": SEEDS10,
      "arms": ["none", "learned@logistic", "random@logm1",
               "learned@logpool20m1", "oracle"],
      "versus": "learned@logistic", "valid": True, "tag": TAG5}),
    ("confirm_neumf150", "NeuMF at 150 x 5 on fresh seeds 11-20",
     {"rankers": ["neumf"], "users": [150], "lists": [5],
      "seeds": list(range(11, 21)),
      "arms": ["none", "learned@logistic", "random@logm1",
               "learned@logpool20m1", "random@logm1start1", "oracle"],
      "versus": "learned@logistic", "valid": True, "tag": TAG5,
      "appendix": True}),
    ("confirm_neumf_defaults", "NeuMF at the paper's size, cfrec eval's "
     "defaults, on fresh seeds 11-20",
     {"config": "", "rankers": ["neumf"], "users": [600], "lists": [25],
      "seeds": list(range(11, 21)),
      "arms": ["none", "learned@logistic", "random@logm1",
               "learned@logpool20m1"],
      "versus": "learned@logistic", "valid": True, "tag": TAG5,
      "appendix": True}),
    ("logclick", "Simulated clicks only (the logistic model's), BPR, d = 16",
     {"users": [150, 600], "lists": [5, 25],
      "arms": ["none", "learned@logistic", "learned@logclick"],
      "valid": True, "tag": TAG2, "appendix": True}),
]


def run_part(args, runner):
    """The part's grid from the cache; missing runs are queued (runner)
    unless they are the appendix's (runs only with --with-appendix)."""
    grid = {}
    appendix_arms = set(args.arms if getattr(args, "appendix", False)
                        else getattr(args, "appendix_arms", []))
    arm_seeds = getattr(args, "arm_seeds", {})
    # Seeds outermost: a budget cut leaves every setting with its first
    # seeds, so paired differences exist everywhere.
    for seed in args.seeds:
        for ranker in args.rankers:
            for dim in args.dims:
                for users in args.users:
                    for lists in args.lists:
                        for arm in args.arms:
                            if arm in arm_seeds and seed not in arm_seeds[arm]:
                                continue
                            runnable = (args.with_appendix or
                                        arm not in appendix_arms)
                            r = runner.lookup(users, lists, dim, seed, ranker,
                                              arm, runnable)
                            if r is None:
                                continue
                            grid.setdefault(
                                (ranker, dim, users, lists), {}
                            ).setdefault(arm, {})[seed] = r
    return grid


def main():
    root = repo_root()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cfrec", default=os.path.join(root, "build", "release",
                                                   "app", "cfrec"))
    p.add_argument("--rankers", nargs="+", default=["bpr"])
    p.add_argument("--arms", nargs="+",
                   default=["none", "random", "learned", "oracle"])
    p.add_argument("--users", nargs="+", type=int, default=[150, 600])
    p.add_argument("--lists", nargs="+", type=int, default=[5, 10, 25])
    p.add_argument("--dims", nargs="+", type=int, default=[16])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--config", default=os.path.join(root, "bench",
                                                    "cpr_study_config.json"),
                   help="base config of every arm ('' for cfrec's defaults)")
    p.add_argument("--work", default=os.path.join(root, "build",
                                                  "cpr_study"),
                   help="scratch directory of the generated data sets")
    p.add_argument("--out", default=os.path.join(root, "docs", "results"))
    p.add_argument("--resume", action="store_true",
                   help="reuse the runs cached in cpr_runs.jsonl")
    p.add_argument("--report-only", action="store_true",
                   help="no runs: tables and figure from the cache")
    p.add_argument("--budget-minutes", type=float, default=0,
                   help="start no run after this many minutes (0: none)")
    p.add_argument("--valid", action="store_true",
                   help="also tabulate the paired differences in the "
                   "validation metric (what models are selected on)")
    p.add_argument("--parts", nargs="+", default=[],
                   help="with --study: run only these parts (the report "
                   "still holds every part, from the cache)")
    p.add_argument("--study", action="store_true",
                   help="every part of the committed study (STUDY_PARTS) "
                   "into CPR_SWEEP.md; the grid options are ignored")
    p.add_argument("--with-appendix", action="store_true",
                   help="with --study: also run the appendix's parts and "
                   "arms (by default they are reported from the cache only)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="runs at a time (each run is single-threaded; "
                   "default: the number of cores)")
    p.add_argument("--no-batch", action="store_true",
                   help="one `cfrec eval` process per run instead of one "
                   "`cfrec eval --batch` worker per job (same results; the "
                   "worker saves each run the process start-up)")
    p.add_argument("--estimate", action="store_true",
                   help="run nothing, write nothing: print (one JSON line) "
                   "how many runs are missing and how long they would take "
                   "with --jobs, from the run times recorded in "
                   "--times-from (each missing run's own recorded time, "
                   "else the mean over the other seeds of its setting; runs "
                   "started in study order on the first free job)")
    p.add_argument("--times-from",
                   default=os.path.join(root, "docs", "results",
                                        "cpr_runs.jsonl"),
                   help="cache whose recorded run times --estimate and the "
                   "progress lines use")
    args = p.parse_args()
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    # The command as a reader would type it: no binary or scratch paths.
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a in ("--cfrec", "--work"):
            skip = True
            continue
        if a.startswith("--cfrec=") or a.startswith("--work="):
            continue
        argv.append(a)
    args.argv_for_report = argv
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    cache_path = os.path.join(args.out, "cpr_runs.jsonl")
    cache = load_cache(cache_path) if (args.resume or args.report_only) else {}
    if args.estimate:
        args.report_only = False
    elif not (args.resume or args.report_only) and os.path.exists(cache_path):
        os.replace(cache_path, cache_path + ".old")
    times = {k: r["wall_seconds"] for k, r in load_cache(
        args.times_from).items() if r.get("wall_seconds")}
    parts = ([(name, title, overrides) for name, title, overrides
              in STUDY_PARTS] if args.study
             else [("sweep", "Sparsity sweep", {})])
    lines = ["# CPR study: the runs (generated)", "",
             "Generated by `bench/cpr_study.py%s` from" % (
                 " --study --resume" if args.study else ""),
             "`docs/results/cpr_runs.jsonl`; do not edit. The text that reads",
             "these tables is CPR_STUDY.md.", ""]
    part_args = []
    for name, title, overrides in parts:
        part = argparse.Namespace(**vars(args))
        for k, v in overrides.items():
            setattr(part, k, v)
        if args.parts and name not in args.parts:
            part.report_only = True
        if args.study:
            part.argv_for_report = ["--study"]
            for k, v in overrides.items():
                flag = "--" + k.replace("_", "-")
                if k in ("tag", "appendix", "appendix_arms", "arm_seeds",
                         "versus"):
                    continue
                if isinstance(v, bool):
                    part.argv_for_report += [flag] if v else []
                    continue
                part.argv_for_report += (
                    [flag] + [str(x) for x in v] if isinstance(v, list)
                    else [flag, "''" if v == "" else str(v)])
        part_args.append((name, title, part))
    runner = Runner(args, cache, None, times)
    by_part = {}  # part -> its queued runs (a run shared with an earlier
    # part is queued, and counted, with the earlier one)
    for name, title, part in part_args:  # plan: queue the missing runs
        runner.args = part
        queued = len(runner.pending)
        run_part(part, runner)
        if len(runner.pending) > queued:
            by_part[name] = runner.pending[queued:]
    runner.args = args
    if args.estimate:
        serial, wall = runner.estimate(args.jobs)
        print(json.dumps({
            "missing_runs": len(runner.pending),
            "with_recorded_time": sum(
                1 for s in runner.pending if s["key"] in times),
            "serial_minutes": round(serial / 60, 1), "jobs": args.jobs,
            "wall_minutes": round(wall / 60, 1),
            "data_sets_to_generate": len({
                (s["users"], s["lists"], s["dim"], s["seed"])
                for s in runner.pending if not os.path.exists(os.path.join(
                    args.work, "u%d_l%d_d%d_s%d" % (
                        s["users"], s["lists"], s["dim"], s["seed"]),
                    "ground_truth.json"))}),
            "parts": {name: {
                "runs": len(specs),
                "serial_minutes": round(sum(
                    runner.predicted(s) for s in specs) / 60, 1)}
                for name, specs in by_part.items()}}))
        return
    with open(cache_path, "a") as log:
        runner.log = log
        try:
            runner.execute(args.jobs)
        finally:
            runner.close_workers()
    for name, title, part in part_args:  # report, from the cache
        part.report_only = True
        runner.args = part
        grid = run_part(part, runner)
        heading = title + (" (appendix: cached runs only)"
                           if getattr(part, "appendix", False) else "")
        lines += write_report(part, grid, heading, os.path.join(
            args.out, "cpr_%s_lift.svg" % name))
    with open(os.path.join(args.out, "CPR_SWEEP.md"), "w") as f:
        f.write("\n".join(lines))
    sys.stderr.write("ran %d, failed %d, cached %d, %.1f min\n" % (
        runner.ran, runner.failed, len(cache) - runner.ran,
        (time.time() - runner.started) / 60))

if __name__ == "__main__":
    main()
