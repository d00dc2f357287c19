#!/usr/bin/env python3
"""Checks deploy/ against the binary it deploys.

Docker and Kubernetes cannot run where the tests run, so this test holds the
files to what can be checked here:
  - every `cfrec serve` invocation in deploy/ (the Dockerfile's CMD, the
    compose services' commands, the Kubernetes containers' args) uses only
    flags that `cfrec serve --help` lists, with a value where the flag takes
    one and a listed value where it lists its choices;
  - the image is built by the project's own install-and-build script, runs as
    a non-root user and has a HEALTHCHECK on /healthz;
  - deploy/runtime-packages.sh names a Debian package for every library the
    built binary links (what the image's runtime stage installs);
  - the load balancer and Prometheus point at the compose services that
    exist, on the port the services listen on; replicas' readiness is /readyz.

usage: deploy_test.py --cfrec BINARY --deploy DIR
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")


def serve_options(cfrec):
    """{flag: (takes_value, choices or None)} from `cfrec serve --help`."""
    text = subprocess.run([cfrec, "serve", "--help"], check=True,
                          capture_output=True, text=True).stdout
    options = {}
    for line in text.splitlines():
        m = re.match(r"^\s+(?:-\w,)?(--[A-Za-z0-9][\w-]*)( [^ ]+)?", line)
        if not m:
            continue
        kind = m.group(2)
        choices = None
        if kind:
            c = re.search(r"\{([^}]*)\}", kind)
            if c:
                choices = {v.strip().strip('"') for v in c.group(1).split(",")}
        options[m.group(1)] = (kind is not None, choices)
    if "--http" not in options:
        raise SystemExit(f"could not read the options of {cfrec} serve --help")
    return options


def check_invocation(where, argv, options):
    """argv starts after the binary: ["serve", "--flag", "value", ...]."""
    if not argv or argv[0] != "serve":
        fail(where, f"expected a `serve` command, got {argv[:1]}")
        return
    seen = set()
    i = 1
    while i < len(argv):
        arg = str(argv[i])
        if not arg.startswith("--"):
            fail(where, f"stray argument {arg!r}")
            i += 1
            continue
        flag, eq, inline = arg.partition("=")
        if flag not in options:
            fail(where, f"{flag} is not an option of `cfrec serve`")
            skip_value = not eq and i + 1 < len(argv) and not str(
                argv[i + 1]).startswith("--")
            i += 2 if skip_value else 1
            continue
        if flag in seen:
            fail(where, f"{flag} given twice")
        seen.add(flag)
        takes_value, choices = options[flag]
        if not takes_value:
            if eq:
                fail(where, f"{flag} takes no value")
            i += 1
            continue
        if eq:
            value = inline
            i += 1
        elif i + 1 < len(argv) and not str(argv[i + 1]).startswith("--"):
            value = str(argv[i + 1])
            i += 2
        else:
            fail(where, f"{flag} needs a value")
            i += 1
            continue
        # Kubernetes expands $(VAR) from the environment at start.
        if choices and "$(" not in value and value not in choices:
            fail(where, f"{flag} {value!r} is not one of {sorted(choices)}")


def dockerfile_checks(path, options):
    text = path.read_text()
    stages = re.split(r"(?m)^FROM ", text)[1:]
    if len(stages) < 2:
        fail(path.name, "expected a build stage and a runtime stage")
        return
    build, runtime = stages[0], stages[-1]
    if not build.startswith("debian:12") or not runtime.startswith("debian:12"):
        fail(path.name, "both stages must be Debian 12")
    if "./scripts/dev.sh build" not in build:
        fail(path.name, "the build stage must run ./scripts/dev.sh build")
    if "deploy/runtime-packages.sh" not in build:
        fail(path.name, "the build stage must list the runtime packages")
    for forbidden in ("g++", "cmake", "-dev "):
        if forbidden in runtime:
            fail(path.name, f"the runtime stage installs build tools ({forbidden})")
    user = re.findall(r"(?m)^USER\s+(\S+)", runtime)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        fail(path.name, "the runtime stage must run as a non-root USER")
    if not re.search(r"(?m)^HEALTHCHECK\b[\s\S]*?/healthz", runtime):
        fail(path.name, "no HEALTHCHECK on /healthz")
    entry = re.findall(r"(?m)^ENTRYPOINT\s+(\[.*\])", runtime)
    cmd = re.findall(r"(?m)^CMD\s+(\[.*\])", runtime)
    if entry != ['["cfrec"]'] or not cmd:
        fail(path.name, 'expected ENTRYPOINT ["cfrec"] and a CMD')
        return
    check_invocation(f"{path.name} CMD", json.loads(cmd[-1]), options)


def compose_checks(path, options):
    doc = yaml.safe_load(path.read_text())
    services = doc["services"]
    cfrec_services = {n: s for n, s in services.items()
                      if s.get("image", "").startswith("cfrec")}
    roles = {}
    for name, service in cfrec_services.items():
        argv = service.get("command")
        if not isinstance(argv, list):
            fail(f"{path.name} {name}", "command must be a list")
            continue
        check_invocation(f"{path.name} {name}", argv, options)
        if "--role" in argv:
            roles.setdefault(argv[argv.index("--role") + 1], []).append(name)
        if "--http" not in argv or not str(
                argv[argv.index("--http") + 1]).endswith(":8080"):
            fail(f"{path.name} {name}", "must listen on --http 0.0.0.0:8080")
    if len(roles.get("trainer", [])) != 1:
        fail(path.name, f"expected one trainer, got {roles.get('trainer')}")
    if len(roles.get("replica", [])) < 2:
        fail(path.name, f"expected two replicas, got {roles.get('replica')}")
    kafka = [n for n, s in services.items()
             if "kafka" in s.get("image", "") and
             "KAFKA_PROCESS_ROLES" in s.get("environment", {})]
    if not kafka:
        fail(path.name, "no Kafka broker service")
    elif "controller" not in services[kafka[0]]["environment"][
            "KAFKA_PROCESS_ROLES"]:
        fail(path.name, "the broker must run in KRaft mode (controller role)")

    base = path.parent
    nginx = (base / "compose" / "nginx.conf").read_text()
    upstream = set(re.findall(r"(?m)^\s*server\s+([\w-]+):8080", nginx))
    if upstream != set(roles.get("replica", [])):
        fail("nginx.conf", f"upstream {sorted(upstream)} != replicas "
             f"{sorted(roles.get('replica', []))}")
    prometheus = yaml.safe_load((base / "compose" / "prometheus.yml").read_text())
    targets = {t.split(":")[0]
               for job in prometheus["scrape_configs"]
               for group in job["static_configs"] for t in group["targets"]}
    if targets != set(cfrec_services):
        fail("prometheus.yml", f"scrapes {sorted(targets)}, cfrec services "
             f"are {sorted(cfrec_services)}")
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./") and not (base / source).exists():
                fail(f"{path.name} {name}", f"mounts missing {source}")


def kubernetes_checks(directory, options):
    kinds = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or "metadata" not in doc:
                continue
            kinds.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
            pod = doc.get("spec", {}).get("template", {}).get("spec")
            if not pod:
                continue
            for container in pod.get("containers", []):
                if container.get("image") != "cfrec":
                    continue
                where = f"{path.name} {doc['kind']}/{doc['metadata']['name']}"
                argv = container.get("args", [])
                check_invocation(where, argv, options)
                probe = container.get("readinessProbe", {}).get("httpGet", {})
                if probe.get("path") != "/readyz":
                    fail(where, "readiness must be GET /readyz")
                live = container.get("livenessProbe", {}).get("httpGet", {})
                if live.get("path") != "/healthz":
                    fail(where, "liveness must be GET /healthz")
                role = argv[argv.index("--role") + 1] if "--role" in argv else "all"
                if doc["kind"] == "StatefulSet" and role != "trainer":
                    fail(where, "the StatefulSet must run the trainer")
                if doc["kind"] == "Deployment" and role != "replica":
                    fail(where, "the Deployment must run replicas")
                if doc["kind"] == "StatefulSet" and not doc["spec"].get(
                        "volumeClaimTemplates"):
                    fail(where, "the trainer needs a volume for its store")
    for kind in ("Deployment", "StatefulSet", "Service"):
        if kind not in kinds:
            fail("k8s", f"no {kind}")
    listed = set(yaml.safe_load(
        (directory / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    if listed != present:
        fail("kustomization.yaml", f"lists {sorted(listed)}, "
             f"the folder has {sorted(present)}")


def runtime_packages_check(cfrec, deploy):
    result = subprocess.run([deploy / "runtime-packages.sh", cfrec],
                            capture_output=True, text=True)
    packages = result.stdout.split()
    if result.returncode != 0:
        fail("runtime-packages.sh", result.stderr.strip())
    elif not any(p.startswith("librdkafka") for p in packages):
        fail("runtime-packages.sh", f"no librdkafka among {packages}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfrec", required=True, type=Path)
    parser.add_argument("--deploy", required=True, type=Path)
    args = parser.parse_args()
    options = serve_options(args.cfrec)
    dockerfile_checks(args.deploy / "Dockerfile", options)
    compose_checks(args.deploy / "compose.yaml", options)
    kubernetes_checks(args.deploy / "k8s", options)
    runtime_packages_check(args.cfrec, args.deploy)
    readme = (args.deploy / "README.md")
    if not readme.exists():
        fail("deploy", "no README.md")
    for f in failures:
        print("FAIL", f)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
