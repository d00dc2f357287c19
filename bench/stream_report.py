#!/usr/bin/env python3
"""The streaming evaluation grid and docs/results/STREAMING.md with its plots.

Runs `cfrec eval --protocol stream` over rankers, interventions and stream
features on three news logs and writes docs/results/STREAMING.md with plots
of quality over event time.

The stream protocol replays a MIND-format log in time order: each impression
is scored by the snapshot of its moment (stream features + ranker), then
learned. Every run prints one JSON line; those lines are cached in
docs/results/stream_runs.jsonl keyed by the run's command line (and the
content of its config file), and the report is written from that cache alone
(`--report-only`). Nothing in the report is typed in by hand.

Grid: every ranker (bpr, gmf, mlp, neumf, lightgcn) x intervention (none,
random, learned) x stream features (on, off), plus `--ranker none` (the
stream features alone), on each data set, per seed. Runs go in this order so
that a time budget cuts the least useful ones: every ranker with intervention
none (features on and off) on every data set; then BPR and GMF with random and
learned; then the rest.

Python 3 standard library; the plots need matplotlib (Debian:
python3-matplotlib).
"""

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import bench_common
from bench_common import load_cache, pyplot

RANKERS = ["bpr", "gmf", "mlp", "neumf", "lightgcn"]
INTERVENTIONS = ["none", "random", "learned"]
DISPLAY = {"none": "Stream features alone", "bpr": "BPR", "gmf": "GMF",
           "mlp": "MLP", "neumf": "NeuMF", "lightgcn": "LightGCN"}
# name -> (title, path relative to the repository root, how it is made)
DATASETS = {
    "mind": ("MIND small subset",
             "../shared/data/mind-small-subset/behaviors.tsv", None),
    "ebnerd": ("EB-NeRD demo, first week",
               "../shared/data/ebnerd-demo-week1/behaviors.tsv", None),
    "news": ("Synthetic news stream (cfrec synth --mode news)",
             "build/report/news_s1/behaviors.tsv",
             ["synth", "--mode", "news", "--out", "build/report/news_s1",
              "--impressions", "20000", "--seed", "1"]),
}
SHORT = {"mind": "MIND", "ebnerd": "EB-NeRD", "news": "synthetic news"}
BASELINES = ["random", "clicks", "clicks_decayed_6h", "ctr_decayed_0.5h",
             "ctr_decayed_2h", "ctr_decayed_6h", "ctr_decayed_24h"]
BASELINE_LABEL = {"random": "random", "clicks": "clicks (all time)",
                  "clicks_decayed_6h": "clicks, decayed 6 h",
                  "ctr_decayed_0.5h": "CTR, decayed 0.5 h",
                  "ctr_decayed_2h": "CTR, decayed 2 h",
                  "ctr_decayed_6h": "CTR, decayed 6 h",
                  "ctr_decayed_24h": "CTR, decayed 24 h"}
METRICS = [("AUC", "auc"), ("MRR", "mrr"), ("nDCG@5", "ndcg@5"),
           ("nDCG@10", "ndcg@10")]
OFF_METRICS = [("AUC", "auc"), ("nDCG@10", "ndcg@10")]


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def label(ranker, intervention):
    if ranker == "none":
        return DISPLAY["none"]
    name = DISPLAY[ranker]
    if intervention == "learned":
        return "CPR-" + name
    if intervention == "random":
        return "CPR-%s-r" % name
    return name


# ------------------------------------------------------------------- runs

def eval_argv(dataset, ranker, intervention, features, seed, config):
    argv = ["eval", "--data", DATASETS[dataset][1], "--protocol", "stream",
            "--ranker", ranker]
    if ranker != "none":
        argv += ["--intervention", intervention, "--trainer", "default",
                 "--stream-features", features]
    argv += ["--seed", str(seed)]
    if config:
        argv += ["--config", config]
    return argv


def run_key(argv, config):
    """The cache key of a run; `config` is relative to the repository."""
    return bench_common.run_key(
        argv, os.path.join(repo_root(), config) if config else None)


def plan(datasets, seeds, rankers):
    """(phase, dataset, ranker, intervention, features, seed), in the order
    they run."""
    out = []

    def add(phase, d, r, i, f, s):
        out.append((phase, d, r, i, f, s))

    for s in seeds:
        for d in datasets:
            add(1, d, "none", "none", "on", s)
            for r in rankers:
                for f in ("on", "off"):
                    add(1, d, r, "none", f, s)
    for phase, group in ((2, [r for r in rankers if r in ("bpr", "gmf")]),
                         (3, [r for r in rankers if r not in ("bpr", "gmf")])):
        for r in group:
            for i in ("random", "learned"):
                for s in seeds:
                    for d in datasets:
                        for f in ("on", "off"):
                            add(phase, d, r, i, f, s)
    return out


