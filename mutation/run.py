"""`make mutation`: mutmut over the security core, each mutant against the tests that reach it.

The core's modules are staged (the package under `src/`, as mutmut expects, beside a copy of the tests and
the local stand-ins) in `.mutation/`, and mutmut runs there once: it records which tests reach each
function, then runs every mutant against those tests only, fastest first, until one fails. A mutant that
survives counts against its module unless `mutation/equivalents.toml` names it, by its function and the
exact code it changes, with the reason no test can tell it from the original; those are left out of the
run (--check-equivalents runs them too, to show they still survive). The run fails if a module kills
less than KILL_TARGET of its other mutants, or if an entry there matches no mutant any more.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mutmut.mutation.file_mutation import mutate_file_contents
from mutmut.stats import status_by_exit_code

from mutation.ordering import KILLERS_FILE

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
EQUIVALENTS = ROOT / "mutation" / "equivalents.toml"
PACKAGE = "portal_links"
SOURCE = ROOT / "layers" / "shared" / PACKAGE
KILL_TARGET = 0.95

# The security core.
MODULES = ("redirects", "identity", "flows", "http", "customers", "webhooks")
# Every test file runs the core through the handlers except these: they check documents, tools or the
# emulator, or run the service in a subprocess (where mutants do not reach).
NOT_FOR_MUTATION = (
    "tests/unit/test_apigw.py",
    "tests/unit/test_chromium_discovery.py",
    "tests/unit/test_configuration.py",
    "tests/unit/test_deployment.py",
    "tests/unit/test_error_codes.py",
    "tests/unit/test_events.py",
    "tests/unit/test_local_server.py",
    "tests/unit/test_readme_opening.py",
    "tests/unit/test_release.py",
    "tests/unit/test_stripe_emulator.py",
    "tests/unit/test_stripe_key.py",
    "tests/integration/test_dev_server.py",
    "tests/integration/test_dev_webhooks.py",
    "tests/integration/test_sam_local_env.py",
)
# Tests left out of each mutant's run: threads racing for seconds (eight each), which every survivor would
# wait for. What they race through, the conditional writes, is reached one click at a time by
# test_mapping_heals, test_organizations and the quick test_first_click_race tests kept here.
DESELECTED = (
    "tests/integration/test_first_click_race.py::test_sixty_concurrent_first_clicks_create_one_customer",
    "tests/integration/test_first_click_race.py::"
    "test_fifty_concurrent_clicks_heal_a_deleted_customer_with_exactly_one_new_one",
    "tests/integration/test_organization_race.py::"
    "test_concurrent_first_clicks_of_two_organizations_admins_make_one_customer_each",
)
# What the tests read besides themselves; mutmut copies these next to the mutated source.
STAGED = (
    "tests",
    "local",
    "functions",
    "events",
    "layers",
    "template.yaml",
    "samconfig.toml",
    "README.md",
    "mutation",
)
# Beside the staged tests: loads mutation/ordering.py, which runs each mutant's likeliest killers first.
ROOT_CONFTEST = '"""Written by mutation/run.py."""\n\npytest_plugins = ["mutation.ordering"]\n'
KILLED = {"killed", "timeout"}  # a mutant that makes a request hang is noticed too


@dataclass(frozen=True)
class Mutant:
    name: str  # mutmut's, e.g. portal_links.redirects.x_origin_of__mutmut_3
    function: str  # e.g. ReturnUrls.is_allowed
    before: str  # the original code it changes, one line, indentation dropped
    after: str
    status: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.function, self.before, self.after)


@dataclass
class ModuleResult:
    name: str
    mutants: list[Mutant]
    equivalent: list[Mutant] = field(default_factory=list)
    survived: list[Mutant] = field(default_factory=list)

    @property
    def killed(self) -> int:
        return sum(mutant.status in KILLED for mutant in self.mutants if mutant not in self.equivalent)

    @property
    def timeouts(self) -> int:
        return sum(mutant.status == "timeout" for mutant in self.mutants)

    @property
    def score(self) -> float:
        judged = len(self.mutants) - len(self.equivalent)
        return self.killed / judged if judged else 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="module", help=f"default: all of {' '.join(MODULES)}")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--check-equivalents", action="store_true", help="run the listed equivalents too")
    args = parser.parse_args()
    for name in args.modules:
        if name not in MODULES:
            parser.error(f"{name!r} is not a module of the core: {' '.join(MODULES)}")
    modules = [name for name in MODULES if name in args.modules] or list(MODULES)
    equivalents = load_equivalents()
    started = time.monotonic()
    stage = staged(modules)
    planned = {name: planned_mutants(stage, name) for name in modules}
    listed = {(entry.module, *key) for entry in equivalents for key in entry.mutant_keys()}
    to_run = [
        mutant.name
        for name, mutants in planned.items()
        for mutant in mutants
        if args.check_equivalents or (name, *mutant.key) not in listed
    ]
    print(
        f"mutmut over {', '.join(modules)}: {len(to_run)} mutants"
        f" against {len(mutation_tests())} test files …",
        flush=True,
    )
    mutmut = [str(Path(sys.executable).with_name("mutmut")), "run", "--max-children", str(args.max_children)]
    environment = {**os.environ, KILLERS_FILE: str(stage / "killers.txt")}
    with (stage / "mutmut.log").open("w") as log:
        finished = subprocess.run(  # noqa: S603 - mutmut from this virtualenv, arguments of our own
            [*mutmut, *to_run], cwd=stage, env=environment, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if finished.returncode != 0:
        sys.exit(f"mutmut failed ({finished.returncode}); see {stage / 'mutmut.log'}")
    results = [ModuleResult(name, with_status(stage, name, planned[name])) for name in modules]
    problems = judge(results, equivalents)
    report(results, equivalents)
    print(f"\n{time.monotonic() - started:.0f} s in all")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def mutation_tests() -> list[str]:
    found = [path.relative_to(ROOT).as_posix() for path in ROOT.glob("tests/*/test_*.py")]
    suites = ("unit", "integration")
    return sorted(path for path in found if path.split("/")[1] in suites and path not in NOT_FOR_MUTATION)


def staged(modules: list[str]) -> Path:
    """A fresh `.mutation/`: what the tests need, the package under `src/`, and the pyproject for both.

    Only the list of tests that killed mutants is kept from a run before: the next run tries them first."""
    killers = WORK / "killers.txt"
    lines = killers.read_text().splitlines(keepends=True) if killers.exists() else []
    learned = "".join(reversed(dict.fromkeys(reversed(lines))))  # each pair once, where it last came
    shutil.rmtree(WORK, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    WORK.mkdir()
    killers.write_text(learned)
    for item in STAGED:
        if (ROOT / item).is_dir():
            shutil.copytree(ROOT / item, WORK / item, ignore=ignore)
        else:
            shutil.copy2(ROOT / item, WORK / item)
    shutil.copytree(SOURCE, WORK / "src" / PACKAGE, ignore=ignore)
    (WORK / "conftest.py").write_text(ROOT_CONFTEST)
    (WORK / "pyproject.toml").write_text(staged_pyproject(modules))
    return WORK


def staged_pyproject(modules: list[str]) -> str:
    """The project's pytest settings with the layer's path moved to `src/`, and mutmut's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pytest_options = dict(project["tool"]["pytest"]["ini_options"])
    paths = pytest_options["pythonpath"]
    pytest_options["pythonpath"] = ["src" if path == "layers/shared" else path for path in paths]
    mutmut_options = {
        "source_paths": ["src"],
        "only_mutate": [f"src/{PACKAGE}/{module}.py" for module in modules],
        "also_copy": [*(item for item in STAGED if item != "tests"), "conftest.py"],
        "pytest_add_cli_args_test_selection": mutation_tests(),
        # Each mutant's session skips the end-of-session garbage collection that looks for unraisable
        # exceptions: a fifth of a second per mutant, and no test here relies on it.
        "pytest_add_cli_args": [
            "-p",
            "no:cacheprovider",
            "-p",
            "no:unraisableexception",
            *(argument for test in DESELECTED for argument in ("--deselect", test)),
        ],
        # mutmut times a test by its call alone; ours spend most of their time in fixtures, so the
        # limit gets room enough that only a mutant that really hangs reaches it.
        "timeout_constant": 30.0,
        "use_git_change_detection": False,
    }
    return (
        toml_table("tool.pytest.ini_options", pytest_options)
        + "\n"
        + toml_table("tool.mutmut", mutmut_options)
    )


