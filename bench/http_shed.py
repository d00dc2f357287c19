#!/usr/bin/env python3
"""Load-shedding phases for bench/http_load.sh --shed-factors.

Against a running `cfrec serve` (ingest, learner and HTTP), measures:
  unloaded   the probe alone (below);
  saturated  wrk closed-loop with --capacity-connections connections (no
             pause between requests): the rate of 200 answers when the
             server is saturated, and the p99 it has then (context);
  k x R0     for each factor k: wrk offering k times the sustainable rate R0
             (--sustainable: http_load.sh passes the rate of its closed-loop
             run, 4 connections by default, where p99 stays near its
             target), with the probe running alongside.
wrk paces its connections (bench/http_users.lua THINK_MS): C connections that
each wait THINK_MS before every request offer at most C * 1000 / THINK_MS
requests/s, whatever the answers' latency, so C = k * R0 * THINK_MS / 1000.

The probe is what a client sees: GET /v1/recommendations at a fixed rate on
one keep-alive connection, and POST /v1/events (one new impression per
request) at a fixed rate on another, and GET /readyz at 10/s on a third,
timing each answer. Its admitted p99 is
the p99 of the 200 answers. The probe is Python: its own overhead (~0.1 ms)
is in every figure, the unloaded one too.

Prints one JSON line.
"""
import argparse
import http.client
import json
import math
import random
import subprocess
import threading
import time
import urllib.parse


def get_json(host, port, path):
    # The server sheds what would wait past its delay target, this request
    # too while the machine is saturated (a replay being applied): retry.
    for attempt in range(100):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        if r.status != 503:
            break
        time.sleep(0.1)
    return json.loads(body)


def metric_sum(host, port, name, label=None):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        if key != name and not key.startswith(name + "{"):
            continue
        if label is not None and label not in key:
            continue
        total += float(value)
    return total


def snapshot(host, port):
    model = get_json(host, port, "/v1/model")
    return {
        "samples": model["training"]["observed_samples"],
        "model_version": model["model_version"],
        "candidate_pool": model.get("candidate_pool"),
        "applied": metric_sum(host, port, "cfrec_events_applied_total"),
        "shed_full": metric_sum(host, port, "cfrec_http_requests_shed_total",
                                'reason="queue_full"'),
        "shed_time": metric_sum(host, port, "cfrec_http_requests_shed_total",
                                'reason="queue_time"'),
        "shed_late": metric_sum(host, port, "cfrec_http_requests_shed_total",
                                'reason="late"'),
    }


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    i = min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))
    return values[i]


