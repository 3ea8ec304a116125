"""Command-line plumbing shared by the entry points: typed flags from a dataclass, one-line errors.

``python -m forgetting.cli check ENTRY -P k=v ...`` validates an entry point's ``-P`` values (what
``./run`` does before ``mlflow run`` creates a run); ``python -m forgetting.cli help [ENTRY]`` lists
the entry points, or one entry point's parameters with their defaults and help.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Callable

from forgetting.errors import TrackingServerLost, UsageError


def parse_config(config_class, description: str, argv=None):
    """Build ``config_class`` from ``--field value`` flags typed by the dataclass annotations."""
    parser = _Parser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for field in dataclasses.fields(config_class):
        default = field.default
        kind = type(default) if default is not None else str
        # --top-k, and --top_k: how ``mlflow run`` passes a parameter the MLproject does not declare.
        flags = dict.fromkeys((f"--{field.name.replace('_', '-')}", f"--{field.name}"))
        parser.add_argument(*flags, dest=field.name, default=default,
                            type=_parse_bool if kind is bool else kind,
                            help=field.metadata.get("help", ""))
    return config_class(**vars(parser.parse_args(argv)))


class _Parser(argparse.ArgumentParser):
    """A bad flag is a one-line UsageError (``run_cli`` prints it), not argparse's usage block."""

    def error(self, message):
        import re

        # "argument --top-k/--top_k: invalid int value: 'x'" -> "top_k: invalid int value: 'x'"
        raise UsageError(re.sub(r"^argument --[\w-]+/--(\w+): ", r"\1: ", message))


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1", "yes")


def run_cli(main: Callable[[], Any]) -> None:
    """Run an entry point; a UsageError becomes ``error: <line>`` on stderr and exit status 2.

    Run directly, or through ``./run`` (which runs ``check`` before ``mlflow run``), no run is
    created. Under a bare ``mlflow run`` the launcher created its run before
    the entry point started: it ends FAILED with no parameters, metrics or artifacts and the
    error in the tag ``forgetting.error`` (deleting it would make ``mlflow run`` crash when it
    marks the run terminated).
    """
    try:
        main()
    except UsageError as error:
        _tag_launcher_run(str(error))
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except TrackingServerLost as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(75)  # EX_TEMPFAIL: rerun once the server is back


def _tag_launcher_run(message: str) -> None:
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    try:
        import mlflow

        mlflow.MlflowClient().set_tag(run_id, "forgetting.error", message)
    except Exception:  # noqa: BLE001 - the usage error is what the user must see
        pass


def check(entry: str, args: list[str]):
    """Build ``entry``'s config from ``mlflow run``-style arguments (``-P k=v``; others are ignored) and
    validate it: the checks the entry point makes before its stage run exists. Returns the config."""
    import shlex

    from forgetting.mlproject import ENTRY_POINTS, entry_config

    if entry not in ENTRY_POINTS:
        raise UsageError(f"entry point {entry!r} is not one of {', '.join(ENTRY_POINTS)}")
    config_class, summary = entry_config(entry)
    names = [field.name for field in dataclasses.fields(config_class)]
    argv = []
    for pair in _param_values(args):
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"-P {shlex.quote(pair)} is not key=value")
        if key not in names:
            raise UsageError(f"{entry} has no parameter {key!r} (./run help {entry}): {', '.join(names)}")
        argv.append(f"--{key}={value}")
    config = parse_config(config_class, summary, argv)
    validate = getattr(config, "validate", None)
    if validate:
        validate()
    return config


def _param_values(args: list[str]) -> list[str]:
    """The ``k=v`` of each ``-P k=v``, ``-Pk=v``, ``--param-list k=v`` or ``--param-list=k=v``."""
    values, index = [], 0
    while index < len(args):
        arg = args[index]
        if arg in ("-P", "--param-list"):
            if index + 1 == len(args):
                raise UsageError(f"{arg} needs a key=value")
            values.append(args[index + 1])
            index += 1
        elif arg.startswith("--param-list="):
            values.append(arg.removeprefix("--param-list="))
        elif arg.startswith("-P") and not arg.startswith("--"):
            values.append(arg[2:])
        index += 1
    return values


def describe(entry: str | None = None) -> str:
    """The entry points, one line each; with ``entry``, its parameters with defaults and help."""
    from forgetting.mlproject import ENTRY_POINTS, entry_config

    if entry is None:
        width = max(map(len, ENTRY_POINTS))
        lines = [f"{name:<{width}}  {_summary(name)}" for name in ENTRY_POINTS]
        return "\n".join(["entry points (./run help ENTRY for its parameters; ./run stage ENTRY -P key=value):",
                          *lines])
    if entry not in ENTRY_POINTS:
        raise UsageError(f"entry point {entry!r} is not one of {', '.join(ENTRY_POINTS)}")
    config_class, _ = entry_config(entry)
    summary = _summary(entry)
    fields = dataclasses.fields(config_class)
    shown = {field.name: repr(field.default) if isinstance(field.default, str) else str(field.default).lower()
             if isinstance(field.default, bool) else str(field.default) for field in fields}
    width = min(28, max(len(f"{name}={value}") for name, value in shown.items()))
    lines = []
    for name, field in zip(shown, fields):
        setting = f"{name}={shown[name]}"
        gap = "\n" + " " * (width + 4) if len(setting) > width else " " * (width - len(setting) + 2)
        lines.append(f"  {setting}{gap}{field.metadata.get('help', '')}")
    command = "./run main" if entry == "main" else f"./run stage {entry}"
    return "\n".join([f"{entry}: {summary}", f"usage: {command} [-P key=value ...]; parameters (default):", *lines])


def _summary(entry: str) -> str:
    from forgetting.mlproject import entry_config

    return entry_config(entry)[1].removeprefix(f"{entry}: ")


def _main(argv: list[str]) -> None:
    usage = "usage: python -m forgetting.cli check ENTRY [-P key=value ...] | help [ENTRY]"
    if argv[:1] == ["check"] and len(argv) >= 2:
        check(argv[1], argv[2:])
    elif argv[:1] == ["help"] and len(argv) <= 2:
        print(describe(argv[1] if len(argv) == 2 else None))
    else:
        raise UsageError(usage)


if __name__ == "__main__":
    run_cli(lambda: _main(sys.argv[1:]))
