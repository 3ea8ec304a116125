"""CodeContests problems as rows of the ``code`` schema (standard-input programs run in the sandbox).

A CodeContests solution is a script that reads standard input and prints the answer. The ``code``
schema's contract is that ``prompt + completion + "\\n\\n" + tests`` is a Python program that exits
without an exception exactly when the completion passes, so:

- ``prompt``: the problem statement as a module docstring, ``import sys``, ``from sys import exit``
  (the interpreter runs without ``site``, which defines the builtin ``exit`` that many solutions
  call) and ``def main():``; the completion is the body of ``main`` (``entry_point`` is ``main``);
- ``tests``: the test cases (public, then private, then generated; at most ``MAX_CASES`` and
  ``MAX_TEST_CHARS`` characters of them) and a harness that, per case, runs ``main()`` with
  ``sys.stdin`` reading the input (text, with ``.buffer`` for byte reads) and ``sys.stdout``
  captured, treats ``exit()``/``sys.exit(0)`` as a normal end, and compares the output token by
  token with the expected one (numbers within 1e-6, relative where large): CodeContests' own
  checker compares whitespace-separated tokens. Problems that accept several answers (a special
  checker) can fail a correct program here;
- ``canonical_solution``: the first Python 3 solution (``solutions.language == 3``) as the body
  of ``main``: indented as it is where that keeps its meaning (no ``global``/``nonlocal``, no
  ``__name__`` test, no star import, no triple-quoted string), else run unchanged as a script
  through ``exec`` with ``__name__ == "__main__"``.

Problems without a Python 3 solution or without test cases are left out (their contract could not
hold). Programs run only in the sandbox (``forgetting.rewards.sandbox``), never in this process.
"""
from __future__ import annotations

import ast
import re
import textwrap
import warnings

PYTHON3 = 3
"""``solutions.language`` of Python 3 (0 unknown, 1 Python 2, 2 C++, 3 Python 3, 4 Java)."""

MAX_CASES = 10
MAX_TEST_CHARS = 200_000

HARNESS = '''
import io as _io
import sys as _sys


def _same(_got, _want):
    _a, _b = _got.split(), _want.split()
    if len(_a) != len(_b):
        return False
    for _x, _y in zip(_a, _b):
        if _x == _y:
            continue
        try:
            _fx, _fy = float(_x), float(_y)
        except ValueError:
            return False
        if not abs(_fx - _fy) <= 1e-6 * max(1.0, abs(_fy)):
            return False
    return True


def _run(_stdin):
    _in = _io.TextIOWrapper(_io.BytesIO(_stdin.encode()), encoding="utf-8")
    _raw = _io.BytesIO()
    _out = _io.TextIOWrapper(_raw, encoding="utf-8", write_through=True)
    _saved = _sys.stdin, _sys.stdout
    _sys.stdin, _sys.stdout = _in, _out
    try:
        main()
    except SystemExit as _exit:
        if _exit.code not in (None, 0):
            raise AssertionError(f"exit status {_exit.code!r}") from None
    finally:
        try:
            _out.flush()
        finally:
            _sys.stdin, _sys.stdout = _saved
    return _raw.getvalue().decode("utf-8", "replace")


for _index, (_input, _expected) in enumerate(_CASES):
    assert _same(_run(_input), _expected), f"test case {_index}: wrong answer"
'''


def _docstring(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def contest_prompt(description: str) -> str:
    return (f'"""\n{_docstring(description.strip())}\n\nRead the input from standard input and print the answer '
            f'to standard output.\n"""\nimport sys\nfrom sys import exit\n\n\ndef main():\n')


def test_cases(record: dict) -> list[tuple[str, str]]:
    """Public, private, then generated cases (input, expected output), bounded in number and size."""
    cases, size = [], 0
    for group in ("public_tests", "private_tests", "generated_tests"):
        tests = record.get(group) or {}
        for given, expected in zip(tests.get("input") or [], tests.get("output") or []):
            if len(cases) >= MAX_CASES or (cases and size + len(given) + len(expected) > MAX_TEST_CHARS):
                return cases
            cases.append((given, expected))
            size += len(given) + len(expected)
    return cases


def contest_tests(cases: list[tuple[str, str]]) -> str:
    return f"_CASES = {cases!r}\n{HARNESS}"


_UNSAFE_TO_INDENT = re.compile(r"\b(global|nonlocal)\b|__name__|import\s+\*|\"\"\"|'''")


def as_main_body(solution: str) -> str:
    """A script as the body of ``main()``: indented where that keeps its meaning, else ``exec``'d as a script."""
    source = solution.replace("\r\n", "\n").expandtabs(8).rstrip() + "\n"
    if not _UNSAFE_TO_INDENT.search(source):
        body = textwrap.indent(source, "    ", lambda line: bool(line.strip()))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ast.parse("def main():\n" + body)
            return body
        except SyntaxError:
            pass
    return f'    exec(compile({source!r}, "<solution>", "exec"), {{"__name__": "__main__", "exit": exit}})\n'


def python3_solution(record: dict) -> str | None:
    solutions = record.get("solutions") or {}
    for language, solution in zip(solutions.get("language") or [], solutions.get("solution") or []):
        if language == PYTHON3 and solution.strip():
            return solution
    return None


def contest_row(record: dict, split: str, index: int) -> dict | None:
    """A CodeContests record as a ``code`` row; None where it has no Python 3 solution or no tests."""
    solution, cases = python3_solution(record), test_cases(record)
    if solution is None or not cases:
        return None
    return {"id": f"{split}/{index}", "prompt": contest_prompt(record["description"]),
            "entry_point": "main", "tests": contest_tests(cases), "canonical_solution": as_main_body(solution),
            "name": record.get("name") or "", "source": int(record.get("source") or 0),
            "difficulty": int(record.get("difficulty") or 0), "cf_rating": int(record.get("cf_rating") or 0),
            "n_test_cases": len(cases)}