class Runner:
    def __init__(self, cfrec, cache, path, config, commit):
        self.cfrec = cfrec
        self.commit = commit
        self.cache = cache
        self.path = path
        self.config = config
        self.lock = threading.Lock()

    def run(self, item):
        phase, d, r, i, f, s = item
        argv = eval_argv(d, r, i, f, s, self.config)
        key = run_key(argv, self.config)
        start = time.time()
        try:
            proc = subprocess.run([self.cfrec] + argv, capture_output=True,
                                  text=True, cwd=repo_root())
        except OSError as e:  # e.g. the binary is being relinked
            sys.stderr.write("FAILED cfrec %s: %s\n" % (" ".join(argv), e))
            return None
        wall = time.time() - start
        if proc.returncode != 0:
            # Kept (the report lists it; --resume runs it again).
            sys.stderr.write("FAILED (%d) cfrec %s: %s\n" % (
                proc.returncode, " ".join(argv), proc.stderr.strip()[-500:]))
            result = {"failed": proc.returncode, "ranker": r,
                      "intervention": i, "stream_features": f == "on",
                      "seed": s, "stderr": proc.stderr.strip()[-500:]}
        else:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["wall_seconds"] = round(wall, 2)
        result["dataset_name"] = d
        result["phase"] = phase
        result["run_key"] = key
        if self.commit:
            result["cfrec_commit"] = self.commit
        with self.lock:
            self.cache[key] = result
            with open(self.path, "a") as out:
                out.write(json.dumps(result, sort_keys=True) + "\n")
        sys.stderr.write("%6.0fs  %-6s %-24s features %-3s seed %d: %.1f s\n"
                         % (time.time() - START, d, label(r, i), f, s, wall))
        sys.stderr.flush()
        return result


START = time.time()


def run_grid(args, cache, path):
    todo = []
    for item in plan(args.datasets, args.seeds, args.rankers):
        _, d, r, i, f, s = item
        key = run_key(eval_argv(d, r, i, f, s, args.config), args.config)
        if args.resume and key in cache and "failed" not in cache[key]:
            continue
        todo.append(item)
    sys.stderr.write("%d runs to do (%d cached)\n" % (len(todo), len(cache)))
    deadline = START + args.budget_minutes * 60 if args.budget_minutes else 0
    runner = Runner(args.cfrec, cache, path, args.config, args.cfrec_commit)
    left_out = []
    pending = set()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < args.jobs:
                if deadline and time.time() > deadline:
                    left_out.extend(queue)
                    queue = []
                    break
                pending.add(pool.submit(runner.run, queue.pop(0)))
            if pending:
                done, pending = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED)
    if left_out:
        sys.stderr.write("time budget reached; %d runs not started\n" %
                         len(left_out))
    # One line per run key, the latest run of each.
    with open(path, "w") as out:
        for key in sorted(cache):
            out.write(json.dumps(cache[key], sort_keys=True) + "\n")


def make_datasets(args):
    for d in args.datasets:
        title, rel, make = DATASETS[d]
        if make and not os.path.exists(os.path.join(repo_root(), rel)):
            subprocess.run([args.cfrec] + make, check=True, cwd=repo_root(),
                           stdout=subprocess.DEVNULL)
        if not os.path.exists(os.path.join(repo_root(), rel)):
            sys.exit("data set %s not found at %s" % (d, rel))


# ------------------------------------------------------------------ stats

def mean_std(values):
    if not values:
        return None
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return m, s, len(values)


def fmt(ms, digits=4):
    if ms is None:
        return "not run"
    if ms[2] == 1:
        return "%.*f" % (digits, ms[0])
    return "%.*f ± %.*f" % (digits, ms[0], digits, ms[1])


class Runs:
    """The cached runs of one config, indexed by their request."""

    def __init__(self, cache, config, seeds):
        self.by = {}
        self.failed = []
        self.config = config
        for r in cache.values():
            if "failed" in r:  # a run that did not finish
                if r["seed"] in seeds:
                    self.failed.append(r)
                continue
            if r.get("protocol") != "stream" or r["seed"] not in seeds:
                continue
            # Only runs of this config (the key ends with its content).
            argv = eval_argv(r["dataset_name"], r["ranker"], r["intervention"],
                             "on" if r["stream_features"] else "off",
                             r["seed"], config)
            if run_key(argv, config) != r["run_key"]:
                continue
            k = (r["dataset_name"], r["ranker"],
                 r["intervention"] if r["ranker"] != "none" else "none",
                 "on" if r["stream_features"] else "off")
            self.by.setdefault(k, []).append(r)

    def get(self, d, r, i, f):
        return sorted(self.by.get((d, r, i, f), []), key=lambda x: x["seed"])

    def metric(self, d, r, i, f, m):
        return mean_std([x["metrics"][m] for x in self.get(d, r, i, f)
                         if m in x["metrics"]])

    def baseline(self, d, name, m):
        # Baselines do not depend on the ranker: take them from the
        # features-alone runs (one per seed), else from any run of d.
        runs = self.get(d, "none", "none", "on")
        if not runs:
            runs = {x["seed"]: x for k, v in self.by.items() if k[0] == d
                    for x in v}.values()
        return mean_std([x["baselines"][name][m] for x in runs
                         if name in x["baselines"]])

    def all(self):
        return [x for v in self.by.values() for x in v]


