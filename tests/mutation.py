"""`make mutation`: mutmut over the pure request-path modules, one module at a time, and a score.

Run by the Makefile with the mutation venv's Python (build/mutation-venv: mutmut, pinned, beside
the project's own packages). For each module it runs mutmut on that module's mutants: mutmut
knows, from one traced run of the whole selection (`pytest_add_cli_args_test_selection` in
pyproject.toml), which unit tests call each function; each mutant then runs those of them that
are in the module's own test files (`MODULES` below), fastest first, stopping at the first
failure, under a CPU-time limit of mutmut's. A module's run is bounded by a wall-clock limit.
Then it reads mutmut's results and prints killed / total per module. Survivors that
tests/mutation_equivalent.toml lists as equivalent (the same behaviour a user could not tell
apart, with the reason) are counted apart; any other survivor is printed with its diff and makes
the run fail. `--readme` writes the table into README.md.

    make mutation                               # every module
    make mutation MUTATION_ARGS="resolve inbound"   # some of them
    make mutation MUTATION_ARGS="translation.*"     # a package: its modules one by one
    make mutation MUTATION_ARGS="config.* --survivors"  # after new tests: the last survivors (and unrun) only

A run names its modules' mutants explicitly, so mutmut tests every one of them again (its cache
of results only spares unnamed mutants); `--survivors` reruns just the last run's survivors.
"""

from __future__ import annotations

import argparse
import filecmp
import fnmatch
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "build" / "mutation"
EQUIVALENT = REPO / "tests" / "mutation_equivalent.toml"

# The unit test files that exercise each group of modules (patterns): a mutant runs only the tests
# mutmut saw calling its function *and* in these files (a config mutant is not tried against every
# test that happens to load a configuration). pyproject.toml's pytest_add_cli_args_test_selection
# is the whole unit suite but for the slow engine, packaging and rendering tests.
RESOLVE_TESTS = ("tests/unit/test_resolve*.py",)
INBOUND_TESTS = ("tests/unit/test_inbound*.py", "tests/unit/test_embeddings.py")
UPSTREAM_TESTS = ("tests/unit/test_upstream*.py", "tests/unit/test_provider_rules.py", "tests/unit/test_catalog.py")
TRANSLATION_TESTS = ("tests/unit/test_translation*.py", "tests/unit/test_responses*.py")
CONFIG_TESTS = ("tests/unit/test_config*.py", "tests/unit/test_catalog.py")
ARCH_PROMPT_TESTS = ("tests/unit/test_arch_*.py", "tests/unit/test_routing.py")
PLANO_PROMPT_TESTS = ("tests/unit/test_plano_*.py",)


@dataclass(frozen=True)
class Module:
    prefix: str  # mutmut's dotted module name
    source: str
    tests: tuple[str, ...]  # fnmatch patterns of test files

    def owns_test(self, node_id: str) -> bool:
        path = node_id.split("::", 1)[0]
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.tests)


def _translation(name: str) -> Module:
    return Module(f"filter.translation.{name}", f"filter/translation/{name}.py", TRANSLATION_TESTS)


def _config(name: str) -> Module:
    return Module(f"filter.config.{name}", f"filter/config/{name}.py", CONFIG_TESTS)


# Keep in step with [tool.mutmut] only_mutate in pyproject.toml.
MODULES: dict[str, Module] = {
    "resolve": Module("filter.resolve", "filter/resolve.py", RESOLVE_TESTS),
    "inbound": Module("filter.inbound", "filter/inbound.py", INBOUND_TESTS),
    "upstream": Module("filter.upstream", "filter/upstream.py", UPSTREAM_TESTS),
    **{f"translation.{n}": _translation(n) for n in (
        "common", "errors", "requests", "responses", "responses_chat", "responses_common", "responses_messages",
        "sse", "streams", "usage")},
    "arch_prompt": Module("router_model.arch_prompt", "router_model/arch_prompt.py", ARCH_PROMPT_TESTS),
    "plano_orchestrator_prompt": Module("router_model.plano_orchestrator_prompt",
                                        "router_model/plano_orchestrator_prompt.py", PLANO_PROMPT_TESTS),
    "router_answer": Module("router_model.router_answer", "router_model/router_answer.py",
                            ARCH_PROMPT_TESTS + PLANO_PROMPT_TESTS),
    **{f"config.{n}": _config(n) for n in ("build", "schema", "loader", "errors", "model")},
}
KILLED = {"killed", "timeout", "caught by type check"}


@dataclass
class Score:
    module: str
    total: int = 0
    killed: int = 0
    equivalent: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)  # neither killed nor listed as equivalent
    survivor_names: list[str] = field(default_factory=list)  # their mutmut names (for --survivors)
    unchecked_names: list[str] = field(default_factory=list)
    unchecked: int = 0  # not run yet (a run stopped at its limit, or never started)
    seconds: float = 0.0

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 100.0


