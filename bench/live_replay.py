#!/usr/bin/env python3
"""Live replay: measures a running `cfrec serve` the way a client sees it.

Reads a MIND-format behaviors.tsv, sorts it by time (stable) and replays it
against the service's HTTP API in buckets of event time:

  1. every impression of the bucket is ranked with POST /v1/rank (the shown
     list, shuffled with --seed so the caller's order carries no signal);
  2. the bucket's events go in with POST /v1/events: one impression event
     (impression_id, user_id, ts, items, history) per row, then one click
     event per clicked item with the impression's ts, as `cfrec replay` does
     with --click-delay 0; arrays of --chunk events per request;
  3. GET /v1/model is polled until the learner has consumed every event sent
     so far (training.events_consumed) and a model newer than the one that
     ranked the bucket is published (model_version); after --wait-timeout
     seconds a warning goes to stderr and the replay goes on.

So each impression is ranked by a model that has trained on every earlier
bucket and nothing of its own. In the same pass the same impressions are
ranked, at the same moments, by baselines:

  random                  seeded uniform scores
  clicks                  all-time clicks of the item, updated at bucket ends
  ctr_decayed_bucket      (clicks + 0.1) / (shows + 3), clicks and shows
                          decayed with a half-life of --half-life-hours in
                          event time, updated at bucket ends (what the
                          service has seen)
  ctr_decayed_impression  the same counter updated after every impression

Metrics per impression, as MIND's evaluate script defines them: AUC, MRR,
nDCG@5, nDCG@10 (gain 2^y - 1, discount log2(rank + 1), normalised by the
ideal list), averaged over impressions with at least one click and one
non-click. Tied scores get the expected value under a uniformly random order
of the tie: ties count half for AUC, and a group of g tied items holding c
clicks puts c/g of a click on each of its ranks for MRR and nDCG (exact, no
random tie-break).

How cfrec's answer is scored: every item by the score the service gave it,
items the service never saw included (with stream features it scores them by
its prior for a new item); items with a null score rank below every scored
item and tie with each other. For a user the model does not know, the service
answers in popularity order with null scores (`fallback: "popularity"`); the
known items are then scored by their position in the answer (what a client
would display) and the unknown ones tie at the bottom. --fallback-scores null
treats those answers as all-tied instead. `by_answer` splits every system's
metrics by the kind of answer cfrec gave: "model" (no fallback) or the
fallback's name.

Output: progress to stderr after every bucket, then exactly one JSON line on
stdout. --curve FILE writes one JSON line per bucket (that bucket's metrics).

Start from an empty service (fresh --data-dir): events the service already
holds are deduplicated, are not trained again, and the wait would time out.

  cfrec serve --data-dir replay-data --http 127.0.0.1:18080 &
  python3 bench/live_replay.py --url http://127.0.0.1:18080 behaviors.tsv

Python 3 standard library only.
"""
import argparse
import calendar
import http.client
import json
import math
import random
import socket
import sys
import time
import urllib.parse

MAX_LIST = 1000       # items per impression (and per rank request)
MAX_HISTORY = 10000   # history items per impression event
MAX_ID_BYTES = 128
MAX_EVENTS_PER_REQUEST = 1000

SYSTEMS = ("cfrec", "random", "clicks", "ctr_decayed_bucket",
           "ctr_decayed_impression")
METRICS = ("auc", "mrr", "ndcg5", "ndcg10")


class ReplayError(Exception):
    """An error worth one clear line on stderr and exit code 1."""


# ----------------------------------------------------------------- input ---

def parse_time(text, where):
    """`M/D/YYYY h:mm:ss AM` (UTC) -> epoch milliseconds."""
    try:
        date, clock, half = text.split()
        month, day, year = (int(x) for x in date.split("/"))
        hour, minute, second = (int(x) for x in clock.split(":"))
        half = half.upper()
        if half not in ("AM", "PM") or not 1 <= hour <= 12:
            raise ValueError
        if not (1 <= month <= 12 and 1 <= day <= 31 and 0 <= minute < 60
                and 0 <= second < 61):
            raise ValueError
        hour = hour % 12 + (12 if half == "PM" else 0)
        return calendar.timegm((year, month, day, hour, minute, second)) * 1000
    except ValueError:
        raise ReplayError("%s: bad time %r (want M/D/YYYY h:mm:ss AM)"
                          % (where, text)) from None


