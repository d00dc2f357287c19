#!/usr/bin/env python3
"""Writes a synthetic MIND-format behaviors.tsv for bench/http_load.sh when
`cfrec synth` is not available: users U<i>, items N<j> with Zipf-like
popularity, lists of 10-40 items, about 4% of shown items clicked, one
impression per second of event time. Deterministic for a given --seed.

  bench/http_synth_log.py --out behaviors.tsv --users 50000 --items 20000 \
      --impressions 400000
"""
import argparse
import bisect
import datetime
import itertools
import random


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--users", type=int, default=50000)
    p.add_argument("--items", type=int, default=20000)
    p.add_argument("--impressions", type=int, default=400000)
    p.add_argument("--click-rate", type=float, default=0.04)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    rng = random.Random(a.seed)
    weights = [1.0 / (j + 1) ** 0.8 for j in range(a.items)]
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]

    def pick_item():
        return bisect.bisect_left(cumulative, rng.random() * total)

    start = datetime.datetime(2019, 11, 9, 0, 0, 0)
    with open(a.out, "w") as f:
        for i in range(a.impressions):
            user = rng.randrange(a.users)
            ts = start + datetime.timedelta(seconds=i)
            hour = ts.hour % 12 or 12
            when = (f"{ts.month}/{ts.day}/{ts.year} {hour}:{ts.minute:02d}:"
                    f"{ts.second:02d} {'AM' if ts.hour < 12 else 'PM'}")
            history = " ".join(
                f"N{pick_item()}" for _ in range(rng.randrange(0, 10)))
            shown = []
            seen = set()
            while len(shown) < rng.randrange(10, 41):
                item = pick_item()
                if item not in seen:
                    seen.add(item)
                    shown.append(item)
            labels = " ".join(
                f"N{item}-{1 if rng.random() < a.click_rate else 0}"
                for item in shown)
            f.write(f"{i + 1}\tU{user}\t{when}\t{history}\t{labels}\n")


if __name__ == "__main__":
    main()
