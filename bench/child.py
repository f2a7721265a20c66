"""One measured process on Python 3.13: import a bench program (its init), answer requests, report JSON.

`python3.13 -S child.py MODE PROGRAM SCENARIO OUT`; MODE is `cold` (init, then the first request), `restore`
(init, the SnapStart hooks as the runtime runs them, then the first request) or `warm` (the first request,
then each route's round trips and, for ROUNDS rounds, every route's request paired with a replay of the
exact DynamoDB and Stripe calls it made, through the same clients). Only the standard library is imported
before the program, so init is the program's alone.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # not `from typing import ...`: nothing but the program may be imported before it
if TYPE_CHECKING:
    from typing import Any

    Call = tuple[str, Any, tuple[Any, ...], dict[str, Any]]


def main() -> None:
    mode, program, scenario_path, out_path = sys.argv[1:5]
    __import__(program)  # the init being measured
    init_cpu_ns, init_wall_ns = time.process_time_ns(), time.monotonic_ns()

    import importlib
    import json
    import os

    module = importlib.import_module(program)
    spawned_ns = int(os.environ["BENCH_SPAWNED_NS"])
    with open(scenario_path) as file:
        scenario = json.load(file)
    figures: dict[str, object] = {
        "init_cpu_ms": init_cpu_ns / 1e6,
        "init_wall_ms": (init_wall_ns - spawned_ns) / 1e6,
        "rss_init_mb": peak_rss_mb(),
    }
    if mode == "restore":
        import snapshot_restore_py

        for hook, args, kwargs in reversed(snapshot_restore_py.get_before_snapshot()):
            hook(*args, **kwargs)
        for hook, args, kwargs in snapshot_restore_py.get_after_restore():
            hook(*args, **kwargs)
    calls = Calls() if mode == "warm" else None
    cpu, wall = time.process_time_ns(), time.perf_counter_ns()
    response = module.lambda_handler(scenario["first"], Context())
    figures["first_cpu_ms"] = (time.process_time_ns() - cpu) / 1e6
    figures["first_wall_ms"] = (time.perf_counter_ns() - wall) / 1e6
    figures["first_status"] = response["statusCode"]
    if calls is not None:
        figures["first_calls"] = calls.count()
        figures["round_trips"] = round_trips(module, scenario, calls)
        figures["warm"] = warm(module, scenario, calls, int(os.environ["BENCH_ROUNDS"]))
        figures["rss_warm_mb"] = peak_rss_mb()
    with open(out_path, "w") as file:
        json.dump(figures, file)


def peak_rss_mb() -> float:
    """This process image's peak resident memory (VmHWM; ru_maxrss would count the parent's before exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Context:
    """The parts of a LambdaContext that the programs read."""

    function_name = "PortalFunction"
    function_version = "1"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PortalFunction:live"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/PortalFunction"
    log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 28_000


class Calls:
    """Records the AWS and Stripe API calls a request makes, to count them and to replay them."""

    def __init__(self) -> None:
        import urllib.request

        import botocore.client
        import stripe._api_requestor

        self.recorded: list[Call] = []
        client_class: Any = botocore.client.BaseClient
        requestor_class: Any = stripe._api_requestor._APIRequestor
        self.aws_call, self.stripe_call = client_class._make_api_call, requestor_class.request
        self.fetch = urllib.request.urlopen
        calls = self

        def aws_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            calls.recorded.append(
                (client.meta.service_model.service_name, client, (operation, dict(params)), {})
            )
            return calls.aws_call(client, operation, params)

        def stripe_call(requestor: Any, *args: Any, **kwargs: Any) -> Any:
            calls.recorded.append(("stripe", requestor, args, kwargs))
            return calls.stripe_call(requestor, *args, **kwargs)

        def fetch(*args: Any, **kwargs: Any) -> Any:
            calls.recorded.append(("identity provider", None, args, kwargs))
            return calls.fetch(*args, **kwargs)

        client_class._make_api_call, requestor_class.request = aws_call, stripe_call
        setattr(urllib.request, "urlopen", fetch)  # noqa: B010 - typeshed's overloads do not fit a recorder

    def take(self) -> list[Call]:
        taken, self.recorded = self.recorded, []
        return taken

    def count(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for service, *_ in self.take():
            counts[service] = counts.get(service, 0) + 1
        return counts

    def replay(self, recorded: list[Call]) -> None:
        for service, target, args, kwargs in recorded:
            if service == "stripe":
                self.stripe_call(target, *args, **kwargs)
            elif service != "identity provider":
                self.aws_call(target, *args)


def round_trips(module: Any, scenario: dict[str, Any], calls: Calls) -> dict[str, dict[str, int]]:
    counted = {}
    for route, event in scenario["round_trips"].items():
        calls.take()
        module.lambda_handler(event, Context())
        counted[route] = calls.count()
    return counted


def warm(
    module: object, scenario: dict[str, object], calls: Calls, rounds: int
) -> dict[str, list[list[int]]]:
    """Per route, per round: [handler CPU, replay CPU, handler wall, replay wall] in nanoseconds."""
    samples: dict[str, list[list[int]]] = {route: [] for route in scenario["warm"]}  # type: ignore[attr-defined]
    for _ in range(rounds):
        for route, event in scenario["warm"].items():  # type: ignore[attr-defined]
            calls.take()
            cpu, wall = time.process_time_ns(), time.perf_counter_ns()
            module.lambda_handler(event, Context())  # type: ignore[attr-defined]
            handler_cpu, handler_wall = time.process_time_ns() - cpu, time.perf_counter_ns() - wall
            made = calls.take()
            cpu, wall = time.process_time_ns(), time.perf_counter_ns()
            calls.replay(made)
            replay_cpu, replay_wall = time.process_time_ns() - cpu, time.perf_counter_ns() - wall
            samples[route].append([handler_cpu, replay_cpu, handler_wall, replay_wall])
    return samples


if __name__ == "__main__":
    main()