def check_id(value, what, where):
    if not value or len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise ReplayError("%s: %s %r must be 1 to %d bytes"
                          % (where, what, value[:40], MAX_ID_BYTES))
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in value):
        raise ReplayError("%s: %s %r has a control character"
                          % (where, what, value[:40]))


class Row:
    __slots__ = ("impression_id", "user_id", "ts", "history", "items",
                 "labels")

    def __init__(self, impression_id, user_id, ts, history, items, labels):
        self.impression_id = impression_id
        self.user_id = user_id
        self.ts = ts
        self.history = history
        self.items = items
        self.labels = labels


def read_behaviors(path):
    """Returns (rows sorted by time, warnings)."""
    warnings = {"duplicate_items_merged": 0, "history_truncated": 0}
    rows = []
    seen_ids = set()
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise ReplayError("cannot open %s: %s" % (path, e.strerror)) from None
    with f:
        try:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                where = "%s:%d" % (path, number)
                cols = line.split("\t")
                if len(cols) != 5:
                    raise ReplayError(
                        "%s: %d tab-separated columns, want 5 (impression id, "
                        "user id, time, history, impressions)"
                        % (where, len(cols)))
                impression_id, user_id, when, history, shown = cols
                check_id(impression_id, "impression id", where)
                check_id(user_id, "user id", where)
                if impression_id in seen_ids:
                    raise ReplayError("%s: impression id %r repeats an "
                                      "earlier row" % (where, impression_id))
                seen_ids.add(impression_id)
                ts = parse_time(when, where)
                items, labels, index = [], [], {}
                for token in shown.split():
                    item, dash, label = token.rpartition("-")
                    if not dash or label not in ("0", "1"):
                        raise ReplayError(
                            "%s: bad impression %r (want ITEM-0 or ITEM-1)"
                            % (where, token[:60]))
                    check_id(item, "item id", where)
                    y = 1 if label == "1" else 0
                    if item in index:  # the service rejects repeats
                        warnings["duplicate_items_merged"] += 1
                        k = index[item]
                        labels[k] = max(labels[k], y)
                        continue
                    index[item] = len(items)
                    items.append(item)
                    labels.append(y)
                if not items:
                    raise ReplayError("%s: no impressed items" % where)
                if len(items) > MAX_LIST:
                    raise ReplayError(
                        "%s: %d items shown; cfrec takes at most %d per list"
                        % (where, len(items), MAX_LIST))
                hist = history.split()
                for item in hist:
                    check_id(item, "history item", where)
                if len(hist) > MAX_HISTORY:  # keep the most recent
                    warnings["history_truncated"] += 1
                    hist = hist[-MAX_HISTORY:]
                rows.append(Row(impression_id, user_id, ts, hist, items,
                                labels))
        except UnicodeDecodeError:
            raise ReplayError("%s: not UTF-8 text" % path) from None
    if not rows:
        raise ReplayError("%s: no rows" % path)
    rows.sort(key=lambda r: r.ts)  # stable
    return rows, warnings


# --------------------------------------------------------------- metrics ---

class MetricTables:
    """Prefix sums so tie groups cost O(1): harmonic numbers and DCG
    discounts."""

    def __init__(self, n):
        self.harmonic = [0.0] * (n + 1)
        self.disc = [0.0] * (n + 1)
        for r in range(1, n + 1):
            self.harmonic[r] = self.harmonic[r - 1] + 1.0 / r
            self.disc[r] = self.disc[r - 1] + 1.0 / math.log2(r + 1)

    def disc_sum(self, a, b, k):
        """Sum of 1/log2(r+1) for ranks r in (a, min(b, k)]."""
        b = min(b, k)
        return self.disc[b] - self.disc[a] if b > a else 0.0


