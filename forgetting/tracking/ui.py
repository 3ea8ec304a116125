"""Open the MLflow UI on the project's store, bound to 127.0.0.1 (``python -m forgetting.tracking.ui``)."""
from __future__ import annotations

import argparse
import os
import sys

from forgetting.tracking.store import home, tracking_uri


def ui_command(port: int = 5000) -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


def print_where_results_are() -> None:
    print(f"results: tracking store {tracking_uri()}  (artifacts under {home() / 'artifacts'})")
    print("open the MLflow UI:  ./run ui   (serves http://127.0.0.1:5000 from this store)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    command = ui_command(parser.parse_args().port)
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    print(f"MLflow UI on http://127.0.0.1:{command[-3]} for {tracking_uri()} (Ctrl-C stops it)", flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
