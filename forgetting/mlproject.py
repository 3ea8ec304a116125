"""``MLproject`` written from the entry points' config dataclasses, so the two cannot drift.

Each entry point script parses one config dataclass (``forgetting.cli.parse_config``); its fields are
the entry point's parameters, with their defaults, and its command passes each as ``--name=value``.
``python -m forgetting.mlproject`` rewrites the file; a test checks it is up to date.

``mlflow run`` logs every declared parameter of an entry point on its run, and a logged parameter cannot
be removed, so an entry point whose runs read only some of its fields (``evaluate``: the suite's;
``main``: the grid's) declares only the fields every run reads; the others pass through undeclared
(``-P top_k=64`` reaches the script as ``--top_k 64``) and are logged only when given.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import textwrap
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("main", "evaluate", "prune", "train", "finetune", "distill", "collect", "posttrain", "analyze",
                "attribute", "launch")
HEADER = """name: forgetting

# Written by `python -m forgetting.mlproject` from the entry points' config dataclasses: edit those.
# Run with --env-manager local inside the project virtualenv that ./run sets up; conda.yaml carries
# the same pins for --env-manager conda (or virtualenv/uv, which read its pip section).
conda_env: conda.yaml

entry_points:
"""
WIDTH = 110
# Entry points that declare only these fields (see the module docstring); the rest declare every field.
DECLARED = {"main": ("preset", "device", "gpus"), "evaluate": "forgetting.evaluation.suites:COMMON_FIELDS"}


def entry_config(entry: str):
    """The config dataclass that ``entrypoints/<entry>.py`` parses, and the script's summary line."""
    path = ROOT / "entrypoints" / f"{entry}.py"
    spec = importlib.util.spec_from_file_location(f"entrypoint_{entry}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [config] = {value for value in vars(module).values()
                if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__name__.endswith("Config")}
    return config, " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())


def declared_fields(entry: str, config) -> list[dataclasses.Field]:
    """The fields ``entry`` declares in MLproject: those every run of it reads."""
    names = DECLARED.get(entry)
    if isinstance(names, str):
        module, attribute = names.split(":")
        names = getattr(importlib.import_module(module), attribute)
    return [f for f in dataclasses.fields(config) if names is None or f.name in names]


def parameter_line(field: dataclasses.Field) -> str:
    default = field.default
    if isinstance(default, bool):
        kind, text = "string", json.dumps(str(default).lower())
    elif isinstance(default, (int, float)):
        kind, text = "float", format(Decimal(repr(default)), "f")
    else:
        kind, text = "string", json.dumps(default)
    return f"      {field.name}: {{type: {kind}, default: {text}}}"


def command_lines(entry: str, fields) -> list[str]:
    words = [f"python entrypoints/{entry}.py", *(f"--{f.name.replace('_', '-')}={{{f.name}}}" for f in fields)]
    lines, line = [], "     "
    for word in words:
        if len(line) + 1 + len(word) > WIDTH and line.strip():
            lines.append(line)
            line = "     "
        line += " " + word
    return ["    command: >-", *lines, line]


def render() -> str:
    blocks = []
    for entry in ENTRY_POINTS:
        config, summary = entry_config(entry)
        fields = declared_fields(entry, config)
        undeclared = [f.name for f in dataclasses.fields(config) if f not in fields]
        if undeclared:
            summary += (f" Also (undeclared, logged only when given; ./run help {entry}): "
                        + ", ".join(undeclared) + ".")
        comment = [f"    # {line}" for line in textwrap.wrap(summary, WIDTH - 6)]
        blocks.append("\n".join([f"  {entry}:", *comment, "    parameters:",
                                 *(parameter_line(f) for f in fields), *command_lines(entry, fields)]))
    return HEADER + "\n\n".join(blocks) + "\n"


if __name__ == "__main__":
    (ROOT / "MLproject").write_text(render())
    print(f"wrote {ROOT / 'MLproject'}")
