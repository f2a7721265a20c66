"""`make bench`: init, first response, warm self-overhead, round trips, memory and the layer, in one table.

The three programs in bench/ (this project's handler, the floor, a naive peer) run on Python 3.13 against
x86_64 builds of the layer's requirements with bytecode compiled as the layer compiles it, each cold start a
fresh process (`-S`: no site hooks of this machine), the programs taking turns, against the stand-ins (moto's
server, the Stripe emulator, the dev issuer) running in this process. Results also go to .bench/latest.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "300"))
PROGRAMS = ("project", "floor", "naive")
APP = "https://app.example.com"
TABLE = "portal-links-customers-bench"
API_VERSION = "2026-10-28.endive"
INIT_TO_FLOOR, INIT_TO_PEER, FIRST_TO_FLOOR, P50_MS, P99_MS = 1.05, 0.85, 1.10, 1.0, 3.0  # issue 11


def main() -> None:
    python = python_313()
    deps = dependencies(python)
    run_dir = program_copies(python)
    layer = layer_build(python)
    with stand_ins() as (environment, scenario_file):
        env = {
            **environment,
            "PYTHONPATH": os.pathsep.join(str(run_dir / part) for part in ("programs", "opt", "task"))
            + os.pathsep
            + str(deps),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONWARNINGS": "ignore::UserWarning",  # Powertools' "no metrics to publish", for every program
        }
        cold = cold_starts(python, env, scenario_file)
        warm = {
            "project": child(python, env, "warm", "project", scenario_file, rounds=ROUNDS),
            "floor": child(python, env, "warm", "floor", scenario_file, rounds=ROUNDS // 3),
        }
    evidence = imports_beyond_floor(python, env)
    table = render(cold, warm, layer_sizes(layer), evidence)
    header = machine(python, deps)
    report = f"{header}\n\n{table}\n"
    print(report)
    (WORK / "latest.md").write_text(report)


def python_313() -> str:
    """As layers/shared/Makefile finds it: PYTHON_313, else python3.13 on PATH, else pyenv's 3.13."""
    candidates = [os.environ.get("PYTHON_313", ""), "python3.13"]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False).stdout.strip()
        candidates += sorted(str(p) for p in Path(root).glob("versions/3.13*/bin/python3.13"))
    for candidate in filter(None, candidates):
        # The interpreter's own path: a pyenv shim found through PYENV_VERSION would not run in the children.
        check = "import sys; assert sys.version_info[:2] == (3, 13); print(sys.executable)"
        try:
            found = subprocess.run([candidate, "-c", check], capture_output=True, text=True, check=False)
        except OSError:
            continue
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    sys.exit("make bench: Python 3.13 is needed (set PYTHON_313=/path/to/python3.13)")


def requirements() -> list[str]:
    """The layer's, snapshot-restore-py as the Lambda runtime provides it, and the naive peer's tracer."""
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    layer, peer = ROOT / "layers/shared/requirements.txt", ROOT / "bench/requirements.txt"
    return ["-r", str(layer), "-r", str(peer), *[line for line in dev if line.startswith("snapshot-")]]


def dependencies(python: str) -> Path:
    """This machine's build of the layer's requirements, bytecode compiled as the layer does; cached."""
    text = "".join(Path(r).read_text() for r in requirements()[1:4:2]) + " ".join(requirements()) + python
    target = WORK / f"deps-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    if not (target / ".complete").exists():
        for stale in WORK.glob("deps-*"):
            shutil.rmtree(stale, ignore_errors=True)
        pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
        command = [*pip, "--target", str(target), *requirements()]
        installed = subprocess.run(command, capture_output=True, text=True, check=False)
        if installed.returncode != 0:
            sys.exit(
                f"make bench: installing the layer's requirements for Python 3.13 failed:\n{installed.stderr}"
            )
        compile_bytecode(python, target)
        (target / ".complete").touch()
    return target


def compile_bytecode(python: str, *folders: Path) -> None:
    command = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    subprocess.run([*command, *map(str, folders)], check=True, stdout=subprocess.DEVNULL)


def program_copies(python: str) -> Path:
    """The layer package (/opt/python), the function (/var/task) and the bench programs, compiled."""
    run_dir = WORK / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "layers/shared/portal_links", run_dir / "opt/portal_links", ignore=ignore)
    shutil.copytree(ROOT / "functions/portal", run_dir / "task", ignore=ignore)
    (run_dir / "programs").mkdir()
    for program in (*PROGRAMS, "child"):
        shutil.copy(ROOT / f"bench/{program}.py", run_dir / "programs")
    compile_bytecode(python, run_dir)
    return run_dir