def toml_table(name: str, values: dict[str, Any]) -> str:
    # JSON's strings, numbers, booleans and arrays are TOML's too.
    return f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def planned_mutants(stage: Path, module: str) -> list[Mutant]:
    """The mutants mutmut will make of `module` (by its own code, so names and order are its own)."""
    source = stage / "src" / PACKAGE / f"{module}.py"
    cwd = Path.cwd()
    os.chdir(stage)  # mutmut reads its settings from the working directory's pyproject.toml
    try:
        mutated = mutate_file_contents(str(source.relative_to(stage)), source.read_text())
    finally:
        os.chdir(cwd)
    changes = describe(mutated.code)
    return [Mutant(f"{PACKAGE}.{module}.{name}", *changes[name], "not run") for name in mutated.mutant_names]


def with_status(stage: Path, module: str, planned: list[Mutant]) -> list[Mutant]:
    meta = stage / "mutants" / "src" / PACKAGE / f"{module}.py.meta"
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return [
        replace(mutant, status=status_by_exit_code[exit_codes[mutant.name]])
        if exit_codes.get(mutant.name) is not None
        else mutant
        for mutant in planned
    ]


def describe(source: str) -> dict[str, tuple[str, str, str]]:
    """Each mutant of a mutated file, by its generated name: (function, original code, mutated code).

    Only the changed lines are kept, so the description holds while code around the mutant moves."""
    lines = source.splitlines()
    functions = {node.name: node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)}

    def body(node: ast.FunctionDef) -> list[str]:
        text = [line.strip() for line in lines[node.lineno - 1 : node.end_lineno]]
        text[0] = text[0].replace(node.name, "", 1)
        return text

    described: dict[str, tuple[str, str, str]] = {}
    seen: Counter[tuple[str, str, str]] = Counter()
    for name, node in functions.items():
        mangled, marker, number = name.rpartition("__mutmut_")
        if not marker or number == "orig":
            continue
        original = body(functions[f"{mangled}__mutmut_orig"])
        mutated = body(node)
        opcodes = difflib.SequenceMatcher(None, original, mutated).get_opcodes()
        changed = [op for op in opcodes if op[0] != "equal"]
        first, last = changed[0], changed[-1]
        change = (
            readable_function(mangled),
            " ".join(original[first[1] : last[2]]),
            " ".join(mutated[first[3] : last[4]]),
        )
        seen[change] += 1
        # The same change twice in one function (a repeated line): told apart by its order.
        described[name] = change if seen[change] == 1 else (*change[:2], f"{change[2]}  #{seen[change]}")
    return described


