"""The ``mlflow run`` command line of a stage, from its config dataclass.

Every field becomes a ``-P`` value, empty strings included, so a command does not depend on the
MLproject defaults matching the dataclass ones (MLflow 3.17 shell-quotes defaults too: a default
written ``"''"`` reaches the entry point as the two characters ``''``, while ``-P name=`` gives "").
"""
from __future__ import annotations

import dataclasses
import shlex


def stage_parameters(config) -> dict[str, str]:
    """``{field: value}`` of ``config`` for ``-P``; floats exactly (``repr``), booleans as true/false."""
    shown = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, bool):
            shown[field.name] = str(value).lower()
        elif isinstance(value, float):
            shown[field.name] = repr(value)
        else:
            shown[field.name] = str(value)
    return shown


def mlflow_run_arguments(entry_point: str, parameters: dict[str, str], experiment: str) -> list[str]:
    arguments = ["mlflow", "run", ".", "-e", entry_point, "--env-manager", "local", "--experiment-name", experiment]
    for name, value in parameters.items():
        arguments += ["-P", f"{name}={value}"]
    return arguments


def rerun_command(entry_point: str, config, experiment: str) -> str:
    """The shell command that reruns (and so resumes) the stage of ``config``."""
    return shlex.join(mlflow_run_arguments(entry_point, stage_parameters(config), experiment))
