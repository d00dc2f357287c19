#!/usr/bin/env python3
"""Open-loop load phases for bench/http_load.sh --paced-rate / --paced-factors.

Drives cfrec_http_paced (server/tools/http_paced_load.cc), which offers GET
/v1/recommendations at a fixed rate and times each request from its due
time, against a running `cfrec serve` (or cfrec_http_bench_server).

--rates "R ..."   one paced run per rate; prints one JSON line per run.
--factors "k ..." the shedding figure:
  unloaded  a paced run at --unloaded-rps: the reference p99;
  R0        the highest paced rate whose admitted p99 stays within the
            latency objective with under 1 % shed and the offered rate
            achieved. The objective is --p99-target-factor times the
            unloaded p99 when that flag is given (the rule: sustainable
            means held within the same objective the shedding phases are
            judged by), else --p99-target-ms (the earlier rule, a fixed
            bound). The rate is doubled from --start-rps until it fails, then bisected
            (--search-steps), --search-s seconds per try; a rate holds only
            if all of --search-repeats tries at it hold (one lucky try on a
            busy machine otherwise sets R0 at the server's saturation), a
            try that misses being tried again up to --search-retries times
            (default 1: one stall does not step R0 down);
  k x R0    a paced run at k times R0 for each factor.
  Each phase also reads /metrics and /v1/model before and after (events
  applied, learner samples, model versions, shed counters), POSTs events at
  --post-rps on a connection of its own (ingest must keep applying them)
  and the tool polls /readyz at 10/s. Prints one JSON line.
  The POSTed impressions carry event times from --post-ts-ms on: the live
  candidate pool is the items impressed within a window of event time
  before the newest event, so a time past the replayed log's end would
  expire the log's items and leave a pool of the three POSTed ones. Each
  line reports the pool at the end of the phase (candidate_pool).
Before the first run it waits (up to --settle-s) until the events applied
stop rising (6 s without), so that a replay being applied is not part of
the figures.

The load tool runs under SCHED_FIFO (--client-sched fifo, the default;
`chrt -f 1`, or --client-priority; needs the right to) so that it sends on
time and reads answers as they come on a machine whose cores the server
saturates: otherwise the tool's own waits for a CPU land in every latency
(send_lag_p99_ms shows them). Its CPU is then taken from the server first;
client_cpu_s and client_cpu_us_per_request say how much.
"""
import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_shed import snapshot  # noqa: E402


def server_buckets(host, port):
    """The server's own latency histogram of GET /v1/recommendations 200s
    (from reading the request to writing the answer): {le: count}."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    prefix = ('cfrec_http_request_duration_seconds_bucket{'
              'route="/v1/recommendations",status="200",le="')
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            le = line[len(prefix):line.index('"', len(prefix))]
            out[float(le)] = float(line.rpartition(" ")[2])
    return out


def step_buckets(host, port):
    """cfrec_http_admitted_step_seconds by step: {step: {le: count}}."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    prefix = 'cfrec_http_admitted_step_seconds_bucket{step="'
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            step = line[len(prefix):line.index('"', len(prefix))]
            le = line[line.index('le="') + 4:line.rindex('"')]
            out.setdefault(step, {})[float(le)] = float(
                line.rpartition(" ")[2])
    return out


def server_p99_ms(before, after):
    """Upper bound of the bucket holding the 99th percentile of the
    requests between two readings; None without requests."""
    delta = sorted((le, after[le] - before.get(le, 0)) for le in after)
    if not delta or delta[-1][1] <= 0:
        return None
    total = delta[-1][1]
    for le, count in delta:
        if count >= 0.99 * total:
            return le * 1000
    return None


def paced(args, rate, seconds):
    prefix = (["chrt", "-f", str(args.client_priority)]
              if args.client_sched == "fifo" else [])
    cmd = prefix + [args.tool, "--host", args.host, "--port", str(args.port),
           "--rate", str(rate), "--duration", str(seconds),
           "--warmup", str(args.warmup_s), "--users-file", args.users_file,
           "--n", str(args.n), "--threads", str(args.threads),
           "--connections", str(args.connections), "--reuse", args.reuse]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads([l for l in out.stdout.splitlines()
                       if l.startswith("{")][-1])


