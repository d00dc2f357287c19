#!/usr/bin/env python3
"""How far item statistics can take a scorer on a MIND-format log.

Scores every impression's items by statistics that no streaming scorer can
have, because they use the future, and prints MIND's mean impression AUC and
nDCG@10 for each as one JSON line:

  ctr_hindsight          each item's CTR over the whole log, past and future,
                         without the scored list itself ((c + 0.1) / (s + 3));
  ctr_two_sided_<H>h     the same, every other impression weighted by
                         exp(-|dt| / tau) with half-life H on both sides
                         (what the item's CTR was around that moment);
  ctr_past_<H>h          the one-sided (past only) decayed CTR, as the
                         streaming baselines of `cfrec eval --protocol
                         stream` compute it, for reference;
  history_cooc           personalisation from the users' MIND histories in
                         hindsight: the candidate's clickers (anywhere in the
                         log) whose histories overlap the user's
                         (cosine of the history sets);
  best_two_sided_plus_cooc  the best of log(two-sided 6 h CTR) + w *
                         log(1 + 10 * history_cooc) over w.

Usage: python3 bench/item_ceiling.py BEHAVIORS.tsv
"""
import collections
import datetime
import json
import math
import sys


def read(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 5:
                continue
            t = datetime.datetime.strptime(
                p[2], "%m/%d/%Y %I:%M:%S %p").timestamp()
            items, labels = [], []
            for x in p[4].split():
                i, l = x.rsplit("-", 1)
                items.append(i)
                labels.append(int(l))
            rows.append((t, p[1], set(p[3].split()), items, labels))
    rows.sort(key=lambda r: r[0])
    return rows


def auc(scores, labels):
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    if not pos or not neg:
        return None
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def ndcg10(scores, labels):
    if not any(labels) or all(labels):
        return None
    order = sorted(range(len(scores)), key=lambda k: -scores[k])
    dcg = sum(labels[k] / math.log2(r + 2) for r, k in enumerate(order[:10]))
    ideal = sorted(labels, reverse=True)
    idcg = sum(l / math.log2(r + 2) for r, l in enumerate(ideal[:10]))
    return dcg / idcg


def evaluate(rows, score):
    a, n = [], []
    for idx, row in enumerate(rows):
        s = [score(idx, k) for k in range(len(row[3]))]
        x, y = auc(s, row[4]), ndcg10(s, row[4])
        if x is not None:
            a.append(x)
            n.append(y)
    return {"auc": round(sum(a) / len(a), 4), "ndcg@10": round(sum(n) / len(n), 4)}


def decayed(rows, half_life_h, two_sided):
    """(clicks, shows) of each (row, position) from the item's other
    impressions, weighted by exp(-|dt| ln2 / half-life): the past only, or
    past and future."""
    tau = half_life_h * 3600 / math.log(2)
    by_item = collections.defaultdict(list)
    for idx, row in enumerate(rows):
        for k, item in enumerate(row[3]):
            by_item[item].append((row[0], row[4][k], idx, k))
    out = {}
    for events in by_item.values():
        events.sort()
        n = len(events)
        fc = [0.0] * n
        fs = [0.0] * n
        c = s = 0.0
        for j in range(1, n):
            w = math.exp(-(events[j][0] - events[j - 1][0]) / tau)
            c = (c + events[j - 1][1]) * w
            s = (s + 1) * w
            fc[j], fs[j] = c, s
        bc = [0.0] * n
        bs = [0.0] * n
        if two_sided:
            c = s = 0.0
            for j in range(n - 2, -1, -1):
                w = math.exp(-(events[j + 1][0] - events[j][0]) / tau)
                c = (c + events[j + 1][1]) * w
                s = (s + 1) * w
                bc[j], bs[j] = c, s
        for j, (_, _, idx, k) in enumerate(events):
            out[(idx, k)] = (fc[j] + bc[j], fs[j] + bs[j])
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = read(sys.argv[1])
    result = {"bench": "item_ceiling", "data": sys.argv[1],
              "impressions": len(rows)}

    clicks, shows = collections.Counter(), collections.Counter()
    for row in rows:
        for item, label in zip(row[3], row[4]):
            clicks[item] += label
            shows[item] += 1

    def hindsight(idx, k):
        item, label = rows[idx][3][k], rows[idx][4][k]
        return (clicks[item] - label + 0.1) / (shows[item] - 1 + 3)

    result["ctr_hindsight"] = evaluate(rows, hindsight)
    two_sided_6h = None
    for h in (1, 3, 6, 12, 24):
        d = decayed(rows, h, True)
        if h == 6:
            two_sided_6h = d
        result[f"ctr_two_sided_{h}h"] = evaluate(
            rows, lambda i, k, d=d: (d[(i, k)][0] + 0.1) / (d[(i, k)][1] + 3))
    past = decayed(rows, 6, False)
    result["ctr_past_6h"] = evaluate(
        rows, lambda i, k: (past[(i, k)][0] + 0.1) / (past[(i, k)][1] + 3))

    clickers = collections.defaultdict(list)
    for idx, row in enumerate(rows):
        for item, label in zip(row[3], row[4]):
            if label:
                clickers[item].append(idx)
    cooc = {}
    for idx, row in enumerate(rows):
        me = row[2]
        for k, item in enumerate(row[3]):
            v = 0.0
            if me:
                for j in clickers[item]:
                    other = rows[j][2]
                    if j != idx and other:
                        v += len(me & other) / math.sqrt(len(me) * len(other))
            cooc[(idx, k)] = v
    result["history_cooc"] = evaluate(rows, lambda i, k: cooc[(i, k)])
    best = None
    for w in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0):
        def combined(i, k, w=w):
            c, s = two_sided_6h[(i, k)]
            return math.log((c + 0.1) / (s + 3)) + w * math.log1p(10 * cooc[(i, k)])
        m = evaluate(rows, combined)
        if best is None or m["auc"] > best["auc"]:
            best = dict(m, weight=w)
    result["best_two_sided_6h_plus_cooc"] = best
    print(json.dumps(result))


if __name__ == "__main__":
    main()
