"""The ``mlflow run`` command line of a stage, from its config dataclass.

A field left at its default is not passed (the MLproject defaults are the dataclass ones, a tested
invariant), so a job's MLflow run shows what was chosen for it; empty strings are passed all the same,
because MLflow 3.17 shell-quotes defaults: a default written ``"''"`` reaches the entry point as the two
characters ``''``, while ``-P name=`` gives "".
"""
from __future__ import annotations

import dataclasses
import shlex


def stage_parameters(config) -> dict[str, str]:
    """``{field: value}`` for ``-P``: the fields not at their default, and empty strings."""
    return {field.name: parameter_text(getattr(config, field.name)) for field in dataclasses.fields(config)
            if getattr(config, field.name) != _default(field) or getattr(config, field.name) == ""}


def parameter_text(value) -> str:
    """A ``-P`` value: floats exactly (``repr``), booleans as true/false."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def _default(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def mlflow_run_arguments(entry_point: str, parameters: dict[str, str], experiment: str) -> list[str]:
    arguments = ["mlflow", "run", ".", "-e", entry_point, "--env-manager", "local", "--experiment-name", experiment]
    for name, value in parameters.items():
        arguments += ["-P", f"{name}={value}"]
    return arguments


def rerun_command(entry_point: str, config, experiment: str) -> str:
    """The shell command that reruns (and so resumes) the stage of ``config``."""
    return shlex.join(mlflow_run_arguments(entry_point, stage_parameters(config), experiment))