def impression_metrics(labels, scores, tables):
    """AUC, MRR, nDCG@5, nDCG@10 of one list, expected over random order of
    ties. None when the list lacks a click or a non-click."""
    positives = sum(labels)
    n = len(labels)
    negatives = n - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(n), key=scores.__getitem__, reverse=True)
    mrr = dcg5 = dcg10 = 0.0
    pairs = 0.0      # AUC numerator: (pos, neg) pairs ordered right
    negs_above = 0   # negatives ranked strictly above the current group
    start = 0
    while start < n:
        s = scores[order[start]]
        end = start + 1
        while end < n and scores[order[end]] == s:
            end += 1
        group = end - start
        c = 0
        for k in range(start, end):
            c += labels[order[k]]
        if c:
            share = c / group
            mrr += share * (tables.harmonic[end] - tables.harmonic[start])
            dcg5 += share * tables.disc_sum(start, end, 5)
            dcg10 += share * tables.disc_sum(start, end, 10)
            # each positive here beats the negatives below the group and
            # half of the group's negatives
            negs_below = negatives - negs_above - (group - c)
            pairs += c * (negs_below + 0.5 * (group - c))
        negs_above += group - c
        start = end
    ideal5 = tables.disc[min(positives, 5)]
    ideal10 = tables.disc[min(positives, 10)]
    return (pairs / (positives * negatives), mrr / positives, dcg5 / ideal5,
            dcg10 / ideal10)


class Tally:
    """Sums of per-impression metrics for every system."""

    def __init__(self):
        self.n = 0
        self.sums = {s: [0.0] * len(METRICS) for s in SYSTEMS}

    def add(self, per_system):
        self.n += 1
        for system, values in per_system.items():
            acc = self.sums[system]
            for k, v in enumerate(values):
                acc[k] += v

    def means(self, system):
        if self.n == 0:
            return {m: None for m in METRICS}
        return {m: round(v / self.n, 6)
                for m, v in zip(METRICS, self.sums[system])}

    def auc(self, system):
        return self.sums[system][0] / self.n if self.n else float("nan")

    def summary(self, with_count=False):
        out = {"scored": self.n} if with_count else {}
        for s in SYSTEMS:
            out[s] = self.means(s)
        return out


# ------------------------------------------------------------- baselines ---

class DecayedCtr:
    """Per item clicks and shows with exponential decay in event time;
    score (clicks + 0.1) / (shows + 3) at a given moment."""

    def __init__(self, half_life_ms):
        self.rate = math.log(2) / half_life_ms
        self.state = {}  # item -> [clicks, shows, ts of last update]

    def add(self, item, ts, clicked):
        st = self.state.get(item)
        if st is None:
            self.state[item] = [float(clicked), 1.0, ts]
            return
        if ts > st[2]:
            f = math.exp(-self.rate * (ts - st[2]))
            st[0] *= f
            st[1] *= f
            st[2] = ts
        st[0] += clicked
        st[1] += 1.0

    def score(self, item, ts):
        st = self.state.get(item)
        if st is None:
            return 0.1 / 3.0
        f = math.exp(-self.rate * (ts - st[2])) if ts > st[2] else 1.0
        return (st[0] * f + 0.1) / (st[1] * f + 3.0)


# ------------------------------------------------------------------ HTTP ---