def refresh_copies() -> None:
    """mutmut copies unmutated files into mutants/ once and never again: drop stale copies so
    that the tests run against today's versions of the modules the mutated ones import."""
    mutants = REPO / "mutants"
    # mutmut copies tests/ over its old copy every run: a test file removed here would stay there
    # (and be collected, since the selection is the folder).
    shutil.rmtree(mutants / "tests", ignore_errors=True)
    for root in ("filter", "router_model"):
        for copy in (mutants / root).rglob("*.py") if (mutants / root).exists() else ():
            source = REPO / copy.relative_to(mutants)
            if not source.exists():
                copy.unlink()
            elif not (copy.with_suffix(".py.meta")).exists() and not filecmp.cmp(source, copy, shallow=False):
                copy.unlink()


def run_module(name: str, limit_s: float, children: int, survivors_only: bool = False) -> float:
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{name}.log"
    start = time.monotonic()
    extra = ["--survivors"] if survivors_only else []
    with open(log, "wb") as out:
        try:
            done = subprocess.run([sys.executable, __file__, "--mutmut-run", name, "--children", str(children), *extra],
                                  cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=limit_s)
            if done.returncode not in (0,):
                print(f"  mutmut exited with {done.returncode}: see {log.relative_to(REPO)}", file=sys.stderr)
        except subprocess.TimeoutExpired:
            print(f"  {name}: stopped at the {limit_s:.0f} s limit; unrun mutants count as survivors", file=sys.stderr)
    return time.monotonic() - start


MUTMUT_VERSION = "3.8.1"


def mutmut_run(name: str, children: int, survivors_only: bool = False) -> int:
    """`mutmut run "<module>.*"`, in this process, with each mutant's tests cut down to the module's
    own test files. mutmut (pinned) has no setting for that: its test runner is wrapped here, and
    the version checked so that an upgrade cannot silently run something else."""
    from importlib.metadata import version

    if version("mutmut") != MUTMUT_VERSION:
        raise SystemExit(f"mutmut {version('mutmut')} installed, {MUTMUT_VERSION} expected: `make clean`, then `make mutation`")
    import mutmut.__main__ as mutmut_main
    from mutmut.runners.harness import PytestRunner

    module = MODULES[name]
    run_tests = PytestRunner.run_tests

    def own_tests_only(self, *, mutant_name, tests):
        tests = list(tests)
        if not tests:  # the forced-fail check: the whole selection
            return run_tests(self, mutant_name=mutant_name, tests=tests)
        kept = [t for t in tests if module.owns_test(t)]
        if not kept:  # mutmut would run the whole selection for an empty list
            return 0 if mutant_name is None else 5  # pytest's "no tests ran": counted as not killed
        return run_tests(self, mutant_name=mutant_name, tests=kept)

    PytestRunner.run_tests = own_tests_only
    # --survivors: only the last run's survivors that are not listed as equivalent, and mutants not
    # run yet (after new tests; a changed function's mutants are new: a second --survivors runs them)
    last = score(name) if survivors_only else None
    names = last.survivor_names + last.unchecked_names if last else [f"{module.prefix}.*"]
    if not names:
        return 0
    try:
        mutmut_main.cli(["run", *names, "--max-children", str(children)], standalone_mode=False)
    except SystemExit as exc:  # mutmut ends some runs with exit()
        return int(exc.code or 0)
    return 0


def equivalents() -> list[dict]:
    if not EQUIVALENT.exists():
        return []
    return tomllib.loads(EQUIVALENT.read_text()).get("equivalent", [])


