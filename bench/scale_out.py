#!/usr/bin/env python3
"""Scale-out figures: one `cfrec serve --role trainer` (embedded broker) and
two `--role replica` processes on loopback, fed by `--replay` of a MIND-like
log from `cfrec synth`. Prints one JSON line.

Phase 1 (--duration s, default intervals unless given): the trainer replays
the log while both replicas follow the models topic. Measured: bytes per
second published on the models topic (full images and deltas, from the
trainer's cfrec_models_published_bytes_total{kind}), the full image's size,
and, per replica, the time from the trainer publishing a version to the
replica serving it (p50 and max over the versions it received live; from
the line each replica logs when it stops).

Phase 2 (--wrk-seconds > 0): GET /v1/recommendations with wrk
(bench/http_users.lua) against one replica, then against both at once (one
wrk per replica, each with half the connections), interleaved
--wrk-rounds times. Requests/s of two replicas against one. All processes
share the machine's cores (2 here), so two replicas cannot double one.

Usage:
  python3 bench/scale_out.py [--build build/release] [--users 50000]
      [--items 20000] [--impressions 200000] [--duration 130]
      [--replay-speed 0] [--wrk-seconds 0] [--connections 4]
      [--idle-replay-passes N]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                timeout=10) as r:
        return r.read().decode()


def metrics(port):
    out = {}
    for line in get(port, "/metrics").splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


class Proc:
    """A child whose stderr goes to a file; waits for its HTTP port."""

    def __init__(self, args, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(args, stderr=self.log,
                                  stdout=subprocess.DEVNULL)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_for(self, pattern, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        sys.exit(f"no '{pattern}' in {self.log_path}:\n{self.text()[-2000:]}")

    def port(self):
        return int(self.wait_for(r"HTTP on [0-9.]+:(\d+)").group(1))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def wrk(port, users_file, seconds, connections):
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", os.path.join(HERE, "http_users.lua"),
         f"http://127.0.0.1:{port}", "--", users_file, "10"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wrk_rps(proc):
    out, _ = proc.communicate()
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    return json.loads(line)["qps"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--users", type=int, default=50000)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--impressions", type=int, default=200000)
    ap.add_argument("--duration", type=float, default=130)
    ap.add_argument("--replay-speed", default="0")
    ap.add_argument("--full-interval", default="60")
    ap.add_argument("--delta-interval", default="1")
    ap.add_argument("--wrk-seconds", type=int, default=0)
    ap.add_argument("--wrk-rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--idle-replay-passes", type=int, default=None,
                    help="override the learner config's idle_replay_passes "
                    "(0: the model changes only with new events)")
    a = ap.parse_args()
    binary = os.path.join(a.build, "app", "cfrec")
    work = tempfile.mkdtemp(prefix="cfrec-scale-out-")
    procs = []
    try:
        subprocess.run(
            [binary, "synth", "--mode", "mind-like", "--out", work + "/log",
             "--ml-users", str(a.users), "--ml-items", str(a.items),
             "--ml-impressions", str(a.impressions)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = work + "/log/behaviors.tsv"
        users_file = work + "/users.txt"
        with open(log) as f, open(users_file, "w") as out:
            seen = set()
            for line in f:
                u = line.split("\t")[1]
                if u not in seen:
                    seen.add(u)
                    out.write(u + "\n")
        config = []
        if a.idle_replay_passes is not None:
            with open(os.path.join(HERE, "..", "learner", "config",
                                   "default.json")) as f:
                c = json.load(f)
            c["idle_replay_passes"] = a.idle_replay_passes
            with open(work + "/config.json", "w") as f:
                json.dump(c, f)
            config = ["--config", work + "/config.json"]
        trainer = Proc([binary, "serve", "--role", "trainer", "--http",
                        "127.0.0.1:0", "--data-dir", work + "/state",
                        "--replay", log, "--replay-speed", a.replay_speed,
                        "--models-full-interval", a.full_interval,
                        "--models-delta-interval", a.delta_interval] + config,
                       work + "/trainer.log")
        procs.append(trainer)
        tport = trainer.port()
        brokers = trainer.wait_for(r"embedded Kafka broker at (\S+)").group(1)

        def replica(name):
            p = Proc([binary, "serve", "--role", "replica", "--kafka", brokers,
                      "--http", "127.0.0.1:0"], f"{work}/{name}.log")
            procs.append(p)
            return p
        replicas = [replica("replica1"), replica("replica2")]
        rports = [r.port() for r in replicas]
        # The window starts at the first full image.
        deadline = time.time() + 120
        while metrics(tport).get(
                "cfrec_models_full_images_published_total", 0) < 1:
            if time.time() > deadline:
                sys.exit("no full image published")
            time.sleep(0.2)
        m0, t0 = metrics(tport), time.time()
        time.sleep(a.duration)
        m1, t1 = metrics(tport), time.time()
        rm = [metrics(p) for p in rports]
        elapsed = t1 - t0
        full_key = 'cfrec_models_published_bytes_total{kind="full"}'
        delta_key = 'cfrec_models_published_bytes_total{kind="delta"}'
        full_bytes = m1.get(full_key, 0) - m0.get(full_key, 0)
        delta_bytes = m1.get(delta_key, 0) - m0.get(delta_key, 0)
        model = json.loads(get(tport, "/v1/model"))
        latency = []
        for r, name in zip(replicas, ["replica1", "replica2"]):
            r.stop()
            line = re.search(
                r"publish-to-serve over (\d+) versions: p50 (\d+) ms, max "
                r"(\d+) ms", r.text())
            latency.append({"replica": name, "versions": int(line.group(1)),
                            "p50_ms": int(line.group(2)),
                            "max_ms": int(line.group(3))})
        result = {
            "bench": "scale_out",
            "users": a.users, "items": a.items,
            "model_users": model.get("users"), "model_items": model.get("items"),
            "ranker": model.get("ranker"), "dim": model.get("dim"),
            "full_interval_s": float(a.full_interval),
            "delta_interval_s": float(a.delta_interval),
            "replay_speed": float(a.replay_speed),
            "idle_replay_passes": a.idle_replay_passes,
            "window_s": round(elapsed, 1),
            "events_per_s": round((m1["cfrec_events_applied_total"] -
                                   m0["cfrec_events_applied_total"]) / elapsed),
            "full_images": m1["cfrec_models_full_images_published_total"] -
            m0["cfrec_models_full_images_published_total"],
            "deltas": m1["cfrec_models_deltas_published_total"] -
            m0["cfrec_models_deltas_published_total"],
            "last_image_bytes": m1["cfrec_models_last_image_bytes"],
            "models_bytes_per_s": round((full_bytes + delta_bytes) / elapsed),
            "full_bytes_per_s": round(full_bytes / elapsed),
            "delta_bytes_per_s": round(delta_bytes / elapsed),
            "replica_versions_served": [r["cfrec_model_version"] for r in rm],
            "trainer_version": model.get("model_version"),
            "replica_deltas_skipped": [
                r.get("cfrec_replica_deltas_skipped_total") for r in rm],
            "replica_images_dropped": [
                r.get("cfrec_replica_images_dropped_total") for r in rm],
            "publish_to_serve": latency,
            "nproc": os.cpu_count(),
        }
        print(json.dumps(result), file=sys.stderr, flush=True)
        if a.wrk_seconds > 0:
            replicas = [replica("replica3"), replica("replica4")]
            rports = [r.port() for r in replicas]
            for p in rports:
                deadline = time.time() + 120
                while True:
                    try:
                        get(p, "/v1/model")
                        break
                    except Exception:
                        if time.time() > deadline:
                            sys.exit("replica never served")
                        time.sleep(0.2)
            one, two = [], []
            for _ in range(a.wrk_rounds):
                one.append(wrk_rps(wrk(rports[0], users_file, a.wrk_seconds,
                                       a.connections)))
                both = [wrk(p, users_file, a.wrk_seconds,
                            max(1, a.connections // 2)) for p in rports]
                two.append(sum(wrk_rps(w) for w in both))
            result["wrk_seconds"] = a.wrk_seconds
            result["connections"] = a.connections
            result["rps_one_replica"] = [round(x) for x in one]
            result["rps_two_replicas"] = [round(x) for x in two]
        print(json.dumps(result))
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