class Service:
    """One keep-alive connection to cfrec serve, reopened when the server
    closes it."""

    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise ReplayError("--url %r: want http://HOST:PORT" % url)
        self.url = url
        self.host = u.hostname
        self.port = u.port or 80
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port,
                                               timeout=self.timeout)
        self.conn.connect()
        # small requests and answers: no Nagle delays
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, method, path, body=None):
        """Returns (status, parsed JSON or None). Retries once on a closed
        connection; raises ReplayError when the service cannot be reached."""
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self._connect()
                self.conn.request(method, self.prefix + path, body=data,
                                  headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                break
            except (ConnectionError, http.client.HTTPException,
                    TimeoutError, OSError) as e:
                self.close()
                if attempt == 1:
                    raise ReplayError(
                        "cannot reach cfrec at %s (%s %s): %s; is `cfrec "
                        "serve` running there?" % (self.url, method, path,
                                                   e)) from None
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return resp.status, doc

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def error_text(status, doc):
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        e = doc["error"]
        return "%d %s: %s" % (status, e.get("code"), e.get("message"))
    return "HTTP %d" % status


def get_model(svc):
    status, doc = svc.request("GET", "/v1/model")
    if status != 200 or not isinstance(doc, dict):
        return None, status, doc
    return doc, status, doc


def wait_ready(svc, timeout):
    """Waits for a first published model; returns /v1/model."""
    deadline = time.monotonic() + timeout
    while True:
        model, status, doc = get_model(svc)
        if model is not None:
            return model
        if status != 503:
            raise ReplayError("GET /v1/model: %s" % error_text(status, doc))
        if time.monotonic() > deadline:
            raise ReplayError("cfrec at %s published no model within %.0f s "
                              "(%s)" % (svc.url, timeout,
                                        error_text(status, doc)))
        time.sleep(0.1)


def consumed(model):
    return int((model.get("training") or {}).get("events_consumed", 0))


def send_events(svc, events, chunk):
    """POST /v1/events in chunks; on 503 (producer queue full) waits and
    sends what the answer says was not queued."""
    i = 0
    while i < len(events):
        part = events[i:i + chunk]
        status, doc = svc.request("POST", "/v1/events", part)
        if status == 202:
            i += len(part)
            continue
        if status == 503:
            # "queued K of N events, then the producer refused: ..."
            queued = 0
            msg = ((doc or {}).get("error") or {}).get("message", "")
            words = msg.split()
            if len(words) > 1 and words[0] == "queued" and \
                    words[1].isdigit():
                queued = int(words[1])
            elif "no event producer" in msg:
                raise ReplayError("POST /v1/events: %s"
                                  % error_text(status, doc))
            i += queued
            time.sleep(0.05)
            continue
        raise ReplayError("POST /v1/events: %s" % error_text(status, doc))


# ------------------------------------------------------------------ main ---

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="live_replay.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n", 1)[1],
        epilog="Output JSON: impressions (replayed), scored (with a click and "
               "a non-click), buckets (non-empty), seconds (wall time), cfrec "
               "and baselines (mean metrics over the scored impressions), "
               "by_answer (the same split by cfrec's kind of answer), "
               "model_version_start/end, timeouts (buckets whose wait timed "
               "out), and the time spent ranking, sending and waiting.")
    p.add_argument("behaviors", metavar="BEHAVIORS_TSV",
                   help="MIND-format behaviors.tsv (any row order)")
    p.add_argument("--url", default="http://127.0.0.1:8080",
                   help="base URL of cfrec serve (default: %(default)s)")
    p.add_argument("--bucket-minutes", type=float, default=60.0,
                   help="event-time length of a bucket; buckets are aligned "
                        "to the epoch (default: %(default)s)")
    p.add_argument("--limit", type=int, default=0, metavar="N",
                   help="replay only the first N impressions after sorting "
                        "by time (default: all)")
    p.add_argument("--wait-timeout", type=float, default=60.0,
                   metavar="SECONDS",
                   help="longest wait per bucket for the model to train on "
                        "it (default: %(default)s)")
    p.add_argument("--half-life-hours", type=float, default=6.0,
                   help="half-life of the decayed CTR baselines "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the random baseline and of the order of "
                        "the lists sent to /v1/rank (default: %(default)s)")
    p.add_argument("--chunk", type=int, default=500,
                   help="events per POST /v1/events (1 to 1000; default: "
                        "%(default)s)")
    p.add_argument("--fallback-scores", choices=("order", "null"),
                   default="order",
                   help="how to score a popularity-fallback answer (unknown "
                        "user, null scores): by its order, as a client shows "
                        "it, or as all tied (default: %(default)s)")
    p.add_argument("--curve", metavar="FILE",
                   help="write one JSON line per bucket with its metrics")
    p.add_argument("--http-timeout", type=float, default=30.0,
                   help="socket timeout of one HTTP request, seconds "
                        "(default: %(default)s)")
    p.add_argument("--quiet", action="store_true",
                   help="no per-bucket progress on stderr")
    a = p.parse_args(argv)
    if a.bucket_minutes <= 0:
        p.error("--bucket-minutes must be positive")
    if a.limit < 0:
        p.error("--limit must be >= 0")
    if a.wait_timeout <= 0 or a.half_life_hours <= 0 or a.http_timeout <= 0:
        p.error("--wait-timeout, --half-life-hours and --http-timeout must "
                "be positive")
    if not 1 <= a.chunk <= MAX_EVENTS_PER_REQUEST:
        p.error("--chunk must be in [1, %d]" % MAX_EVENTS_PER_REQUEST)
    return a


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def rank_scores(answer, items, fallback_mode):
    """cfrec's scores for `items` (in the log's order) from a /v1/rank
    answer. Returns (scores, kind of answer, unknown count): the kind is
    "model", or the answer's `fallback` (e.g. "popularity")."""
    ranked = answer.get("items")
    if not isinstance(ranked, list):
        raise ReplayError("POST /v1/rank: answer without 'items'")
    kind = answer.get("fallback")
    fallback = kind is not None
    kind = "model" if kind is None else str(kind)
    low = -math.inf
    by_item = {}
    unknown = 0
    n = len(ranked)
    for pos, entry in enumerate(ranked):
        item = entry.get("item_id")
        score = entry.get("score")
        known = entry.get("known", True)
        if not known:
            unknown += 1
        if score is not None:
            # Items the service never saw are scored too when it has a
            # prior for them (stream features); only a null score ranks last.
            by_item[item] = float(score)
        elif known and fallback and fallback_mode == "order":
            by_item[item] = float(n - pos)  # as displayed, best first
        else:
            by_item[item] = low
    try:
        return [by_item[i] for i in items], kind, unknown
    except KeyError as e:
        raise ReplayError("POST /v1/rank: answer lacks item %s" % e) from None