# ------------------------------------------------------------------ plots

# The same in every figure (and, for base / CPR-r / CPR, in bench/report.py's
# figures): colour = the model, line style = with stream features (solid) or
# the ranker alone (dashed, with markers); grey = the decayed-CTR baseline.
COLORS = {"alone": "#2ca02c",   # the stream features alone
          "ctr": "#8c8c8c"}     # decayed-CTR baseline
INTERVENTION_COLORS = {"none": "#1f77b4", "random": "#9467bd",
                       "learned": "#d62728"}
OFF_STYLE = {"ls": (0, (4, 2)), "lw": 1.1, "marker": "o", "ms": 2.2}
CTR_STYLE = {"color": "#8c8c8c", "lw": 2.4, "alpha": 0.55, "zorder": 1}


def save(fig, out, stem, png=True):
    fig.savefig(os.path.join(out, stem + ".svg"), metadata={"Date": None})
    if png:
        fig.savefig(os.path.join(out, stem + ".png"), dpi=110,
                    metadata={"Software": None})


def curve_mean(runs, field):
    """Mean over seeds per time bucket: [(datetime of bucket middle, v)]."""
    import datetime
    if not runs:
        return []
    n = min(len(r["curve"]) for r in runs)
    pts = []
    for b in range(n):
        vals = [r["curve"][b][field] for r in runs
                if r["curve"][b].get(field) is not None]
        if not vals:
            continue
        c = runs[0]["curve"][b]
        mid = (c["start_ms"] + c["end_ms"]) / 2000.0
        pts.append((datetime.datetime.fromtimestamp(
            mid, datetime.timezone.utc).replace(tzinfo=None),
            statistics.fmean(vals)))
    return pts


def time_axis(ax, span_hours, max_labels):
    """Round ticks: midnights (every day, or every few days when they would
    crowd), hours for short spans; 6-hour minor ticks."""
    import matplotlib.dates as mdates
    if span_hours <= 36:
        step = max(1, int(span_hours / max_labels / 3 + 0.999)) * 3
        ax.xaxis.set_major_locator(mdates.HourLocator(
            byhour=range(0, 24, step)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        ax.xaxis.set_minor_locator(mdates.HourLocator())
        return
    days = span_hours / 24
    step = max(1, int(days / max_labels + 0.999))
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=step))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%a %b %d"))
    ax.xaxis.set_minor_locator(mdates.HourLocator(byhour=range(0, 24, 6)))


def span_hours(runs):
    c = runs[0]["curve"]
    return (c[-1]["end_ms"] - c[0]["start_ms"]) / 3.6e6


def figure_legend(fig, axes, where):
    handles, labels = [], []
    for ax in axes:
        for h, l_ in zip(*ax.get_legend_handles_labels()):
            if l_ not in labels:
                handles.append(h)
                labels.append(l_)
    if where is None:
        fig.legend(handles, labels, loc="lower center",
                   ncol=min(3, len(labels)), frameon=False)
    else:
        where.legend(handles, labels, loc="center", frameon=False)


