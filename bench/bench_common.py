"""What bench/report.py and bench/stream_report.py share: the cache of runs
(one JSON line per run, keyed by its command line and config) and the
matplotlib setup of the report figures."""
import json
import os
import sys


def run_key(argv, config_path):
    """The command line of a run (without the binary) and the content of its
    config file (`config_path`, or None), as a cache key."""
    text = ""
    if config_path:
        with open(config_path) as f:
            text = json.dumps(json.load(f), sort_keys=True)
    return " ".join(argv) + " " + text


def load_cache(path):
    """run_key -> result, from a jsonl file of runs (absent: empty)."""
    cache = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                if "run_key" in r:
                    cache[r["run_key"]] = r
    return cache


def pyplot():
    """matplotlib.pyplot with the report's style (SVG text as text, stable
    ids so unchanged plots diff empty), or a clear exit without it."""
    try:
        import matplotlib
    except ImportError:
        sys.exit("the plots need matplotlib: apt-get install "
                 "python3-matplotlib, and run this with the python3 it "
                 "installs into (/usr/bin/python3)")
    matplotlib.use("Agg")
    matplotlib.rcParams.update({
        "svg.hashsalt": "cfrec",
        "svg.fonttype": "none",
        "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8,
        "axes.spines.top": False, "axes.spines.right": False,
    })
    import matplotlib.pyplot as plt
    return plt