def run(a):
    t_start = time.monotonic()
    rows, warnings = read_behaviors(a.behaviors)
    total_rows = len(rows)
    if a.limit:
        rows = rows[:a.limit]
    for k, v in warnings.items():
        if v:
            print("live_replay: warning: %s: %d" % (k.replace("_", " "), v),
                  file=sys.stderr)

    bucket_ms = a.bucket_minutes * 60000.0
    buckets = []  # lists of rows
    last_key = None
    for r in rows:
        key = int(r.ts // bucket_ms)
        if key != last_key:
            buckets.append([])
            last_key = key
        buckets[-1].append(r)

    svc = Service(a.url, a.http_timeout)
    model = wait_ready(svc, a.wait_timeout)
    version_start = model.get("model_version")
    base_consumed = consumed(model)
    if base_consumed:
        print("live_replay: warning: the service has already consumed %d "
              "events; rows it holds are deduplicated and the waits may time "
              "out (start it on an empty --data-dir)" % base_consumed,
              file=sys.stderr)

    max_len = max(len(r.items) for r in rows)
    tables = MetricTables(max_len + 1)
    rng = random.Random(a.seed)           # random baseline
    order_rng = random.Random(a.seed + 1)  # order of the rank requests
    half_life_ms = a.half_life_hours * 3600000.0
    ctr_bucket = DecayedCtr(half_life_ms)
    ctr_live = DecayedCtr(half_life_ms)
    clicks = {}

    overall = Tally()
    by_answer = {}  # kind of cfrec answer -> Tally
    curve = open(a.curve, "w") if a.curve else None
    sent = 0
    timeouts = 0
    done = 0
    items_ranked = unknown_items = 0
    rank_s = send_s = wait_s = 0.0
    version = version_start

    try:
        for b, bucket in enumerate(buckets):
            tally = Tally()
            versions = set()
            t0 = time.monotonic()
            for r in bucket:
                request_items = list(r.items)
                order_rng.shuffle(request_items)
                status, answer = svc.request(
                    "POST", "/v1/rank",
                    {"user_id": r.user_id, "items": request_items})
                if status != 200 or not isinstance(answer, dict):
                    raise ReplayError("POST /v1/rank for impression %s: %s"
                                      % (r.impression_id,
                                         error_text(status, answer)))
                cf, kind, unknown = rank_scores(answer, r.items,
                                                    a.fallback_scores)
                versions.add(answer.get("model_version"))
                items_ranked += len(r.items)
                unknown_items += unknown
                ts = r.ts
                per = {
                    "cfrec": cf,
                    "random": [rng.random() for _ in r.items],
                    "clicks": [clicks.get(i, 0) for i in r.items],
                    "ctr_decayed_bucket": [ctr_bucket.score(i, ts)
                                           for i in r.items],
                    "ctr_decayed_impression": [ctr_live.score(i, ts)
                                               for i in r.items],
                }
                values = {}
                for system, scores in per.items():
                    m = impression_metrics(r.labels, scores, tables)
                    if m is None:
                        break
                    values[system] = m
                if values:
                    overall.add(values)
                    tally.add(values)
                    if kind not in by_answer:
                        by_answer[kind] = Tally()
                    by_answer[kind].add(values)
                for item, y in zip(r.items, r.labels):
                    ctr_live.add(item, ts, y)
            done += len(bucket)
            rank_s += time.monotonic() - t0
            model, _, _ = get_model(svc)
            if model is not None:
                version = model.get("model_version", version)
            version_ranked = version

            # What the service sees at the bucket's end.
            t0 = time.monotonic()
            events = []
            for r in bucket:
                imp = {"type": "impression", "impression_id": r.impression_id,
                       "user_id": r.user_id, "ts": r.ts, "items": r.items}
                if r.history:
                    imp["history"] = r.history
                events.append(imp)
                for item, y in zip(r.items, r.labels):
                    if y:
                        events.append({"type": "click",
                                       "impression_id": r.impression_id,
                                       "user_id": r.user_id, "item_id": item,
                                       "ts": r.ts})
            send_events(svc, events, a.chunk)
            sent += len(events)
            send_s += time.monotonic() - t0
            for r in bucket:
                for item, y in zip(r.items, r.labels):
                    ctr_bucket.add(item, r.ts, y)
                    if y:
                        clicks[item] = clicks.get(item, 0) + 1

            # Wait until the service has trained on everything sent.
            t0 = time.monotonic()
            target = base_consumed + sent
            deadline = t0 + a.wait_timeout
            trained = 0
            while True:
                model, status, doc = get_model(svc)
                if model is None:
                    raise ReplayError("GET /v1/model: %s"
                                      % error_text(status, doc))
                trained = consumed(model)
                version = model.get("model_version", version)
                if trained >= target and version > version_ranked:
                    break
                if time.monotonic() > deadline:
                    timeouts += 1
                    print("live_replay: warning: bucket %d/%d: after %g s "
                          "the model has consumed %d of %d events (version "
                          "%s, ranked with %s); going on"
                          % (b + 1, len(buckets), a.wait_timeout,
                             trained - base_consumed, sent, version,
                             version_ranked), file=sys.stderr)
                    break
                time.sleep(0.02)
            waited = time.monotonic() - t0
            wait_s += waited

            if curve is not None:
                rec = {"bucket": b + 1, "start": iso(bucket[0].ts),
                       "impressions": len(bucket), "scored": tally.n,
                       "model_versions": sorted(v for v in versions
                                                if v is not None),
                       "events_sent": len(events), "wait_seconds":
                       round(waited, 3), "events_consumed": trained -
                       base_consumed}
                rec.update({s: tally.means(s) for s in SYSTEMS})
                rec["cfrec_auc_cumulative"] = round(overall.auc("cfrec"), 6) \
                    if overall.n else None
                curve.write(json.dumps(rec) + "\n")
                curve.flush()
            if not a.quiet:
                print("bucket %d/%d %s impressions %d/%d scored %d | auc "
                      "cfrec %.4f ctr_decayed_bucket %.4f | model v%s, waited "
                      "%.2f s" % (b + 1, len(buckets), iso(bucket[0].ts),
                                  done, len(rows), overall.n,
                                  overall.auc("cfrec"),
                                  overall.auc("ctr_decayed_bucket"), version,
                                  waited), file=sys.stderr)
    finally:
        if curve is not None:
            curve.close()
        svc.close()

    out = {
        "bench": "live_replay",
        "data": a.behaviors,
        "rows_in_file": total_rows,
        "impressions": len(rows),
        "scored": overall.n,
        "buckets": len(buckets),
        "bucket_minutes": a.bucket_minutes,
        "seconds": round(time.monotonic() - t_start, 2),
        "cfrec": overall.means("cfrec"),
        "baselines": {s: overall.means(s) for s in SYSTEMS if s != "cfrec"},
        "by_answer": {k: by_answer[k].summary(with_count=True)
                      for k in sorted(by_answer)},
        "unknown_item_share": round(unknown_items / items_ranked, 6)
        if items_ranked else None,
        "fallback_scores": a.fallback_scores,
        "half_life_hours": a.half_life_hours,
        "seed": a.seed,
        "events_sent": sent,
        "model_version_start": version_start,
        "model_version_end": version,
        "timeouts": timeouts,
        "rank_seconds": round(rank_s, 2),
        "send_seconds": round(send_s, 2),
        "wait_seconds": round(wait_s, 2),
    }
    print(json.dumps(out), flush=True)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(a)
    except ReplayError as e:
        print("live_replay: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("live_replay: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
