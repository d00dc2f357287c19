#!/usr/bin/env python3
"""Runs the evaluation grid with `cfrec synth` / `cfrec eval` and writes a
Markdown report with SVG plots.

Synthetic grid (CPR Table 1 layout): response linear / nonlinear x d = 16 / 32
x seeds; each seed draws a fresh data set (CPR section 4.1.1, eq. 12) and seeds
the evaluation. Real data (CPR Table 3 layout): a MIND behaviors.tsv, by
default ../shared/data/mind-small-subset/behaviors.tsv relative to the
repository root, under leave-one-out, the time split and prequential replay.

Every ranker x intervention is attempted; a ranker the binary does not provide
yet (`cfrec eval` exits with code 2) is listed as "not run". Nothing in the
report is typed in by hand: every number comes from a run's JSON line, and the
raw lines are kept next to the report (runs.jsonl).

Standard library only (no numpy or matplotlib needed).
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

RANKERS = ["itempop", "itemknn", "bpr", "gmf", "mlp", "neumf", "lightgcn"]
BASELINES = {"itempop", "itemknn"}
DISPLAY = {"itempop": "ItemPop", "itemknn": "ItemKNN", "bpr": "BPR",
           "gmf": "GMF", "mlp": "MLP", "neumf": "NeuMF",
           "lightgcn": "LightGCN"}
SETTINGS = [("linear", 16), ("linear", 32), ("nonlinear", 16),
            ("nonlinear", 32)]
UNAVAILABLE_EXIT = 2
# The synthetic setting also replayed prequentially (for the plots).
PREQUENTIAL_SETTING = ("nonlinear", 16)


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Progress:
    """A one-line progress bar on stderr when it is a terminal."""

    def __init__(self, total):
        self.total = max(total, 1)
        self.done = 0
        self.start = time.time()
        self.tty = sys.stderr.isatty()

    def step(self, label):
        self.done += 1
        if not self.tty:
            return
        width = 30
        filled = int(width * self.done / self.total)
        elapsed = time.time() - self.start
        sys.stderr.write("\r[%s%s] %d/%d %5.0fs %-50s" % (
            "#" * filled, " " * (width - filled), self.done, self.total,
            elapsed, label[:50]))
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def model_label(ranker, intervention):
    name = DISPLAY[ranker]
    if intervention == "learned":
        return "CPR-" + name
    if intervention == "random":
        return "CPR-%s-r" % name
    return name


def combos(rankers):
    out = []
    for r in rankers:
        for i in (["none"] if r in BASELINES else ["none", "random", "learned"]):
            out.append((r, i))
    return out


class Runner:
    def __init__(self, cfrec, config, log, cache=None, cache_only=False):
        self.cfrec = cfrec
        self.config = os.path.abspath(config) if config else ""
        self.log = log  # file of raw JSON lines
        self.unavailable = set()
        # --resume: earlier runs of the same command line, by run key.
        self.cache = cache or {}
        # --cache-only: runs not in the cache are left out, not run.
        self.cache_only = cache_only
        self.skipped = set()
        self.used = set()  # run keys this report asked for

    def synth(self, out_dir, seed, dim, response):
        cmd = [self.cfrec, "synth", "--out", out_dir, "--seed", str(seed),
               "--dim", str(dim), "--response", response]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def simulate(self, data, out_dir, seed, term, strength):
        cmd = [self.cfrec, "simulate", "--data", data, "--out", out_dir,
               "--seed", str(seed), "--exposure-term", term,
               "--exposure-strength", str(strength)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def eval(self, data, ranker, intervention, protocol, seed, tags,
             trainer="default", config=None):
        """Returns the parsed JSON line, or None when the ranker is missing."""
        if (ranker, intervention) in self.unavailable:
            return None
        data = os.path.relpath(data, repo_root())
        cmd = [self.cfrec, "eval", "--data", data, "--ranker", ranker,
               "--intervention", intervention, "--protocol", protocol,
               "--seed", str(seed), "--trainer", trainer]
        config = self.config if config is None else config
        if config:
            cmd += ["--config", os.path.relpath(config, repo_root())]
        key = run_key(cmd[2:], config)
        self.used.add(key)
        if key in self.cache:
            return self.cache[key]  # already in the log (see main)
        if self.cache_only:
            self.skipped.add((ranker, intervention))
            return None
        start = time.time()
        # Relative paths from the repository root keep machine paths out of
        # the committed JSON lines.
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              cwd=repo_root())
        wall = time.time() - start
        if proc.returncode == UNAVAILABLE_EXIT:
            self.unavailable.add((ranker, intervention))
            return None
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (
                " ".join(cmd), proc.returncode, proc.stderr.strip()))
        line = proc.stdout.strip().splitlines()[-1]
        result = json.loads(line)
        result["wall_seconds"] = wall
        result["tags"] = tags
        result["run_key"] = key
        self.log.write(json.dumps(result) + "\n")
        self.log.flush()
        return result


def run_key(argv, config):
    """The command line of a run (without the binary) and the content of its
    config file, as a cache key."""
    text = ""
    if config:
        with open(config) as f:
            text = json.dumps(json.load(f), sort_keys=True)
    return " ".join(argv) + " " + text


def load_cache(path):
    cache = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if "run_key" in r:
                    cache[r["run_key"]] = r
    return cache


# ----------------------------------------------------------------- tables

def mean_std(values):
    """(mean, std, n) or None."""
    if not values:
        return None
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return m, s, len(values)


def fmt(ms):
    if ms is None:
        return "not run"
    if ms[2] == 1:
        return "%.4f (1 seed)" % ms[0]
    return "%.4f ± %.4f" % ms[:2]


def lift(cpr, base):
    if cpr is None or base is None or base[0] == 0:
        return ""
    return " (%+.1f%%)" % (100.0 * (cpr[0] - base[0]) / base[0])


def collect(results, key):
    return [r["metrics"][key] for r in results if key in r["metrics"]]


def table(rows_spec, columns, cell):
    """rows_spec: [(label, ranker, intervention)]; columns: [(title, ...)]."""
    header = "| Model | " + " | ".join(c[0] for c in columns) + " |"
    sep = "|---" * (len(columns) + 1) + "|"
    lines = [header, sep]
    for label, ranker, intervention in rows_spec:
        cells = [cell(ranker, intervention, c) for c in columns]
        lines.append("| %s | %s |" % (label, " | ".join(cells)))
    return "\n".join(lines)


def comparisons(rankers, stats, columns, where):
    """Sentences on every cell where CPR or CPR-r is not above its base."""
    notes = []
    for r in rankers:
        if r in BASELINES:
            continue
        for c in columns:
            base = stats(r, "none", c)
            for intervention in ("random", "learned"):
                other = stats(r, intervention, c)
                if other is None or base is None:
                    continue
                if other[0] <= base[0]:
                    notes.append("- %s: %s %s %.4f does not beat %s %.4f." % (
                        where, c[0], model_label(r, intervention), other[0],
                        DISPLAY[r], base[0]))
    return notes


def verdict(notes, results):
    if notes:
        return "Where CPR or CPR-r does not beat its base model:\n\n" + \
            "\n".join(notes)
    if not any(r["intervention"] != "none" for r in results):
        return ("CPR versus its base model: CPR was not run, so this table "
                "says nothing about whether it helps.")
    return "CPR and CPR-r beat their base model in every cell of this table."


def selected_before_cf(results, where):
    """Sentences on CPR runs whose selected model is their base model's: the
    validation peak came before counterfactual samples entered training
    (cf_start_epoch), so the CPR row repeats the base row."""
    base = {}
    for r in results:
        if r["intervention"] == "none" and r.get("trainer", "default") == \
                "default":
            base[(r["data"], r["ranker"], r["protocol"], r["seed"])] = r
    groups = {}
    for r in results:
        if r["intervention"] == "none" or "best_epoch" not in r:
            continue
        b = base.get((r["data"], r["ranker"], r["protocol"], r["seed"]))
        if b is None:
            continue
        same = all(r["metrics"].get(k) == v for k, v in b["metrics"].items()
                   if not k.startswith("valid_"))
        key = (r["ranker"], r["intervention"], r["protocol"])
        g = groups.setdefault(key, [0, 0, set()])
        g[1] += 1
        if same:
            g[0] += 1
            g[2].add(r["best_epoch"])
    notes = []
    for (ranker, intervention, protocol), (same, total, epochs) in sorted(
            groups.items()):
        if same:
            notes.append(
                "- %s, %s %s: in %d of %d runs validation peaked at epoch "
                "%s, before counterfactual samples enter training "
                "(`cf_start_epoch`, default 3), so the selected model and "
                "its test metrics are %s's." % (
                    model_label(ranker, intervention), where, protocol, same,
                    total, "/".join(map(str, sorted(epochs))),
                    model_label(ranker, "none")))
    if not notes:
        return ""
    return ("CPR rows that repeat their base row:\n\n" + "\n".join(notes))


# ------------------------------------------------------------------ plots

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f"]


def svg_lines(path, title, xlabel, ylabel, series):
    """series: [(name, [(x, y), ...])]. Writes a self-contained SVG."""
    width, height = 640, 400
    left, right, top, bottom = 70, 170, 40, 50
    points = [p for _, pts in series for p in pts]
    if not points:
        return False
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    pad = (y1 - y0) * 0.05 or 0.05
    y0, y1 = y0 - pad, y1 + pad
    pw, ph = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return top + ph - (y - y0) / (y1 - y0) * ph

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="14">%s</text>' % (left, title),
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (
               left, top + ph, left + pw, top + ph),
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (
               left, top, left, top + ph)]
    for t in range(5):
        yv = y0 + (y1 - y0) * t / 4
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                   % (left, sy(yv), left + pw, sy(yv)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%.3f</text>' % (
            left - 5, sy(yv) + 4, yv))
        xv = x0 + (x1 - x0) * t / 4
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%.3g</text>' % (
            sx(xv), top + ph + 18, xv))
    out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % (
        left + pw / 2, height - 10, xlabel))
    out.append('<text x="15" y="%d" transform="rotate(-90 15 %d)" '
               'text-anchor="middle">%s</text>' % (
                   top + ph / 2, top + ph / 2, ylabel))
    for n, (name, pts) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        coords = " ".join("%.1f,%.1f" % (sx(x), sy(y)) for x, y in pts)
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" '
                   'points="%s"/>' % (color, coords))
        for x, y in pts:
            out.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>' % (
                sx(x), sy(y), color))
        ly = top + 15 + 18 * n
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" '
                   'stroke-width="2"/>' % (left + pw + 10, ly, left + pw + 30,
                                           ly, color))
        out.append('<text x="%d" y="%d">%s</text>' % (left + pw + 35, ly + 4,
                                                      name))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return True


def prequential_series(results, metric):
    """Mean per window over seeds, x = window index."""
    by_model = {}
    for r in results:
        label = model_label(r["ranker"], r["intervention"])
        by_model.setdefault(label, []).append(r["windows"])
    series = []
    for label, runs in by_model.items():
        n = min(len(w) for w in runs)
        pts = [(i + 1, statistics.fmean(w[i][metric] for w in runs))
               for i in range(n)]
        series.append((label, pts))
    return series


def curve_series(results, metric):
    series = []
    for r in results:
        if r.get("curve"):
            label = "%s s%d" % (model_label(r["ranker"], r["intervention"]),
                                r["seed"])
            series.append((label, [(p["epoch"], p[metric]) for p in r["curve"]]))
    return series


# ------------------------------------------------------------------- main

def main():
    root = repo_root()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfrec", default=os.environ.get(
        "CFREC", os.path.join(root, "build/release/app/cfrec")),
        type=os.path.abspath)
    parser.add_argument("--out", default=os.path.join(root, "docs/results"))
    parser.add_argument("--work", default=os.path.join(root, "build/report"),
                        help="where generated data sets go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rankers", nargs="+", default=RANKERS,
                        choices=RANKERS)
    parser.add_argument("--mind", default=os.path.join(
        root, "../shared/data/mind-small-subset/behaviors.tsv"),
        help="MIND behaviors.tsv for the real-data tables")
    parser.add_argument("--config", default=os.path.join(
        root, "bench/report_config.json"),
        help="JSON config passed to every cfrec eval (default: "
        "bench/report_config.json; empty for cfrec's defaults)")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-mind", action="store_true")
    parser.add_argument("--skip-acl", action="store_true")
    parser.add_argument("--settings", nargs="+", default=None,
                        help="synthetic settings RESPONSE:DIM to run "
                        "(default: all four)")
    parser.add_argument("--cache-only", action="store_true",
                        help="run nothing: report the runs in "
                        "OUT/runs.jsonl, listing the rest as not run")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the runs in OUT/runs.jsonl whose command "
                        "line matches instead of running them again")
    parser.add_argument("--mind-seeds", type=int, nargs="+", default=None,
                        help="seeds of the MIND runs (default: --seeds)")
    parser.add_argument("--mind-rankers", nargs="+", default=None,
                        choices=RANKERS,
                        help="rankers of the MIND runs (default: --rankers)")
    parser.add_argument("--mind-protocols", nargs="+", default=[
        "loo", "impressions", "prequential"],
        choices=["loo", "impressions", "prequential"])
    parser.add_argument("--mind-config", default=os.path.join(
        root, "bench/report_mind_config.json"),
        help="JSON config of the MIND runs (default: "
        "bench/report_mind_config.json; empty for --config)")
    parser.add_argument("--prune", action="store_true",
                        help="drop the runs of OUT/runs.jsonl that this "
                        "report does not use (other configs, rankers or "
                        "seeds) instead of keeping them")
    args = parser.parse_args()
    args.mind_seeds = args.mind_seeds or args.seeds
    args.mind_config = args.mind_config or args.config
    settings = SETTINGS
    if args.settings:
        settings = []
        for spec in args.settings:
            response, _, dim = spec.partition(":")
            if (response, int(dim or 0)) not in SETTINGS:
                sys.exit("--settings: %s is not one of %s" % (spec, ", ".join(
                    "%s:%d" % x for x in SETTINGS)))
            settings.append((response, int(dim)))
    args.mind_rankers = args.mind_rankers or args.rankers

    if not os.access(args.cfrec, os.X_OK):
        sys.exit("cfrec binary not found at %s (use --cfrec or CFREC=)" %
                 args.cfrec)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    mind = os.path.normpath(args.mind)
    do_mind = not args.skip_mind and os.path.exists(mind)
    grid = combos(args.rankers)
    total = 0
    if not args.skip_synthetic:
        total += len(args.seeds) * (len(settings) * (len(grid) + 1) +
                                    len(grid))
    mind_grid = combos(args.mind_rankers)
    if do_mind:
        total += len(args.mind_protocols) * len(args.mind_seeds) * \
            len(mind_grid)
    if not args.skip_acl:
        total += len(args.seeds) * (1 + len(ACL_VARIANTS))
    progress = Progress(total)
    runs_path = os.path.join(args.out, "runs.jsonl")
    cache = load_cache(runs_path) if args.resume or args.cache_only else {}
    log = open(runs_path, "w")
    # The log keeps every earlier run, whether this invocation uses it or
    # not; new runs are appended.
    for r in cache.values():
        log.write(json.dumps(r) + "\n")
    log.flush()
    runner = Runner(args.cfrec, args.config, log, cache, args.cache_only)
    started = time.time()
    synthetic = []   # leave-one-out results
    synthetic_preq = []  # prequential results on PREQUENTIAL_SETTING
    real = []
    if not args.skip_synthetic:
        for response, dim in settings:
            for seed in args.seeds:
                data_dir = os.path.join(args.work, "synth_%s_d%d_s%d" % (
                    response, dim, seed))
                if not args.cache_only:
                    runner.synth(data_dir, seed, dim, response)
                progress.step("synth %s d=%d seed %d" % (response, dim, seed))
                data = os.path.join(data_dir, "behaviors.tsv")
                protocols = ["loo"]
                if (response, dim) == PREQUENTIAL_SETTING:
                    protocols.append("prequential")
                for protocol in protocols:
                    for ranker, intervention in grid:
                        r = runner.eval(data, ranker, intervention, protocol,
                                        seed, {"response": response,
                                               "dim": dim})
                        if r:
                            (synthetic if protocol == "loo" else
                             synthetic_preq).append(r)
                        progress.step("%s d=%d s%d %s %s" % (
                            response, dim, seed, protocol,
                            model_label(ranker, intervention)))
    acl = run_acl(args, runner, progress)
    if do_mind:
        for protocol in args.mind_protocols:
            for seed in args.mind_seeds:
                for ranker, intervention in mind_grid:
                    r = runner.eval(mind, ranker, intervention, protocol, seed,
                                    {"data": "mind"}, config=args.mind_config)
                    if r:
                        real.append(r)
                    progress.step("mind %s s%d %s" % (
                        protocol, seed, model_label(ranker, intervention)))
    log.close()
    if args.prune:
        kept = [r for r in load_cache(runs_path).values()
                if r["run_key"] in runner.used]
        with open(runs_path, "w") as f:
            for r in kept:
                f.write(json.dumps(r) + "\n")
    elapsed = time.time() - started
    write_report(args, grid, synthetic, synthetic_preq, real,
                 runner.unavailable, do_mind, mind, elapsed, acl, mind_grid,
                 runner.skipped)


# ACL appendix A.6.3-A.6.4: base GMF at dimension d and 2d (the appendix
# doubles the base model's hidden size), the propensity-score two-stage
# baseline and ACL, on a semi-synthetic log whose exposure adds an item term.
ACL_DIM = 32
ACL_VARIANTS = [  # (label, trainer, dim)
    ("GMF (d=%d)" % ACL_DIM, "default", ACL_DIM),
    ("GMF (d=%d, doubled)" % (2 * ACL_DIM), "default", 2 * ACL_DIM),
    ("PS-GMF", "ps", ACL_DIM),
    ("ACL-GMF", "acl", ACL_DIM),
]
ACL_EXPOSURE = ("item", 1.5)


def acl_config(work, dim):
    path = os.path.join(work, "acl_gmf_d%d.json" % dim)
    with open(path, "w") as f:
        json.dump({"models": {"gmf": {
            "lr": 0.003, "batch_size": 1024, "dim": dim, "exposure_dim": 32,
            "train_sems": False, "weight_decay": 0.0001, "epochs": 15}}}, f)
    return path


def run_acl(args, runner, progress):
    """Base vs PS vs ACL on `cfrec simulate` logs built from CPR synthetic
    data (one per seed); leave-last-two-out."""
    results = []
    if args.skip_acl:
        return results
    configs = {d: acl_config(args.work, d) for _, _, d in ACL_VARIANTS}
    for seed in args.seeds:
        src = os.path.join(args.work, "acl_synth_s%d" % seed)
        sim = os.path.join(args.work, "acl_sim_s%d" % seed)
        if not args.cache_only:
            runner.synth(src, seed, 16, "linear")
            runner.simulate(os.path.join(src, "behaviors.tsv"), sim, seed,
                            *ACL_EXPOSURE)
        progress.step("acl synth seed %d" % seed)
        for label, trainer, dim in ACL_VARIANTS:
            r = runner.eval(os.path.join(sim, "behaviors.tsv"), "gmf", "none",
                            "loo", seed, {"acl": label}, trainer=trainer,
                            config=configs[dim])
            if r:
                results.append(r)
            progress.step("acl seed %d %s" % (seed, label))
    return results


def write_acl(md, args, acl):
    if not acl:
        return
    md.append("")
    md.append("## ACL: base vs propensity scores vs adversarial (ACL "
              "appendix A.6.3-A.6.4)")
    md.append("")
    md.append("Data: per seed, `cfrec synth --seed S --dim 16 --response "
              "linear`, then `cfrec simulate --exposure-term %s "
              "--exposure-strength %s` (A.6.3: relevance and exposure models "
              "fitted on the log, clicks regenerated with an added exposure "
              "term). Leave-last-two-out (A.6.2), GMF as f and g, 15 epochs, "
              "model selection on validation; mean ± std over seeds %s. "
              "Config: `build/report/acl_gmf_d*.json` as written by "
              "`bench/report.py`." % (ACL_EXPOSURE[0], ACL_EXPOSURE[1],
                                      ", ".join(map(str, args.seeds))))
    md.append("")
    md.append("| Model | HR@10 | NDCG@10 | AUC |")
    md.append("|---|---|---|---|")
    stats = {}
    for label, _, _ in ACL_VARIANTS:
        sel = [r for r in acl if r["tags"]["acl"] == label]
        stats[label] = [mean_std(collect(sel, m))
                        for m in ("hr@10", "ndcg@10", "auc")]
        md.append("| %s | %s |" % (label, " | ".join(fmt(x) for x in
                                                     stats[label])))
    base = stats[ACL_VARIANTS[0][0]]
    notes = []
    for label in ("PS-GMF", "ACL-GMF"):
        for name, ms, b in zip(("HR@10", "NDCG@10", "AUC"), stats[label],
                               base):
            if ms is not None and b is not None and ms[0] <= b[0]:
                notes.append("- %s %s %.4f does not beat the base GMF's "
                             "%.4f." % (label, name, ms[0], b[0]))
    md.append("")
    if notes:
        md.append("Where PS or ACL does not beat the base model:")
        md.append("")
        md.extend(notes)
    else:
        md.append("PS and ACL beat the base model in every column.")
    md.append("")
    md.append("Leave-last-two-out scores the next logged click, which the "
              "same biased exposure produced, so a debiased ranker is not "
              "expected to win there; docs/ACL.md has the preference-recovery "
              "test, which scores against the true relevance instead.")


def write_report(args, grid, synthetic, synthetic_preq, real, unavailable,
                 do_mind, mind, elapsed, acl, mind_grid, skipped=()):
    out = args.out
    md = ["# cfrec evaluation report", ""]
    used = synthetic + synthetic_preq + real + acl
    md.append("Generated by `bench/report.py` from %d runs of `cfrec eval` "
              "(seeds %s); raw JSON lines in `runs.jsonl`. Sum of the runs' "
              "wall times: %.0f s on a 2-core machine." % (
                  len(used), ", ".join(map(str, args.seeds)),
                  sum(r.get("wall_seconds", 0) for r in used)))
    md.append("")
    if unavailable:
        names = sorted({model_label(r, i) for r, i in unavailable})
        md.append("**Not run** (the binary answered \"not available yet\"): "
                  + ", ".join(names) + ". Their rows read \"not run\"; no "
                  "statement about CPR versus its base model can be made "
                  "from this report for them.")
        md.append("")
    if skipped:
        names = sorted({model_label(r, i) for r, i in skipped})
        md.append("**Partly not run** (left out of this report's compute "
                  "budget, not failed): " + ", ".join(names) + ". Their "
                  "cells read \"not run\" where no run exists; the per-run "
                  "times below say what they cost.")
        md.append("")
    rows_spec = [(model_label(r, i), r, i) for r, i in grid]

    if synthetic:
        def stats(ranker, intervention, col, suffix=""):
            _, response, dim, metric = col
            sel = [r for r in synthetic if r["ranker"] == ranker and
                   r["intervention"] == intervention and
                   r["tags"]["response"] == response and
                   r["tags"]["dim"] == dim]
            return mean_std(collect(sel, metric + suffix))

        md.append("## Synthetic data (CPR Table 1 layout)")
        md.append("")
        md.append("CPR section 4.1.1 generator: 600 users, 300 items, 25 lists "
                  "of 5 per user, noise 0. Leave-one-out; mean ± std over "
                  "seeds, each seed a new data set. Relative lift of CPR-X "
                  "over X in parentheses.")
        md.append("")
        md.append("| Setting | clicks / shown | users held out (of 600) |")
        md.append("|---|---|---|")
        for response, dim in SETTINGS:
            sel = {x["seed"]: x for x in synthetic
                   if x["tags"]["response"] == response and
                   x["tags"]["dim"] == dim}
            if not sel:
                continue
            rate = mean_std([x["dataset"]["clicks"] / x["dataset"]["shown"]
                             for x in sel.values()])
            held = mean_std([x["metrics"]["test_users"] for x in sel.values()])
            md.append("| %s d=%d | %.4f ± %.4f | %.0f ± %.0f |" % (
                response, dim, rate[0], rate[1], held[0], held[1]))
        for suffix, title in (("", "Ranked against 100 sampled "
                                   "never-interacted items (paper protocol)"),
                              ("_all", "Ranked against all never-interacted "
                                       "items")):
            columns = []
            for response, dim in SETTINGS:
                for metric in ("hr@10", "ndcg@10"):
                    columns.append(("%s d=%d %s" % (
                        "Lin" if response == "linear" else "Non-lin", dim,
                        metric.upper().replace("@", "@")), response, dim,
                        metric))

            def cell(ranker, intervention, col, suffix=suffix):
                s = stats(ranker, intervention, col, suffix)
                text = fmt(s)
                if intervention == "learned":
                    text += lift(s, stats(ranker, "none", col, suffix))
                return text

            md.append("")
            md.append("### " + title)
            md.append("")
            md.append(table(rows_spec, columns, cell))
            notes = comparisons(
                args.rankers,
                lambda r, i, c, suffix=suffix: stats(r, i, c, suffix),
                columns, "synthetic" + (" (all items)" if suffix else ""))
            md.append("")
            md.append(verdict(notes, synthetic))
        repeated = selected_before_cf(synthetic, "synthetic")
        if repeated:
            md.append("")
            md.append(repeated)
        md.append("")
        md.append("### Time per run (synthetic, leave-one-out)")
        md.append("")
        md.append("| Model | mean wall s | max wall s |")
        md.append("|---|---|---|")
        for label, r, i in rows_spec:
            walls = [x["wall_seconds"] for x in synthetic
                     if x["ranker"] == r and x["intervention"] == i]
            if walls:
                md.append("| %s | %.2f | %.2f |" % (label,
                                                   statistics.fmean(walls),
                                                   max(walls)))
            else:
                md.append("| %s | not run | not run |" % label)
        sel = [x for x in synthetic if x["tags"]["response"] == "nonlinear"
               and x["tags"]["dim"] == 16]
        curves = curve_series(sel, "valid_ndcg")
        md.append("")
        if curves and svg_lines(os.path.join(out, "synthetic_curves.svg"),
                                "Validation NDCG@10 by epoch (non-linear, "
                                "d=16)", "epoch", "NDCG@10", curves):
            md.append("![learning curves](synthetic_curves.svg)")
        else:
            md.append("No learning curves: none of the rankers that ran "
                      "trains in epochs (ItemPop and ItemKNN are closed-form).")
        if synthetic_preq:
            md.append("")
            md.append("Prequential replay of the %s d=%d data (10 windows, "
                      "test then train; mean over seeds):" %
                      PREQUENTIAL_SETTING)
            md.append("")
            for metric, name in (("auc", "AUC"), ("ndcg@10", "nDCG@10")):
                fname = "synthetic_prequential_%s.svg" % metric.replace("@", "")
                if svg_lines(os.path.join(out, fname),
                             "Prequential %s per window, %s d=%d" % (
                                 (name,) + PREQUENTIAL_SETTING),
                             "window", name,
                             prequential_series(synthetic_preq, metric)):
                    md.append("![prequential %s](%s)" % (name, fname))
                    md.append("")

    write_acl(md, args, acl)
    if real:
        rows_spec = [(model_label(r, i), r, i) for r, i in mind_grid]
        md.append("")
        md.append("## Real data (CPR Table 3 layout)")
        md.append("")
        shown = os.path.relpath(mind, repo_root())
        ds = real[0]["dataset"]
        md.append("Data: `%s` (%d impressions, %d users, %d items, %d clicks "
                  "of %d shown)." % (shown, ds["rows"], ds["users"],
                                     ds["items"], ds["clicks"], ds["shown"]))
        md.append("")
        sampled_only = not any("hr@10_all" in r["metrics"] for r in real
                               if r["protocol"] == "loo")
        md.append("Seeds %s; config `%s`.%s Cells that read \"not run\" "
                  "were left out of this report's compute budget, not "
                  "failed." % (
                      ", ".join(map(str, args.mind_seeds)),
                      os.path.relpath(args.mind_config, repo_root())
                      if args.mind_config else "defaults",
                      " Leave-one-out selects and tests on 100 sampled "
                      "negatives only: ranking all %d items for every user "
                      "after every epoch was most of a run's cost." %
                      ds["items"] if sampled_only else ""))

        def rstats(ranker, intervention, col, protocol="loo"):
            metric = col[1]
            sel = [r for r in real if r["ranker"] == ranker and
                   r["intervention"] == intervention and
                   r["protocol"] == protocol]
            return mean_std(collect(sel, metric))

        loo_cols = [("HR@10", "hr@10"), ("NDCG@10", "ndcg@10")]
        # Ranking against the whole catalog is a config choice (loo
        # all_items); show it only when the runs computed it.
        if any("hr@10_all" in r["metrics"] for r in real
               if r["protocol"] == "loo"):
            loo_cols += [("HR@10 all", "hr@10_all"),
                         ("NDCG@10 all", "ndcg@10_all")]

        def loo_cell(ranker, intervention, col):
            s = rstats(ranker, intervention, col)
            text = fmt(s)
            if intervention == "learned":
                text += lift(s, rstats(ranker, "none", col))
            return text

        md.append("")
        md.append("### Leave-one-out")
        md.append("")
        md.append(table(rows_spec, loo_cols, loo_cell))
        split = [r["train"] for r in real if r["protocol"] == "loo" and
                 "impressions" in r.get("train", {})]
        if split:
            md.append("")
            md.append(
                "The leave-one-out training split keeps %d of the %d "
                "impression lists (and %d positives, mostly History "
                "clicks): the list that holds a user's validation click and "
                "every later list of that user leave training, and most "
                "users of this log have one impression. CPR's p_R and p_S learn from those lists "
                "only." % (split[0]["impressions"], ds["rows"],
                           split[0]["positives"]))
        imp_cols = [("AUC", "auc"), ("MRR", "mrr"), ("nDCG@5", "ndcg@5"),
                    ("nDCG@10", "ndcg@10")]
        for protocol, title in (("impressions", "Impression ranking on the "
                                 "last 20% of time (MIND metrics)"),
                                ("prequential", "Prequential (test, then "
                                 "train) over 10 windows")):
            def imp_cell(ranker, intervention, col, protocol=protocol):
                s = rstats(ranker, intervention, col, protocol)
                text = fmt(s)
                if intervention == "learned":
                    text += lift(s, rstats(ranker, "none", col, protocol))
                return text
            md.append("")
            md.append("### " + title)
            md.append("")
            md.append(table(rows_spec, imp_cols, imp_cell))
        notes = []
        for protocol, cols in (("loo", loo_cols), ("impressions", imp_cols),
                               ("prequential", imp_cols)):
            notes += comparisons(
                args.mind_rankers,
                lambda r, i, c, protocol=protocol: rstats(r, i, c, protocol),
                cols, "MIND " + protocol)
        md.append("")
        md.append(verdict(notes, real))
        repeated = selected_before_cf(real, "MIND")
        if repeated:
            md.append("")
            md.append(repeated)
        # Coldness (CPR Table 4 layout).
        md.append("")
        md.append("### Coldness of the test item (CPR Table 4 layout, "
                  "leave-one-out, 100 negatives)")
        md.append("")
        md.append("| Model | Low HR@10 | Low NDCG@10 | Middle HR@10 | "
                  "Middle NDCG@10 | High HR@10 | High NDCG@10 |")
        md.append("|---|---|---|---|---|---|---|")
        for label, r, i in rows_spec:
            sel = [x for x in real if x["ranker"] == r and
                   x["intervention"] == i and x["protocol"] == "loo"]
            cells = []
            for bucket in ("low", "middle", "high"):
                for metric in ("hr@10", "ndcg@10"):
                    vals = [x["coldness"][bucket][metric] for x in sel
                            if x["coldness"][bucket]["count"] > 0]
                    cells.append(fmt(mean_std(vals)))
            md.append("| %s | %s |" % (label, " | ".join(cells)))
        counts = [x["coldness"] for x in real if x["protocol"] == "loo"]
        if counts:
            c = counts[0]
            md.append("")
            md.append("Test users per bucket: low %d, middle %d, high %d." % (
                c["low"]["count"], c["middle"]["count"], c["high"]["count"]))
        preq = [x for x in real if x["protocol"] == "prequential"]
        md.append("")
        for metric, name in (("auc", "AUC"), ("ndcg@10", "nDCG@10")):
            fname = "mind_prequential_%s.svg" % metric.replace("@", "")
            if svg_lines(os.path.join(out, fname),
                         "Prequential %s per window (mean over seeds)" % name,
                         "window", name, prequential_series(preq, metric)):
                md.append("![prequential %s](%s)" % (name, fname))
                md.append("")
    elif not args.skip_mind:
        md.append("")
        md.append("## Real data")
        md.append("")
        md.append("Not run: no MIND behaviors.tsv at `%s`." % args.mind)

    with open(os.path.join(out, "REPORT.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print(json.dumps({"tool": "bench/report.py", "report":
                      os.path.join(out, "REPORT.md"),
                      "runs": len(synthetic) + len(synthetic_preq) + len(real)
                      + len(acl),
                      "not_run": sorted("%s/%s" % x for x in unavailable),
                      "seconds": round(elapsed, 1)}))


if __name__ == "__main__":
    main()
