"""Command-line plumbing shared by the entry points: typed flags from a dataclass, one-line errors."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Callable

from forgetting.errors import UsageError


def parse_config(config_class, description: str, argv=None):
    """Build ``config_class`` from ``--field value`` flags typed by the dataclass annotations."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for field in dataclasses.fields(config_class):
        default = field.default
        kind = type(default) if default is not None else str
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, default=default,
                            type=_parse_bool if kind is bool else kind,
                            help=field.metadata.get("help", ""))
    return config_class(**vars(parser.parse_args(argv)))


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1", "yes")


def run_cli(main: Callable[[], Any]) -> None:
    """Run an entry point; a UsageError becomes ``error: <line>`` on stderr and exit status 2.

    Run directly, no run is created. Under ``mlflow run`` the launcher created its run before
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
    except Exception as error:
        from forgetting.tracking.retry import TrackingServerLost

        if not isinstance(error, TrackingServerLost):
            raise
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
