"""``python -m forgetting.tracking STUDY``: create the study's experiment, print the store URI.

``python -m forgetting.tracking prepare ENTRY [-P key=value ...]``: what ``./run`` does before ``mlflow
run``: check the entry point's parameters (a bad one: one line, exit 2, nothing created), create the
experiment of the study its run belongs to (``forgetting.tracking.studies.study_of``) and print that
study and the store URI, tab-separated, on one line.

``mlflow run --experiment-name`` would create a missing experiment with a working-directory
artifact location; creating it here first keeps the absolute one.
"""
import contextlib
import sys

from forgetting.cli import check, run_cli
from forgetting.errors import UsageError
from forgetting.tracking.store import configure, experiment_id, tracking_uri
from forgetting.tracking.studies import study_of


def main(argv: list[str]) -> None:
    if argv[:1] == ["prepare"] and len(argv) >= 2:
        configure()
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the answer
            study = study_of(argv[1], check(argv[1], argv[2:]))
            experiment_id(study)
        print(f"{study}\t{tracking_uri()}")
    elif len(argv) == 1 and argv[0] != "prepare":
        experiment_id(argv[0])
        print(tracking_uri())
    else:
        raise UsageError("usage: python -m forgetting.tracking STUDY | prepare ENTRY [-P key=value ...]")


run_cli(lambda: main(sys.argv[1:]))