def readable_function(mangled: str) -> str:
    """`x_origin_of` → `origin_of`; `xǁReturnUrlsǁresolve` → `ReturnUrls.resolve`."""
    return mangled.removeprefix("x_") if mangled.startswith("x_") else ".".join(mangled.split("ǁ")[1:])


@dataclass(frozen=True)
class Equivalent:
    module: str
    function: str
    before: str
    after: tuple[str, ...]
    why: str

    def mutant_keys(self) -> list[tuple[str, str, str]]:
        return [(self.function, self.before, after) for after in self.after]


def load_equivalents() -> list[Equivalent]:
    entries = tomllib.loads(EQUIVALENTS.read_text()).get("equivalent", [])
    return [
        Equivalent(
            entry["module"],
            entry["function"],
            entry["before"],
            tuple([entry["after"]] if isinstance(entry["after"], str) else entry["after"]),
            entry["why"],
        )
        for entry in entries
    ]


def judge(results: list[ModuleResult], equivalents: list[Equivalent]) -> list[str]:
    """Sort each module's mutants that were not killed into equivalent (listed) or survived, and say what
    fails the run."""
    problems = []
    for result in results:
        listed = {key for entry in equivalents if entry.module == result.name for key in entry.mutant_keys()}
        by_key = {mutant.key: mutant for mutant in result.mutants}
        for mutant in result.mutants:
            if mutant.key in listed:
                result.equivalent.append(mutant)
            elif mutant.status not in KILLED:
                result.survived.append(mutant)
        for key in sorted(listed):
            found = by_key.get(key)
            if found is None:
                problems.append(f"stale equivalent ({result.name}, {key[0]}): no such mutant now: {key[2]}")
            elif found.status in KILLED:
                problems.append(f"listed as equivalent but killed ({result.name}, {key[0]}): {key[2]}")
        if result.score < KILL_TARGET:
            problems.append(f"{result.name}: {result.score:.1%} of its mutants killed, not {KILL_TARGET:.0%}")
    return problems


def report(results: list[ModuleResult], equivalents: list[Equivalent]) -> None:
    columns = ("mutants", "killed", "survived", "equivalent", "score")
    print("\nmodule    " + " ".join(f"{column:>10}" for column in columns))
    for r in results:
        counts = (len(r.mutants), r.killed, len(r.survived), len(r.equivalent))
        timeouts = f"  ({r.timeouts} killed by timeout)" if r.timeouts else ""
        print(f"{r.name:<10}" + "".join(f"{count:>11}" for count in counts) + f"{r.score:>11.1%}{timeouts}")
    for r in results:
        for mutant in r.survived:
            print(f"\nsurvived ({mutant.status}) {r.name} {mutant.function}  [{mutant.name}]")
            print(f"  - {mutant.before}\n  + {mutant.after}")
    if any(r.equivalent for r in results):
        print("\nequivalent (mutation/equivalents.toml):")
    for entry in equivalents:
        if any(r.name == entry.module for r in results):
            print(f"\n  {entry.module} {entry.function}\n    - {entry.before}")
            print("".join(f"    + {after}\n" for after in entry.after) + f"    why: {entry.why}")


if __name__ == "__main__":
    sys.exit(main())