class Poster:
    """POST /v1/events (one new impression each) at a fixed rate."""

    def __init__(self, args, users, tag):
        self.args, self.users, self.tag = args, users, tag
        self.accepted = self.shed = self.other = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        rng = random.Random(5)
        conn = http.client.HTTPConnection(self.args.host, self.args.port,
                                          timeout=10)
        start, i = time.perf_counter(), 0
        while not self.stop.is_set():
            due = start + i / self.args.post_rps
            if due > time.perf_counter():
                time.sleep(due - time.perf_counter())
            body = json.dumps({
                "type": "impression",
                "impression_id": f"paced-{self.tag}-{i}",
                "user_id": rng.choice(self.users),
                "ts": self.args.post_ts_ms + i,
                "items": ["N1", "N2", "N3"],
                "clicks": ["N2"],
            })
            try:
                conn.request("POST", "/v1/events", body,
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status == 202:
                    self.accepted += 1
                elif r.status == 503:
                    self.shed += 1
                else:
                    self.other += 1
            except (OSError, http.client.HTTPException):
                self.other += 1
                conn.close()
                conn = http.client.HTTPConnection(self.args.host,
                                                  self.args.port, timeout=10)
            i += 1
        conn.close()

    def __enter__(self):
        if self.args.post_rps > 0:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


def phase(args, users, name, rate, seconds):
    before = snapshot(args.host, args.port)
    buckets_before = server_buckets(args.host, args.port)
    steps_before = step_buckets(args.host, args.port)
    t0 = time.monotonic()
    with Poster(args, users, f"{name}-{int(time.time())}") as poster:
        result = paced(args, rate, seconds)
    # Events accepted in the phase are applied within a second or so.
    time.sleep(1)
    after = snapshot(args.host, args.port)
    buckets_after = server_buckets(args.host, args.port)
    steps_after = step_buckets(args.host, args.port)
    wall = time.monotonic() - t0
    keep = ["offered_rps", "achieved_rps", "ok_rps", "ok_2xx", "shed_503",
            "other_status", "errors", "unanswered", "unsent", "shed_share",
            "p50_ms", "p99_ms", "p999_ms", "max_ms", "readyz_requests",
            "readyz_not_200", "readyz_p99_ms", "connections",
            "max_client_backlog", "client_cpu_s"]
    # Only the epoll tool prints these.
    keep += [k for k in ["shed_p99_ms", "send_lag_p99_ms",
                         "client_cpu_us_per_request"] if k in result]
    out = {"phase": name, **{k: result[k] for k in keep}}
    # The server's view (from reading the request to writing the answer):
    # what the client sees beyond it waited before the server read it.
    out["server_p99_ms_le"] = server_p99_ms(buckets_before, buckets_after)
    for step, after_step in sorted(steps_after.items()):
        out[f"server_{step}_p99_ms_le"] = server_p99_ms(
            steps_before.get(step, {}), after_step)
    out.update({
        "events_posted": poster.accepted,
        "events_post_shed": poster.shed,
        "events_applied": int(after["applied"] - before["applied"]),
        "learner_samples_per_s": round(
            (after["samples"] - before["samples"]) / wall, 1),
        "model_versions": after["model_version"] - before["model_version"],
        "candidate_pool": after["candidate_pool"],
        "server_shed_queue_full": int(after["shed_full"] - before["shed_full"]),
        "server_shed_queue_time": int(after["shed_time"] - before["shed_time"]),
        "server_shed_late": int(after["shed_late"] - before["shed_late"]),
    })
    return out


def holds(args, r):
    return (r["p99_ms"] >= 0 and r["p99_ms"] <= args.p99_target_ms
            and r["shed_share"] < 0.01
            and r["ok_rps"] >= 0.98 * r["offered_rps"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", required=True, help="cfrec_http_paced binary")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users-file", required=True)
    ap.add_argument("--rates", default="", help="paced runs at these rates")
    ap.add_argument("--factors", default="", help="shedding: k x R0")
    ap.add_argument("--p99-target-ms", type=float, default=5.0,
                    help="R0 is the highest rate with p99 within this "
                    "(unless --p99-target-factor is given)")
    ap.add_argument("--p99-target-factor", type=float, default=0,
                    help="R0 is the highest rate with p99 within this "
                    "many times the unloaded p99; 0 = use --p99-target-ms")
    ap.add_argument("--client-sched", choices=["fifo", "normal"],
                    default="fifo",
                    help="run the load tool under SCHED_FIFO (chrt -f "
                    "<--client-priority>) or as an ordinary process")
    ap.add_argument("--client-priority", type=int, default=1,
                    help="the load tool's SCHED_FIFO priority (1-99); above "
                    "the server's I/O threads' when those run under "
                    "SCHED_FIFO (cfrec serve --http-io-realtime-priority), "
                    "else they keep it from sending on time")
    ap.add_argument("--unloaded-rps", type=float, default=100)
    ap.add_argument("--start-rps", type=float, default=500)
    ap.add_argument("--search-steps", type=int, default=3)
    ap.add_argument("--search-s", type=float, default=5)
    ap.add_argument("--search-repeats", type=int, default=1,
                    help="tries that must all hold for a rate to hold")
    ap.add_argument("--search-retries", type=int, default=1,
                    help="times a try that missed is tried again before "
                    "the rate counts as missed")
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--warmup-s", type=float, default=2)
    ap.add_argument("--post-rps", type=float, default=20)
    ap.add_argument("--post-ts-ms", type=int, default=1573568100000,
                    help="event time of the first POSTed impression (ms); "
                    "keep it within the replayed log's last 48 h")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--reuse", choices=["lifo", "fifo"], default="lifo",
                    help="idle connection a request takes: the one freed "
                    "last, or the one idle longest (all carry the load)")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--settle-s", type=float, default=180,
                    help="longest wait for a replay to be applied first")
    args = ap.parse_args()
    if not 1 <= args.client_priority <= 99:
        ap.error("--client-priority must be in 1..99 (chrt -f)")
    with open(args.users_file) as f:
        users = [line.strip() for line in f if line.strip()]
    # Let a replay still being applied finish first: it is a burst of
    # ingest work, not the steady state the phases measure.
    # Settled = three 2 s intervals in a row with under 100 events applied:
    # one quiet interval was not enough (a run's unloaded phase still saw
    # 84,000 events of the replay applied).
    deadline = time.monotonic() + args.settle_s
    applied = snapshot(args.host, args.port)["applied"]
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        time.sleep(2)
        now = snapshot(args.host, args.port)["applied"]
        quiet = quiet + 1 if now - applied < 100 else 0
        applied = now

    for rate in args.rates.split():
        r = phase(args, users, f"rate-{rate}", float(rate), args.duration)
        print(json.dumps({"bench": "http_paced", **r}), flush=True)
    if not args.factors:
        return

    unloaded = phase(args, users, "unloaded", args.unloaded_rps, args.duration)
    if args.p99_target_factor > 0:
        args.p99_target_ms = round(
            args.p99_target_factor * unloaded["p99_ms"], 3)
    search = []
    good, bad = None, None
    rate = args.start_rps
    def attempt(rate):
        # Each of the --search-repeats tries must hold; a try that misses is
        # tried again up to --search-retries times before the rate counts as
        # missed (one stall of the machine otherwise steps R0 down).
        for _ in range(args.search_repeats):
            for retry in range(args.search_retries + 1):
                r = paced(args, rate, args.search_s)
                search.append({"rps": rate, "p99_ms": r["p99_ms"],
                               "shed_share": r["shed_share"],
                               "ok_rps": r["ok_rps"], "retry": retry})
                if holds(args, r):
                    break
            else:
                return False
        return True

    while bad is None:
        if attempt(rate):
            good, rate = rate, rate * 2
        else:
            bad = rate
        if rate > 200000:
            break
    if good is None:
        print(json.dumps({"bench": "http_paced_shed", "error":
                          "p99 target missed at the start rate",
                          "search": search, "unloaded": unloaded}))
        return
    for _ in range(args.search_steps if bad is not None else 0):
        mid = round((good + bad) / 2)
        if attempt(mid):
            good = mid
        else:
            bad = mid
    r0 = good
    phases = [phase(args, users, "R0", r0, args.duration)]
    for k in args.factors.split():
        phases.append(phase(args, users, f"{k}xR0", float(k) * r0,
                            args.duration))
    base = unloaded["p99_ms"]
    for p in [unloaded] + phases:
        p["p99_vs_unloaded"] = round(p["p99_ms"] / base, 2) if base > 0 else None
    print(json.dumps({"bench": "http_paced_shed",
                      "p99_target_factor": args.p99_target_factor,
                      "client_sched": args.client_sched,
                      "client_priority": args.client_priority,
                      "p99_target_ms": args.p99_target_ms,
                      "search_repeats": args.search_repeats,
                      "search_retries": args.search_retries, "r0_rps": r0,
                      "search": search, "phases": [unloaded] + phases}))


if __name__ == "__main__":
    main()