def plot_over_time(plt, out, runs, datasets, metric, stem, ylabel):
    """One panel per data set (stacked, sharing nothing but the legend):
    features alone, BPR with stream features, CPR-BPR with stream features,
    BPR without them, and the decayed-CTR baseline in grey."""
    from matplotlib.ticker import MultipleLocator
    panels = [d for d in datasets if runs.get(d, "none", "none", "on") or
              runs.get(d, "bpr", "none", "on")]
    if not panels:
        return False
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.6,
                                                      2.35 * len(panels) + 0.9),
                             squeeze=False)
    axes = [row[0] for row in axes]
    for ax, d in zip(axes, panels):
        lines = [  # (label, runs, plot style)
            # Thick under thin: the curves with features nearly coincide.
            (DISPLAY["none"], runs.get(d, "none", "none", "on"),
             {"color": COLORS["alone"], "lw": 4.5, "alpha": 0.45}),
            ("CPR-BPR + stream features", runs.get(d, "bpr", "learned", "on"),
             {"color": INTERVENTION_COLORS["learned"], "lw": 2.6,
              "alpha": 0.75}),
            ("BPR + stream features", runs.get(d, "bpr", "none", "on"),
             {"color": INTERVENTION_COLORS["none"], "lw": 1.1, "marker": "o",
              "ms": 2.2}),
            ("BPR alone (stream features off)",
             runs.get(d, "bpr", "none", "off"),
             dict(OFF_STYLE, color=INTERVENTION_COLORS["none"])),
        ]
        any_run = next(rs for _, rs, _ in lines if rs)
        half_life = any_run[0]["config"]["stream"]["half_life_hours"]
        ctr = curve_mean(any_run, "ctr_decayed_" + metric)
        ax.plot([p[0] for p in ctr], [p[1] for p in ctr],
                label="decayed CTR, half-life %g h (baseline)" % half_life,
                **CTR_STYLE)
        for name, rs, style in lines:
            pts = curve_mean(rs, metric)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name,
                        zorder=2, **style)
        if metric == "auc":
            ax.axhline(0.5, color="black", lw=0.6, ls=":", zorder=0)
        time_axis(ax, span_hours(any_run), 8)
        ax.yaxis.set_major_locator(MultipleLocator(0.05))
        ax.grid(axis="y", color="#e5e5e5", lw=0.6)
        ax.set_title(DATASETS[d][0].split(" (")[0], loc="left")
        ax.set_ylabel(ylabel)
    axes[-1].set_xlabel("event time (log clock)")
    figure_legend(fig, axes, None)
    fig.suptitle("%s per time bucket of the stream replay" % ylabel,
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save(fig, out, stem)
    plt.close(fig)
    return True


def plot_rankers(plt, out, runs, d, stem):
    """One panel per ranker on data set d: AUC over time of the ranker
    alone (base, CPR-r, CPR; stream features off) against the base ranker
    with stream features and the decayed CTR in grey."""
    from matplotlib.ticker import MultipleLocator
    rankers = [r for r in RANKERS if runs.get(d, r, "none", "on")]
    if not rankers:
        return False
    cols = 3
    nrows = (len(rankers) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(10, 2.6 * nrows + 0.6),
                             sharey=True, squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, r in zip(flat, rankers):
        base = runs.get(d, r, "none", "on")
        ctr = curve_mean(base, "ctr_decayed_auc")
        half_life = base[0]["config"]["stream"]["half_life_hours"]
        ax.plot([p[0] for p in ctr], [p[1] for p in ctr],
                label="decayed CTR, half-life %g h (baseline)" % half_life,
                **CTR_STYLE)
        # With stream features the interventions coincide (one line for
        # the base model); without them CPR and CPR-r can differ.
        pts = curve_mean(base, "auc")
        ax.plot([p[0] for p in pts], [p[1] for p in pts],
                color=INTERVENTION_COLORS["none"], lw=2.0,
                label="base + stream features", zorder=2)
        for i in INTERVENTIONS:
            pts = curve_mean(runs.get(d, r, i, "off"), "auc")
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts],
                        label={"none": "base", "random": "CPR-r",
                               "learned": "CPR"}[i] + " alone (features off)",
                        zorder=3, **dict(OFF_STYLE,
                                         color=INTERVENTION_COLORS[i]))
        ax.axhline(0.5, color="black", lw=0.6, ls=":", zorder=0)
        time_axis(ax, span_hours(base), 3)
        ax.yaxis.set_major_locator(MultipleLocator(0.05))
        ax.grid(axis="y", color="#e5e5e5", lw=0.6)
        ax.set_title(DISPLAY[r])
    for row in axes:
        row[0].set_ylabel("AUC")
    spare = flat[len(rankers):]
    for ax in spare:
        ax.axis("off")
    figure_legend(fig, flat[:len(rankers)], spare[-1] if spare else None)
    fig.suptitle("AUC per time bucket by ranker, %s: rankers alone against "
                 "stream features" % DATASETS[d][0].split(" (")[0],
                 fontsize=10)
    fig.tight_layout(rect=(0, 0 if spare else 0.07, 1, 1))
    save(fig, out, stem)
    plt.close(fig)
    return True


# ----------------------------------------------------------------- report

def provenance(done):
    commits = sorted({r.get("cfrec_commit", "") for r in done})
    if commits == [""]:
        return ""
    if len(commits) == 1:
        return (" Every run used `cfrec` built from commit %s (release "
                "preset)." % commits[0])
    return (" The runs used `cfrec` built from different commits (%s): "
            "compare rows with care." % ", ".join(c or "unknown"
                                                  for c in commits))


def overlap_note(runs, datasets):
    """How far apart the features-alone, BPR and CPR-BPR curves with stream
    features are (they may hide each other in the plots)."""
    gap = []
    for d in datasets:
        alone = runs.get(d, "none", "none", "on")
        for r, i in (("bpr", "none"), ("bpr", "learned")):
            other = runs.get(d, r, i, "on")
            if alone and other:
                a, o = curve_mean(alone, "auc"), curve_mean(other, "auc")
                gap += [abs(x[1] - y[1]) for x, y in zip(a, o)]
    if not gap:
        return ""
    return (" With stream features, the features-alone, BPR and CPR-BPR "
            "curves lie on top of each other: per bucket their AUC differs by "
            "at most %.4f." % max(gap))