def layer_build(python: str) -> Path | None:
    """The layer exactly as `sam build` makes it (aarch64 wheels), via its Makefile; cached."""
    text = (ROOT / "layers/shared/requirements.txt").read_text() + (
        ROOT / "layers/shared/Makefile"
    ).read_text()
    target = WORK / f"layer-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    if not (target / ".complete").exists():
        for stale in WORK.glob("layer-*"):
            shutil.rmtree(stale, ignore_errors=True)
        make = ["make", "-s", "-C", str(ROOT / "layers/shared"), "build-SharedLayer"]
        built = subprocess.run(
            [*make, f"ARTIFACTS_DIR={target}", f"PYTHON_313={python}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            print(
                f"make bench: the layer did not build, sizes omitted:\n{built.stderr[-500:]}", file=sys.stderr
            )
            return None
        (target / ".complete").touch()
    return target / "python"


@contextmanager
def stand_ins() -> Iterator[tuple[dict[str, str], Path]]:
    """moto's server (DynamoDB, Secrets Manager), the Stripe emulator and the dev issuer, seeded."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from local.apigw import http_api_event
    from local.demo import link_customer
    from local.identity_provider import IdentityProvider
    from local.stripe_emulator import StripeEmulator
    from local.template import customers_table_definition

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    emulator, identity = StripeEmulator(), IdentityProvider()
    emulator.serve()
    identity.serve()
    try:
        host, port = moto.get_host_and_port()
        aws_url = f"http://{host}:{port}"
        aws = {"region_name": "us-east-1", "endpoint_url": aws_url}
        credentials = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        dynamodb = boto3.client("dynamodb", **aws, **credentials)  # type: ignore[call-overload]
        dynamodb.create_table(**customers_table_definition(TABLE))
        secrets = boto3.client("secretsmanager", **aws, **credentials)  # type: ignore[call-overload]
        secret_arn = secrets.create_secret(Name="bench/stripe-key", SecretString="sk_test_bench")["ARN"]
        pro = emulator.add_product("Pro")
        team = emulator.add_product("Team")
        monthly, team_monthly = emulator.add_price(pro, 2000), emulator.add_price(team, 5000)
        subscriber, both = emulator.add_customer(), emulator.add_customer()
        subscription = emulator.add_subscription(subscriber, [monthly])
        emulator.add_subscription(both, [monthly])
        emulator.add_subscription(both, [team_monthly])
        link_customer(dynamodb, TABLE, "bench-subscriber", subscriber)
        link_customer(dynamodb, TABLE, "bench-two-plans", both)

        def click(user: str | None, path: str = "/portal", query: str = "") -> dict[str, Any]:
            headers = {"host": "api.example.com", "accept": "application/json"}
            if user is not None:
                headers["authorization"] = f"Bearer {identity.token(user, expires_in=4 * 3600)}"
            return http_api_event("POST", path, headers=headers, query=query)

        scenario = {
            "first": click("bench-subscriber"),
            "warm": {
                "homepage": click("bench-subscriber"),
                "subscription flow": click("bench-subscriber", "/portal/subscription_cancel"),
                "unauthenticated": click(None),
            },
            "round_trips": {
                "homepage": click("bench-subscriber"),
                "homepage, first visit": click("bench-newcomer"),
                "subscription flow": click("bench-subscriber", "/portal/subscription_cancel"),
                "subscription flow, named": click(
                    "bench-subscriber", "/portal/subscription_cancel", f"subscription={subscription}"
                ),
                "subscription flow, ambiguous": click("bench-two-plans", "/portal/subscription_update"),
                "unauthenticated": click(None),
            },
        }
        scenario_file = WORK / "scenario.json"
        scenario_file.write_text(json.dumps(scenario))
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_ENDPOINT_URL": aws_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_LAMBDA_FUNCTION_NAME": "PortalFunction",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "LAMBDA_TASK_ROOT": "/var/task",
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
            "CUSTOMERS_TABLE": TABLE,
            "AUTH_ISSUER": identity.issuer,
            "AUTH_AUDIENCE": identity.audience,
            "AUTH_TOKEN_USE": "oidc",
            "ALLOWED_ORIGINS": APP,
            "ALLOW_INSECURE_LOCALHOST": "true",
            "DEFAULT_RETURN_URL": f"{APP}/account",
            "SIGN_IN_URL": f"{APP}/sign-in",
            "STRIPE_SECRET_ARN": secret_arn,
            "STRIPE_API_BASE": emulator.url,
            "STRIPE_API_VERSION": API_VERSION,
            "POWERTOOLS_SERVICE_NAME": "portal-links",
            "POWERTOOLS_METRICS_NAMESPACE": "PortalLinks",
        }
        yield environment, scenario_file
    finally:
        identity.shutdown()
        emulator.shutdown()
        moto.stop()


def child(
    python: str, env: dict[str, str], mode: str, program: str, scenario: Path, rounds: int = 0
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", dir=WORK) as out:
        command = [python, "-S", str(WORK / "run/programs/child.py"), mode, program, str(scenario), out.name]
        spawned = {"BENCH_SPAWNED_NS": str(time.monotonic_ns()), "BENCH_ROUNDS": str(rounds)}
        subprocess.run(command, env={**env, **spawned}, check=True, stdout=subprocess.DEVNULL)
        figures: dict[str, Any] = json.loads(Path(out.name).read_text())
    return figures


def cold_starts(python: str, env: dict[str, str], scenario: Path) -> dict[str, list[dict[str, Any]]]:
    """RUNS fresh processes each, taking turns (the order rotates), plus the project restored by SnapStart."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in (*PROGRAMS, "restored")}
    turns = [(name, "cold", name) for name in PROGRAMS] + [("restored", "restore", "project")]
    for run in range(RUNS):
        for key, mode, program in turns[run % 4 :] + turns[: run % 4]:
            figures = child(python, env, mode, program, scenario)
            if figures["first_status"] not in (200, 303):
                sys.exit(
                    f"make bench: {key}'s first request answered {figures['first_status']}, not the portal"
                )
            runs[key].append(figures)
    return runs


def imports_beyond_floor(python: str, env: dict[str, str]) -> list[tuple[str, float]]:
    """`python -X importtime`: the modules the project imports that the floor does not, by self time."""

    def self_times(program: str) -> dict[str, float]:
        done = subprocess.run(
            [python, "-S", "-X", "importtime", "-c", f"import {program}"],
            env={**env, "BENCH_SPAWNED_NS": "0"},
            capture_output=True,
            text=True,
            check=True,
        )
        times = {}
        for line in done.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                own, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
                if own.isdigit():
                    times[name] = int(own) / 1000
        return times

    project, floor = self_times("project"), self_times("floor")
    # The handler module's own body (building its clients) has its like in the floor's body.
    beyond = {name: ms for name, ms in project.items() if name not in {*floor, "project", "portal_handler"}}
    return sorted(beyond.items(), key=lambda item: -item[1])


def layer_sizes(layer: Path | None) -> tuple[float, list[tuple[str, float]]] | None:
    if layer is None:
        return None
    sizes: dict[str, int] = {}
    for path in layer.rglob("*"):
        if path.is_file():
            top = path.relative_to(layer).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    packages: dict[str, float] = {}
    for name, size in sizes.items():
        package = name.split("-")[0] if name.endswith((".dist-info", ".libs")) else name.removesuffix(".py")
        packages[package] = packages.get(package, 0) + size / 1e6
    return sum(sizes.values()) / 1e6, sorted(packages.items(), key=lambda item: -item[1])


def machine(python: str, deps: Path) -> str:
    versions = subprocess.run(
        [python, "-S", "-c", VERSIONS],
        env={"PYTHONPATH": str(deps)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return (
        f"make bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}; {versions}; "
        f"{RUNS} cold starts per program, {ROUNDS} warm rounds"
    )


VERSIONS = """
import sys
from importlib.metadata import version
names = ("boto3", "botocore", "stripe", "PyJWT", "cryptography", "aws-lambda-powertools")
print(f"Python {sys.version.split()[0]}, " + ", ".join(f"{n} {version(n)}" for n in names))
"""


def render(
    cold: dict[str, list[dict[str, Any]]],
    warm: dict[str, dict[str, Any]],
    layer: tuple[float, list[tuple[str, float]]] | None,
    beyond_floor: list[tuple[str, float]],
) -> str:
    rows: list[tuple[str, ...]] = []

    def timing(label: str, key: str, target: str) -> None:
        series = {name: [run[key] for run in cold[name]] for name in PROGRAMS}
        to_floor = [p / f for p, f in zip(series["project"], series["floor"], strict=True)]
        to_naive = [p / n for p, n in zip(series["project"], series["naive"], strict=True)]
        rows.append(
            (
                label,
                *(spread(series[name], "{:.0f}") for name in PROGRAMS),
                spread(to_floor, "{:.2f}"),
                spread(to_naive, "{:.2f}"),
                target,
            )
        )

    timing("init CPU, ms", "init_cpu_ms", f"≤ {INIT_TO_FLOOR} x floor, ≤ {INIT_TO_PEER} x peer")
    timing("init wall, ms", "init_wall_ms", "")
    timing("first response CPU, ms", "first_cpu_ms", f"≤ {FIRST_TO_FLOOR} x floor")
    timing("first response wall, ms", "first_wall_ms", "")
    restored = cold["restored"]
    rows.append(
        (
            "first response after a SnapStart restore, CPU / wall ms",
            f"{spread([r['first_cpu_ms'] for r in restored], '{:.0f}')} / "
            f"{spread([r['first_wall_ms'] for r in restored], '{:.0f}')}",
            "",
            "",
            "",
            "",
            "",
        )
    )
    for route in warm["project"]["warm"]:
        for kind, handler, replay in (("CPU", 0, 1), ("wall", 2, 3)):
            cells = []
            for name in ("project", "floor"):
                samples = warm[name]["warm"].get(route)
                if not samples or (name == "floor" and route == "unauthenticated"):
                    cells.append("")
                    continue
                overhead = sorted((s[handler] - s[replay]) / 1e6 for s in samples)
                cells.append(f"{percentile(overhead, 50):.2f} / {percentile(overhead, 99):.2f}")
            target = f"p50 ≤ {P50_MS:g}, p99 ≤ {P99_MS:g}" if kind == "CPU" else ""
            rows.append(
                (f"warm self-overhead, {route}, {kind} p50 / p99 ms", cells[0], cells[1], "", "", "", target)
            )
    handler_cpu = []
    for name in ("project", "floor"):
        routes = warm[name]["warm"]
        each = (f"{percentile(sorted(s[0] / 1e6 for s in routes[r]), 50):.1f}" for r in routes)
        handler_cpu.append(" / ".join(each))
    rows.append(
        ("warm request CPU p50, whole handler, ms (same routes)", *handler_cpu, "", "", "", "", "")[:7]
    )
    for route, counts in warm["project"]["round_trips"].items():
        floor_counts = warm["floor"]["round_trips"].get(route) if route in FLOOR_ROUTES else None
        rows.append(
            (
                f"round trips, {route} (DynamoDB + Stripe)",
                trips(counts),
                trips(floor_counts) if floor_counts is not None else FLOOR_MINIMUM[route],
                "",
                "",
                "",
                "the floor",
            )
        )
    first = warm["project"]["first_calls"]
    rows.append(
        (
            "first request adds (Secrets Manager + issuer)",
            f"{first.get('secretsmanager', 0)} + {first.get('identity provider', 0)}",
            f"{warm['floor']['first_calls'].get('secretsmanager', 0)} + "
            f"{warm['floor']['first_calls'].get('identity provider', 0)}",
            "",
            "",
            "",
            "",
        )
    )
    rows.append(
        (
            "peak RSS after init / after the warm loop, MB",
            f"{median(r['rss_init_mb'] for r in cold['project']):.0f} / {warm['project']['rss_warm_mb']:.0f}",
            f"{median(r['rss_init_mb'] for r in cold['floor']):.0f} / {warm['floor']['rss_warm_mb']:.0f}",
            f"{median(r['rss_init_mb'] for r in cold['naive']):.0f} / —",
            "",
            "",
            "",
        )
    )
    if layer is not None:
        total, packages = layer
        largest = ", ".join(f"{name} {size:.1f}" for name, size in packages[:6])
        rows.append(
            ("layer unzipped, MB (largest packages)", f"{total:.1f} ({largest})", "", "", "", "", "< 250")
        )
    by_top: dict[str, float] = {}
    for name, ms in beyond_floor:
        by_top[name.split(".")[0]] = by_top.get(name.split(".")[0], 0) + ms
    by_package = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(by_top.items(), key=lambda p: -p[1]))
    top = ", ".join(f"{name} {ms:.1f}" for name, ms in beyond_floor[:4])
    total = sum(ms for _, ms in beyond_floor)
    evidence = f"{total:.1f} in {len(beyond_floor)} modules: {by_package}; largest: {top}"
    rows.append(("imports beyond the floor, self ms (-X importtime)", evidence, "", "", "", "", ""))
    head = (
        "measure (median [min-max])",
        "project",
        "floor",
        "naive peer",
        "project / floor",
        "project / peer",
        "target",
    )
    lines = [head, tuple("---" for _ in head), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


FLOOR_ROUTES = ("homepage", "subscription flow", "unauthenticated")
# What any implementation must call where bench/floor.py does not implement the route.
FLOOR_MINIMUM = {
    "homepage, first visit": "2 + 2 (min)",
    "subscription flow, named": "1 + 2 (min)",
    "subscription flow, ambiguous": "1 + 2 (min)",
}


def trips(counts: dict[str, int]) -> str:
    return f"{counts.get('dynamodb', 0)} + {counts.get('stripe', 0)}"


def spread(values: Sequence[float], form: str) -> str:
    return f"{form.format(median(values))} [{form.format(min(values))}-{form.format(max(values))}]"


def median(values: Any) -> float:
    return float(statistics.median(list(values)))


def percentile(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    WORK.mkdir(exist_ok=True)
    main()