def changed_lines(diff: str) -> tuple[str, str]:
    minus = [line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    plus = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return "\n".join(minus), "\n".join(plus)


def function_of(mutant: str) -> str:
    """`filter.config.build.xǁ_Builderǁbuild__mutmut_3` → `filter.config.build._Builder.build`."""
    module, _, generated = mutant.rpartition(".")
    name = generated.rsplit("__mutmut_", 1)[0].removeprefix("x_").removeprefix("x")
    return f"{module}.{name.strip('ǁ').replace('ǁ', '.')}"


def score(name: str) -> Score:
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    source = MODULES[name].source
    result = Score(name)
    listed = equivalents()
    paths = [Path(source)] if source.endswith(".py") else sorted(Path(source).rglob("*.py"))
    for path in paths:
        data = SourceFileMutationData(path=path)
        data.load()
        for mutant, code in sorted(data.exit_code_by_key.items()):
            result.total += 1
            if code is None:
                result.unchecked += 1
                result.unchecked_names.append(mutant)
                continue
            if status_by_exit_code[code] in KILLED:
                result.killed += 1
                continue
            diff = get_diff_for_mutant(mutant, path=path)
            before, after = changed_lines(diff)
            function = function_of(mutant)
            if any(e["function"] == function and e["before"].strip() == before and e["after"].strip() == after
                   for e in listed):
                result.equivalent.append(mutant)
            else:
                result.survivors.append(f"# {mutant}: {status_by_exit_code[code]}\n{diff}")
                result.survivor_names.append(mutant)
    return result


def table(scores: list[Score]) -> str:
    lines = ["| module | mutants | killed | score | equivalent (listed below) | other survivors | time |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in scores:
        if s.unchecked == s.total:
            lines.append(f"| {s.module} | {s.total} | – | not run yet | – | – | – |")
            continue
        unrun = f" (incl. {s.unchecked} not run)" if s.unchecked else ""
        lines.append(f"| {s.module} | {s.total} | {s.killed} | {s.percent:.1f} % | {len(s.equivalent)} | "
                     f"{len(s.survivors)}{unrun} | {s.seconds:.0f} s |")
    # A module's mutants not run count against it; modules not run at all are left out of the sum.
    scores = [s for s in scores if s.unchecked < s.total]
    total = sum(s.total for s in scores)
    killed = sum(s.killed for s in scores)
    lines.append(f"| **all** | {total} | {killed} | **{100.0 * killed / max(total, 1):.1f} %** | "
                 f"{sum(len(s.equivalent) for s in scores)} | {sum(len(s.survivors) for s in scores)} | "
                 f"{sum(s.seconds for s in scores):.0f} s |")
    return "\n".join(lines)


def equivalent_table() -> str:
    lines = ["| function | mutation | why no test can tell |", "| --- | --- | --- |"]
    for e in equivalents():
        lines.append(f"| `{e['function']}` | `{e['before']}` → `{e['after']}` | {e['reason']} |".replace("\n", " "))
    return "\n".join(lines)


def write_readme(scores: list[Score], seconds: float) -> None:
    """The table of this run's modules (with --score-only: the last results of each)."""
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = "<!-- mutation:start -->", "<!-- mutation:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    body = (f"{table(scores)}\n\nMeasured by `make mutation` on {date.today().isoformat()} "
            f"({os.cpu_count()} cores, {seconds / 60:.0f} min, mutmut 3.8.1). Equivalent mutants:\n\n{equivalent_table()}")
    readme.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def link(project: str) -> int:
    """One .pth file: the project's site-packages (its exact pins, its editable install) come
    before this venv's own, which adds only mutmut and what mutmut needs."""
    import sysconfig

    own = sysconfig.get_paths()["purelib"]
    line = (f"import site, sys; site.addsitedir({project!r}); sys.path.remove({project!r}); "
            f"sys.path.insert(sys.path.index({own!r}), {project!r})\n")
    Path(own, "switchyard-project.pth").write_text(line)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"modules to test: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--limit", type=float, default=1200.0, help="wall-clock seconds per module (default 1200)")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--score-only", action="store_true", help="read the last results, run nothing")
    parser.add_argument("--survivors", action="store_true",
                        help="rerun only the last results' survivors not listed as equivalent, and mutants not run yet")
    parser.add_argument("--readme", action="store_true", help="write the score into README.md")
    parser.add_argument("--link", metavar="SITE_PACKAGES", help="set-up: let this venv see the project's packages")
    parser.add_argument("--mutmut-run", metavar="MODULE", help=argparse.SUPPRESS)  # one module's mutmut run
    args = parser.parse_args()
    if args.link:
        return link(args.link)
    if args.mutmut_run:
        os.chdir(REPO)
        sys.path.insert(0, str(REPO))
        return mutmut_run(args.mutmut_run, args.children, args.survivors)
    names = [n for pattern in args.modules or ["*"] for n in MODULES if fnmatch.fnmatchcase(n, pattern)]
    unknown = {p for p in args.modules if not any(fnmatch.fnmatchcase(n, p) for n in MODULES)}
    if unknown:
        parser.error(f"unknown module(s) {', '.join(sorted(unknown))}; known: {', '.join(MODULES)}")
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    started = time.monotonic()
    if not args.score_only:
        refresh_copies()
    scores = []
    for name in names:
        seconds = 0.0 if args.score_only else run_module(name, args.limit, args.children, args.survivors)
        result = score(name)
        result.seconds = seconds
        scores.append(result)
        print(f"{name}: {result.killed}/{result.total} killed ({result.percent:.1f} %), "
              f"{len(result.equivalent)} equivalent, {len(result.survivors)} other survivors, {seconds:.0f} s", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    survivors = "\n".join(s for result in scores for s in result.survivors)
    (OUT / "survivors.txt").write_text(survivors)
    print()
    print(table(scores))
    if survivors:
        print(f"\nsurvivors that are neither killed nor listed in {EQUIVALENT.relative_to(REPO)}: "
              f"{sum(len(s.survivors) for s in scores)} (diffs in {(OUT / 'survivors.txt').relative_to(REPO)})")
    if args.readme:
        write_readme(scores, time.monotonic() - started)
    return 1 if survivors or any(s.unchecked for s in scores) else 0


if __name__ == "__main__":
    sys.exit(main())