def findings(runs, datasets):
    """Sentences computed from the runs, for the summary."""
    out = []
    ctr_names = [b for b in BASELINES if b.startswith("ctr_decayed")]
    for d in datasets:
        alone = runs.metric(d, "none", "none", "on", "auc")
        if not alone:
            continue
        on = [(label(r, i), runs.metric(d, r, i, "on", "auc"))
              for r in RANKERS for i in INTERVENTIONS]
        on = [(n, a[0]) for n, a in on if a]
        off = [(label(r, i), runs.metric(d, r, i, "off", "auc"))
               for r in RANKERS for i in INTERVENTIONS]
        off = [(n, a[0]) for n, a in off if a]
        ctr = max((runs.baseline(d, b, "auc")[0], b) for b in ctr_names)
        parts = ["%s: the stream features alone reach AUC %.4f, %+.4f over "
                 "the best decayed CTR (%s, %.4f)" % (
                     SHORT[d], alone[0], alone[0] - ctr[0],
                     BASELINE_LABEL[ctr[1]], ctr[0])]
        if on:
            dev = max(abs(a - alone[0]) for _, a in on)
            parts.append("adding any ranker (%d configurations) moves AUC "
                         "by at most %.4f" % (len(on), dev))
        if off:
            lo, hi = min(off, key=lambda x: x[1]), max(off, key=lambda x: x[1])
            parts.append("the rankers alone reach %.4f (%s) to %.4f (%s), "
                         "%s the best decayed CTR" % (
                             lo[1], lo[0], hi[1], hi[0],
                             "all below" if hi[1] < ctr[0] else
                             "not all below"))
        out.append("- " + "; ".join(parts) + ".")
    # CPR against its base model, features off (where the ranker matters).
    better = worse = 0
    for d in datasets:
        for r in RANKERS:
            base = runs.metric(d, r, "none", "off", "auc")
            for i in ("random", "learned"):
                cpr = runs.metric(d, r, i, "off", "auc")
                if base and cpr:
                    if cpr[0] > base[0]:
                        better += 1
                    else:
                        worse += 1
    if better + worse:
        out.append("- Without stream features, CPR or CPR-r beats its base "
                   "ranker's AUC in %d of %d (data set, ranker, "
                   "intervention) cells." % (better, better + worse))
    return out