class Probe:
    """Paced GETs and POSTs on their own connections, timed."""

    def __init__(self, host, port, users, get_rate, post_rate, seconds, tag,
                 post_ts_ms):
        self.host, self.port = host, port
        self.post_ts_ms = post_ts_ms
        self.users = users
        self.get_rate, self.post_rate = get_rate, post_rate
        self.seconds = seconds
        self.tag = tag
        self.get_ok, self.post_ok = [], []
        self.get_shed = self.post_shed = self.other = 0
        self.events_accepted = 0
        self.readyz_ms, self.readyz_not_200 = [], 0

    def _loop(self, rate, send):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        rng = random.Random(11)
        start = time.perf_counter()
        i = 0
        while True:
            due = start + i / rate
            now = time.perf_counter()
            if now - start >= self.seconds:
                break
            if due > now:
                time.sleep(due - now)
            t0 = time.perf_counter()
            try:
                status = send(conn, rng, i)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port,
                                                  timeout=10)
                status = -1
            yield status, (time.perf_counter() - t0) * 1000
            i += 1
        conn.close()

    def _get(self, conn, rng, i):
        user = urllib.parse.quote(rng.choice(self.users), safe="")
        conn.request("GET", f"/v1/recommendations?user_id={user}&n=10")
        r = conn.getresponse()
        r.read()
        return r.status

    def _post(self, conn, rng, i):
        user = rng.choice(self.users)
        body = json.dumps({
            "type": "impression",
            "impression_id": f"shed-{self.tag}-{i}",
            "user_id": user,
            "ts": self.post_ts_ms + i,
            "items": ["N1", "N2", "N3"],
            "clicks": ["N2"],
        })
        conn.request("POST", "/v1/events", body,
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status

    def _run_gets(self):
        for status, ms in self._loop(self.get_rate, self._get):
            if status == 200:
                self.get_ok.append(ms)
            elif status == 503:
                self.get_shed += 1
            else:
                self.other += 1

    def _run_posts(self):
        for status, ms in self._loop(self.post_rate, self._post):
            if status == 202:
                self.post_ok.append(ms)
                self.events_accepted += 1
            elif status == 503:
                self.post_shed += 1
            else:
                self.other += 1

    def _readyz(self, conn, rng, i):
        conn.request("GET", "/readyz")
        r = conn.getresponse()
        r.read()
        return r.status

    def _run_readyz(self):
        for status, ms in self._loop(10, self._readyz):
            self.readyz_ms.append(ms)
            self.readyz_not_200 += status != 200

    def start(self):
        self.threads = [threading.Thread(target=self._run_gets),
                        threading.Thread(target=self._run_posts),
                        threading.Thread(target=self._run_readyz)]
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join()

    def result(self):
        gets = len(self.get_ok) + self.get_shed
        return {
            "probe_get_requests": gets,
            "probe_get_shed_share": round(self.get_shed / gets, 4) if gets else None,
            "probe_admitted_p50_ms": round(percentile(self.get_ok, 50), 3),
            "probe_admitted_p99_ms": round(percentile(self.get_ok, 99), 3),
            "probe_events_accepted": self.events_accepted,
            "probe_events_shed": self.post_shed,
            "probe_post_p99_ms": round(percentile(self.post_ok, 99), 3)
            if self.post_ok else None,
            "probe_other_status": self.other,
            "readyz_p99_ms": round(percentile(self.readyz_ms, 99), 3)
            if self.readyz_ms else None,
            "readyz_not_200": self.readyz_not_200,
        }


def run_wrk(args, connections, think_ms, seconds):
    cmd = ["wrk", f"-t{args.wrk_threads}", f"-c{connections}",
           f"-d{seconds}s", "--latency", "-s", args.lua,
           f"http://{args.host}:{args.port}", "--", args.users_file,
           str(args.n)]
    if think_ms:
        cmd.append(str(think_ms))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wrk_json(proc):
    out, _ = proc.communicate()
    lines = [l for l in out.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else {"wrk_output": out}


def run_phase(args, users, factor, sustainable):
    host, port = args.host, args.port
    before = snapshot(host, port)
    probe = Probe(host, port, users, args.probe_rate, args.post_rate,
                  args.duration, f"{factor}-{int(time.time())}",
                  args.post_ts_ms)
    wrk = None
    connections = 0
    if factor > 0:
        connections = max(1, round(factor * sustainable * args.think_ms / 1000))
        wrk = run_wrk(args, connections, args.think_ms, args.duration)
    probe.start()
    probe.join()
    wrk_result = {}
    if wrk is not None:
        wrk_result = wrk_json(wrk)
    after = snapshot(host, port)
    seconds = args.duration
    phase = {
        "factor": factor,
        "wrk_connections": connections,
        "offered_max_rps": round(connections * 1000 / args.think_ms)
        if connections else 0,
    }
    if wrk_result:
        phase.update({
            "wrk_rps": wrk_result.get("qps"),
            "wrk_requests": wrk_result.get("requests"),
            "wrk_non_2xx": wrk_result.get("non_2xx"),
            "wrk_shed_share": round(wrk_result["non_2xx"] / wrk_result["requests"], 4)
            if wrk_result.get("requests") else None,
            "wrk_admitted_rps": round((wrk_result["requests"] - wrk_result["non_2xx"])
                                      / wrk_result["duration_s"], 1)
            if wrk_result.get("requests") else None,
            "wrk_p99_all_ms": wrk_result.get("p99_ms"),
            "wrk_socket_errors": wrk_result.get("socket_errors"),
        })
    phase.update(probe.result())
    phase.update({
        "shed_queue_full": int(after["shed_full"] - before["shed_full"]),
        "shed_queue_time": int(after["shed_time"] - before["shed_time"]),
        "ingest_events_per_s": round((after["applied"] - before["applied"]) / seconds, 1),
        "learner_samples_per_s": round((after["samples"] - before["samples"]) / seconds, 1),
        "model_versions": after["model_version"] - before["model_version"],
    })
    return phase


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users-file", required=True)
    ap.add_argument("--lua", required=True)
    ap.add_argument("--sustainable", type=float, required=True,
                    help="sustainable requests/s R0")
    ap.add_argument("--capacity-connections", type=int, default=64)
    ap.add_argument("--factors", default="2 4")
    ap.add_argument("--think-ms", type=int, default=10)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--probe-rate", type=float, default=200)
    ap.add_argument("--post-rate", type=float, default=20)
    ap.add_argument("--post-ts-ms", type=int, default=1573568100000,
                    help="event time of the first POSTed impression (ms); "
                    "past the replayed log's end + 48 h it empties the live "
                    "candidate pool of the log's items")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=10)
    args = ap.parse_args()
    with open(args.users_file) as f:
        users = [l.strip() for l in f if l.strip()]
    phases = [run_phase(args, users, 0, 0)]
    cap = wrk_json(run_wrk(args, args.capacity_connections, 0, args.duration))
    sustainable = args.sustainable
    capacity = {"saturated_connections": args.capacity_connections,
                "saturated_rps": cap["qps"],
                "saturated_admitted_rps": round(
                    (cap["requests"] - cap["non_2xx"]) / cap["duration_s"], 1),
                "saturated_non_2xx": cap["non_2xx"],
                "saturated_p99_ms": cap["p99_ms"]}
    for k in args.factors.split():
        phases.append(run_phase(args, users, float(k), sustainable))
    unloaded = phases[0]["probe_admitted_p99_ms"]
    for p in phases:
        p["admitted_p99_vs_unloaded"] = round(p["probe_admitted_p99_ms"] / unloaded, 2)
    print(json.dumps({"bench": "http_shed", "sustainable_rps": sustainable,
                      "think_ms": args.think_ms, **capacity, "phases": phases}))


if __name__ == "__main__":
    main()
