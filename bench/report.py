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

Standard library, plus matplotlib for the plots (Debian: python3-matplotlib).
`--cache-only` redraws the report and its plots from runs.jsonl without
running anything.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

from bench_common import load_cache, pyplot, run_key

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
#
# Small multiples: one panel per ranker, its base model, CPR-r and CPR in the
# same three colours in every figure, ItemPop and ItemKNN as grey references.

INTERVENTION_STYLE = {  # intervention -> (legend label, colour)
    "none": ("base model", "#1f77b4"),
    "random": ("CPR-r (random counterfactuals)", "#9467bd"),
    "learned": ("CPR (learned policy)", "#d62728"),
}
BASELINE_STYLE = {"itempop": ("ItemPop", "--"), "itemknn": ("ItemKNN", ":")}
GREY = "#8c8c8c"


def small_multiples(path, title, xlabel, ylabel, panels, references=()):
    """panels: [(ranker, [(intervention, [[(x, y), ...], ...]), ...])], one
    list of points per line (e.g. per seed); references: [(baseline ranker,
    [(x, y), ...])] drawn grey in every panel (a single point becomes a
    horizontal line). Writes path (SVG) and a PNG beside it."""
    panels = [(r, lines) for r, lines in panels
              if any(pts for _, runs in lines for pts in runs)]
    if not panels:
        return False
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator, MultipleLocator
    xmax = max(p[0] for _, lines in panels for _, runs in lines
               for pts in runs for p in pts)
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    spare = nrows * cols - len(panels)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.3 * cols,
                                                   2.6 * nrows + 0.5),
                             sharex=True, sharey=True, squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, (ranker, lines) in zip(flat, panels):
        for name, pts in references:
            ls = BASELINE_STYLE[name][1]
            if len(pts) == 1:
                ax.axhline(pts[0][1], color=GREY, lw=1.3, ls=ls, zorder=1)
            elif pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=GREY,
                        lw=1.3, ls=ls, zorder=1)
        for intervention, runs in lines:
            color = INTERVENTION_STYLE[intervention][1]
            for pts in runs:
                ax.plot([p[0] for p in pts], [p[1] for p in pts],
                        color=color, lw=1.2, alpha=0.85 if len(runs) == 1
                        else 0.6, marker="o", ms=2.2, zorder=2)
        ax.set_title(DISPLAY[ranker])
        ax.grid(color="#ebebeb", lw=0.6)
        ax.xaxis.set_major_locator(MultipleLocator(1) if xmax <= 12 else
                                   MaxNLocator(integer=True, nbins=6))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    for ax in flat[len(panels):]:
        ax.axis("off")
    for n, ax in enumerate(flat[:len(panels)]):
        if n + cols >= len(panels):  # no panel below: label the axis here
            ax.set_xlabel(xlabel)
            ax.xaxis.set_tick_params(labelbottom=True)
    for row in axes:
        row[0].set_ylabel(ylabel)
    shown = {i for _, lines in panels for i, runs in lines if runs}
    handles = [Line2D([], [], color=INTERVENTION_STYLE[i][1], marker="o",
                      ms=3, label=INTERVENTION_STYLE[i][0])
               for i in ("none", "random", "learned") if i in shown]
    handles += [Line2D([], [], color=GREY, ls=BASELINE_STYLE[n][1],
                       label=BASELINE_STYLE[n][0])
                for n, pts in references if pts]
    if spare:  # the legend fills the empty panel
        flat[-1].legend(handles=handles, loc="center", frameon=False)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
    else:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles),
                   frameon=False)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, metadata={"Date": None})
    fig.savefig(os.path.splitext(path)[0] + ".png", dpi=110,
                metadata={"Software": None})
    plt.close(fig)
    return True


def by_ranker(results, points):
    """[(ranker, [(intervention, [points(run), ...]), ...])] for the neural
    rankers, in RANKERS order."""
    panels = []
    for ranker in RANKERS:
        if ranker in BASELINES:
            continue
        lines = []
        for intervention in ("none", "random", "learned"):
            runs = [r for r in results if r["ranker"] == ranker and
                    r["intervention"] == intervention]
            lines.append((intervention, [p for p in map(points, runs) if p]))
        panels.append((ranker, lines))
    return panels


def window_means(results, metric):
    """Mean per window over seeds, x = window index."""
    if not results:
        return []
    n = min(len(r["windows"]) for r in results)
    return [(i + 1, statistics.fmean(r["windows"][i][metric]
                                     for r in results)) for i in range(n)]


def plot_prequential(path, title, results, metric, ylabel):
    panels = []
    for ranker, lines in by_ranker(results, lambda r: r):
        panels.append((ranker, [(i, [window_means(runs, metric)] if runs
                                 else []) for i, runs in lines]))
    references = [(b, window_means([r for r in results
                                    if r["ranker"] == b], metric))
                  for b in BASELINE_STYLE]
    return small_multiples(path, title, "window", ylabel, panels, references)


def plot_curves(path, title, results):
    """Validation NDCG@10 by epoch, one line per seed. The curves score the
    validation items as the protocol selects on (against all items when
    loo.all_items is on); ItemPop and ItemKNN, which have no epochs, are
    their validation NDCG@10 of the same kind, mean over seeds."""
    panels = by_ranker(results, lambda r: [(p["epoch"], p["valid_ndcg"])
                                           for p in r.get("curve") or []])
    references = []
    for b in BASELINE_STYLE:
        vals = []
        for r in results:
            if r["ranker"] != b:
                continue
            all_items = r["config"]["loo"].get("all_items", False)
            key = "valid_ndcg@10_all" if all_items else "valid_ndcg@10"
            if key in r["metrics"]:
                vals.append(r["metrics"][key])
        references.append((b, [(0, statistics.fmean(vals))] if vals else []))
    return small_multiples(path, title, "epoch", "validation NDCG@10",
                           panels, references)


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


# Whether CPR helps, where and why is decided in docs/results/CPR_STUDY.md
# (oracle bounds, 10-30 seeds, paired intervals); the few seeds of this
# report cannot overrule it.
CPR_STUDY_NOTICE = (
    "**CPR against its base: see `CPR_STUDY.md`.** This report's CPR rows "
    "come from a few seeds of `cfrec eval` with the settings of the binary "
    "that made its runs. Whether CPR helps, where and why is studied in "
    "`docs/results/CPR_STUDY.md` (oracle bounds, 10 to 30 seeds, paired 95% "
    "intervals, `python3 bench/cpr_study.py --study --resume`); where the "
    "two disagree, the study holds.")


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
    md.append(CPR_STUDY_NOTICE)
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
        md.append("")
        if plot_curves(os.path.join(out, "synthetic_curves.svg"),
                       "Validation NDCG@10 by epoch, non-linear d=16 (one "
                       "line per seed)", sel):
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
                if plot_prequential(os.path.join(out, fname),
                                    "Prequential %s per window, %s d=%d "
                                    "(mean over seeds)" % (
                                        (name,) + PREQUENTIAL_SETTING),
                                    synthetic_preq, metric, name):
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
            if plot_prequential(os.path.join(out, fname),
                                "Prequential %s per window, MIND (mean over "
                                "seeds)" % name, preq, metric, name):
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