def summary_table(summary):
    """AUC / nDCG@10 of the main configurations on every data set."""
    if not summary:
        return []

    def both(ms):
        a, n = ms
        return "%s / %s" % (fmt(a), fmt(n)) if a and n else "not run"

    md = ["", "## Summary", "",
          "AUC / nDCG@10 (seed mean); \"+ features\" = combined with the "
          "stream features, \"alone\" = stream features off.", "",
          "| Data | features alone | BPR + features | BPR alone | "
          "CPR-BPR + features | best decayed CTR | best baseline | best "
          "configuration |", "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        c = s["cells"]
        md.append("| %s | %s | %s | %s | %s | %s: %s | %s: %s | %s: %s |" % (
            SHORT[s["dataset"]], both(c["alone"]), both(c["bpr_on"]),
            both(c["bpr_off"]), both(c["cpr_on"]),
            BASELINE_LABEL[s["best_ctr"]], both(c["ctr"]),
            BASELINE_LABEL[s["best_baseline"]], both(s["best_baseline_ms"]),
            s["best"], both(c["best"])))
    return md


def command_line(args):
    cmd = ["python3", "bench/stream_report.py"]
    if args.seeds != [1]:
        cmd += ["--seeds"] + [str(s) for s in args.seeds]
    if args.config:
        cmd += ["--config", args.config]
    return " ".join(cmd)


def write_report(args, runs, planned):
    out = args.out
    plt = pyplot()
    done = runs.all()
    md = ["# Streaming evaluation", ""]
    md.append(
        "`cfrec eval --protocol stream` replays a MIND-format log in time "
        "order. Each impression is scored by the model snapshot of its "
        "moment (the stream features, i.e. decayed clicks, shows and CTR of "
        "each item and a few user signals, combined with a ranker's score "
        "by a learned linear model), and then learned. So every score comes "
        "from a model that has seen only the past, as in serving. Metrics are "
        "MIND's per-impression AUC, MRR, nDCG@5 and nDCG@10, averaged over "
        "the impressions with at least one click and one non-click. The "
        "baselines score the same impressions at the same moments.")
    md.append("")
    walls = sum(r.get("wall_seconds", 0) for r in done)
    md.append(
        "Generated by `bench/stream_report.py` from %d runs cached in "
        "`stream_runs.jsonl` (one JSON line per run, with its command line "
        "as `run_key`), seeds %s, %s. Sum of the runs' wall times: %.0f s, "
        "two runs at a time on a 2-core machine.%s" % (
            len(done), ", ".join(map(str, args.seeds)),
            "config `%s`" % args.config if args.config else
            "cfrec's default stream settings (refresh every 200 events or "
            "10 minutes of event time, half-life 6 h, 24 curve buckets)",
            walls, provenance(done)))
    md.append("")
    md.append("**CPR against its base: see `CPR_STUDY.md`.** The CPR rows "
              "here come from the seeds above, with the settings of the "
              "binary that made the runs. Whether CPR helps, where "
              "and why is studied in `docs/results/CPR_STUDY.md` (oracle "
              "bounds, 10 to 30 seeds, paired 95% intervals; sections 13 "
              "and 16 for the real logs); where the two disagree, the study "
              "holds.")
    md.append("")
    md.append("## Commands")
    md.append("")
    commits = sorted({r.get("cfrec_commit", "") for r in done} - {""})
    md.append("```")
    if len(commits) == 1:
        md.append("git checkout %s && cmake --preset release && cmake --build "
                  "--preset release --target cfrec" % commits[0])
    md.append("build/release/app/cfrec " + " ".join(DATASETS["news"][2]))
    md.append(command_line(args) + " --resume --budget-minutes 40" + (
        " --cfrec-commit %s" % commits[0] if len(commits) == 1 else ""))
    md.append("python3 bench/stream_report.py --report-only")
    md.append("```")
    md.append("")
    md.append("The third line runs what `stream_runs.jsonl` lacks, two runs "
              "at a time, starts no run after 40 minutes, and writes this "
              "page; the fourth writes this page and its plots from "
              "`stream_runs.jsonl` alone.")
    md.append("")
    md.append("Each run is")
    md.append("")
    md.append("```")
    md.append("build/release/app/cfrec eval --data DATA --protocol stream "
              "--ranker R --intervention I --trainer default "
              "--stream-features on|off --seed S")
    md.append("build/release/app/cfrec eval --data DATA --protocol stream "
              "--ranker none --seed S        # the stream features alone")
    md.append("```")
    md.append("")
    md.append("with DATA one of " + ", ".join(
        "`%s`" % DATASETS[d][1] for d in args.datasets) + ". The exact "
        "command of every number is the `run_key` of its line in "
        "`stream_runs.jsonl`.")
    stopped = {(x["dataset_name"], x["ranker"], x["intervention"],
                "on" if x["stream_features"] else "off", x["seed"])
               for x in runs.failed}
    missing = [p for p in planned if p[1:] not in stopped and
               p[5] not in {x["seed"] for x in runs.get(*p[1:5])}]
    if runs.failed:
        md.append("")
        md.append("**Stopped or failed** (no numbers; `--resume` runs them "
                  "again): " + "; ".join(
                      "%s (%s%s, seed %d): exit %d after %.0f s%s" % (
                          label(r["ranker"], r["intervention"]),
                          SHORT[r["dataset_name"]],
                          "" if r["ranker"] == "none" else
                          " " + ("on" if r["stream_features"] else "off"),
                          r["seed"], r["failed"], r["wall_seconds"],
                          " (stopped: over the time budget)"
                          if r["failed"] == -15 else "")
                      for r in sorted(runs.failed, key=lambda x: x["run_key"])
                  ) + ".")
    if missing:
        md.append("")
        groups, total = {}, {}
        for _, d, r, i, f, s in planned:
            total[(r, i)] = total.get((r, i), 0) + 1
        for _, d, r, i, f, s in missing:
            groups.setdefault((r, i), []).append(
                "%s%s" % (SHORT[d], "" if r == "none" else " " + f))
        md.append("**Not run** (left out of the time budget, not failed; "
                  "`--resume` fills them in): " + "; ".join(
                      "%s (%s)" % (label(r, i), "every run" if len(v) ==
                                   total[(r, i)] else ", ".join(v))
                      for (r, i), v in groups.items()) + ".")

    summary_at = len(md)
    # Per data set.
    rows = [("none", "none")] + [(r, i) for r in RANKERS
                                 for i in INTERVENTIONS]
    ctr_names = [b for b in BASELINES if b.startswith("ctr_decayed")]
    summary = []
    for d in args.datasets:
        ds_runs = [x for k, v in runs.by.items() if k[0] == d for x in v]
        if not ds_runs:
            continue
        ds = ds_runs[0]["dataset"]
        md.append("")
        md.append("## " + DATASETS[d][0])
        md.append("")
        md.append("`%s`: %s impressions, %s users, %s items, %s clicks of "
                  "%s shown (click rate %.3f)." % (
                      (DATASETS[d][1],) + tuple("{:,}".format(ds[k]) for k in (
                          "rows", "users", "items", "clicks", "shown")) +
                      (ds["clicks"] / ds["shown"],)))
        md.append("")
        header = ("| Model | " + " | ".join(
            "%s on" % t for t, _ in METRICS) + " | " + " | ".join(
            "%s off" % t for t, _ in OFF_METRICS) + " |")
        md.append(header)
        md.append("|---" * (1 + len(METRICS) + len(OFF_METRICS)) + "|")
        best = None  # (auc, label, features)
        for r, i in rows:
            cells = []
            for _, m in METRICS:
                s = runs.metric(d, r, i, "on", m)
                cells.append(fmt(s))
                if m == "auc" and s and (best is None or s[0] > best[0]):
                    best = (s[0], label(r, i), "on", r, i)
            for _, m in OFF_METRICS:
                if r == "none":
                    cells.append("—")
                    continue
                s = runs.metric(d, r, i, "off", m)
                cells.append(fmt(s))
                if m == "auc" and s and (best is None or s[0] > best[0]):
                    best = (s[0], label(r, i), "off", r, i)
            if all(c in ("not run", "—") for c in cells):
                continue
            md.append("| %s | %s |" % (label(r, i), " | ".join(cells)))
        md.append("")
        md.append("\"on\": the ranker's score combined with the stream "
                  "features; \"off\": the ranker alone (an impression of a "
                  "user the ranker's snapshot does not know yet is ranked by "
                  "all-time clicks instead). CPR-X is X trained with CPR's "
                  "learned counterfactual policy, CPR-X-r with random "
                  "counterfactual lists. Mean ± std over seeds when there is "
                  "more than one.")
        md.append("")
        md.append("Baselines (same impressions, same moments):")
        md.append("")
        md.append("| Baseline | " + " | ".join(t for t, _ in METRICS) + " |")
        md.append("|---" * (1 + len(METRICS)) + "|")
        for b in BASELINES:
            md.append("| %s | %s |" % (BASELINE_LABEL[b], " | ".join(
                fmt(runs.baseline(d, b, m)) for _, m in METRICS)))
        on_aucs = [runs.metric(d, r, i, "on", "auc") for r, i in rows]
        on_aucs = [a[0] for a in on_aucs if a]
        best_ctr = max(ctr_names, key=lambda b: (runs.baseline(d, b, "auc")
                                                 or (-1,))[0])
        bc_auc = runs.baseline(d, best_ctr, "auc")
        bc_ndcg = runs.baseline(d, best_ctr, "ndcg@10")
        md.append("")
        if best:
            b_ndcg = runs.metric(d, best[3], best[4], best[2], "ndcg@10")
            md.append(
                "Best configuration by AUC: **%s, stream features %s**, AUC "
                "%.4f against the best decayed-CTR baseline (%s) %.4f: "
                "%+.4f (%+.1f%%); nDCG@10 %.4f against %.4f: %+.4f "
                "(%+.1f%%)." % (
                    best[1], best[2], best[0], BASELINE_LABEL[best_ctr],
                    bc_auc[0], best[0] - bc_auc[0],
                    100 * (best[0] - bc_auc[0]) / bc_auc[0], b_ndcg[0],
                    bc_ndcg[0], b_ndcg[0] - bc_ndcg[0],
                    100 * (b_ndcg[0] - bc_ndcg[0]) / bc_ndcg[0]))
            if len(on_aucs) > 1 and max(on_aucs) - min(on_aucs) < 0.002:
                md.append("All %d rows with stream features are within "
                          "%.4f AUC of each other, so which of them is "
                          "\"best\" is noise." % (
                              len(on_aucs), max(on_aucs) - min(on_aucs)))
            best_any = max(BASELINES, key=lambda b: (
                runs.baseline(d, b, "auc") or (-1,))[0])
            if best_any != best_ctr:
                ba = runs.baseline(d, best_any, "auc")
                md.append("")
                md.append(
                    "The best baseline overall is %s (AUC %.4f), not a "
                    "decayed CTR; the best configuration's AUC is %+.4f "
                    "(%+.1f%%) above it." % (
                        BASELINE_LABEL[best_any], ba[0], best[0] - ba[0],
                        100 * (best[0] - ba[0]) / ba[0]))
            cell = {}
            for key, (r, i, f) in (("alone", ("none", "none", "on")),
                                   ("bpr_on", ("bpr", "none", "on")),
                                   ("bpr_off", ("bpr", "none", "off")),
                                   ("cpr_on", ("bpr", "learned", "on")),
                                   ("best", best[3:5] + (best[2],))):
                cell[key] = (runs.metric(d, r, i, f, "auc"),
                             runs.metric(d, r, i, f, "ndcg@10"))
            cell["ctr"] = (bc_auc, bc_ndcg)
            best_any_ms = (runs.baseline(d, best_any, "auc"),
                           runs.baseline(d, best_any, "ndcg@10"))
            summary.append({"dataset": d, "cells": cell,
                            "best_ctr": best_ctr, "best_baseline": best_any,
                            "best_baseline_ms": best_any_ms,
                            "best": "%s, features %s" % (best[1], best[2])})
        # Returning and new users.
        md.append("")
        users = runs.get(d, "none", "none", "on") or ds_runs
        md.append(
            "With stream features: AUC on impressions of returning users "
            "(%s impressions of users seen earlier in the replay) and of new "
            "users (%s first impressions), and the weight of the ranker's "
            "score in the feature model at the end of the replay (the "
            "`ranker` entry of the run's `stream.weights`):" % (
                "{:,}".format(users[0]["metrics"]["returning_users"]
                              ["impressions"]),
                "{:,}".format(users[0]["metrics"]["new_users"]
                              ["impressions"])))
        md.append("")
        md.append("| Model | returning AUC | new AUC | ranker weight |")
        md.append("|---|---|---|---|")
        for r, i in rows:
            rs = runs.get(d, r, i, "on")
            if not rs:
                continue
            cells = [fmt(mean_std([x["metrics"][part]["auc"] for x in rs]))
                     for part in ("returning_users", "new_users")]
            cells.append("—" if r == "none" else fmt(mean_std(
                [x["stream"]["weights"]["ranker"] for x in rs]), 4))
            md.append("| %s | %s |" % (label(r, i), " | ".join(cells)))

    # Plots.
    md.append("")
    md.append("## Quality over time")
    md.append("")
    md.append("Each point is one time bucket of the replay (24 buckets of "
              "equal event time per data set), plotted at its middle; event "
              "time is the log's clock. Colours are the same in every "
              "figure here and in REPORT.md's: green the stream features "
              "alone, blue the base ranker, purple CPR-r, red CPR; solid "
              "lines are scored with stream features, dashed ones by the "
              "ranker alone; grey is the decayed-CTR baseline at the "
              "protocol's half-life, scored at the same moments. The first "
              "bucket starts from an empty model.%s" % overlap_note(
                  runs, args.datasets))
    md.append("")
    if plot_over_time(plt, out, runs, args.datasets, "auc",
                      "stream_auc_over_time", "AUC"):
        md.append("![AUC over event time](stream_auc_over_time.svg)")
        md.append("")
    if plot_over_time(plt, out, runs, args.datasets, "ndcg@10",
                      "stream_ndcg10_over_time", "nDCG@10"):
        md.append("![nDCG@10 over event time](stream_ndcg10_over_time.svg)")
        md.append("")
    for d in args.datasets:
        stem = "stream_rankers_%s" % d
        if plot_rankers(plt, out, runs, d, stem):
            md.append("![AUC over event time by ranker, %s](%s.svg)" % (
                d, stem))
            md.append("")
    md.append("PNG copies of every plot sit next to the SVGs.")

    # Time per run.
    md.append("")
    md.append("## Time per run")
    md.append("")
    md.append("Wall seconds per run (mean over the cached runs, features on "
              "and off together). Two runs shared the 2 cores, and other "
              "processes ran on the machine during part of the grid, so "
              "these are upper bounds and runs of the same kind vary up to "
              "threefold:")
    md.append("")
    md.append("| Model | " + " | ".join(SHORT[d] for d in args.datasets) +
              " |")
    md.append("|---" * (1 + len(args.datasets)) + "|")
    for r, i in rows:
        cells = []
        for d in args.datasets:
            w = [x["wall_seconds"] for f in ("on", "off")
                 for x in runs.get(d, r, i, f)]
            cells.append("%.1f" % statistics.fmean(w) if w else "not run")
        if all(c == "not run" for c in cells):
            continue
        md.append("| %s | %s |" % (label(r, i), " | ".join(cells)))

    md[summary_at:summary_at] = summary_table(summary) + (
        [""] + findings(runs, args.datasets))
    with open(os.path.join(out, "STREAMING.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    return summary


def main():
    root = repo_root()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfrec", default=os.environ.get(
        "CFREC", os.path.join(root, "build/release/app/cfrec")),
        type=os.path.abspath)
    parser.add_argument("--out", default=os.path.join(root, "docs/results"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS),
                        choices=list(DATASETS))
    parser.add_argument("--rankers", nargs="+", default=RANKERS,
                        choices=RANKERS)
    parser.add_argument("--config", default="",
                        help="JSON config passed to every run, relative to "
                        "the repository root (default: cfrec's defaults)")
    parser.add_argument("--cfrec-commit", default="",
                        help="the commit the cfrec binary was built from, "
                        "kept with each run and named in the report")
    parser.add_argument("--jobs", type=int, default=2,
                        help="runs at a time (default 2)")
    parser.add_argument("--budget-minutes", type=float, default=0,
                        help="start no run after this many minutes of wall "
                        "time (0: no limit)")
    parser.add_argument("--resume", action="store_true",
                        help="skip runs already in stream_runs.jsonl")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write the report from "
                        "stream_runs.jsonl")
    args = parser.parse_args()
    if args.config:
        args.config = os.path.relpath(os.path.abspath(args.config), root)
    path = os.path.join(args.out, "stream_runs.jsonl")
    cache = load_cache(path)
    if not args.report_only:
        if not os.access(args.cfrec, os.X_OK):
            sys.exit("cfrec binary not found at %s (use --cfrec or CFREC=)" %
                     args.cfrec)
        make_datasets(args)
        run_grid(args, cache, path)
    runs = Runs(cache, args.config, set(args.seeds))
    summary = write_report(args, runs, plan(args.datasets, args.seeds,
                                            args.rankers))
    for s in summary:
        print(json.dumps({
            "dataset": s["dataset"], "best": s["best"],
            "best_ctr": s["best_ctr"], "best_baseline": s["best_baseline"],
            "auc_ndcg10": {k: [v and round(v[0], 4) for v in ms]
                           for k, ms in s["cells"].items()}}))


if __name__ == "__main__":
    main()
