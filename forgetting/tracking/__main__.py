"""``python -m forgetting.tracking STUDY``: create the study's experiment, print the store URI.

``mlflow run --experiment-name`` would create a missing experiment with a working-directory
artifact location; creating it here first keeps the absolute one.
"""
import sys

from forgetting.cli import run_cli
from forgetting.tracking.store import experiment_id, tracking_uri

run_cli(lambda: (experiment_id(sys.argv[1]), print(tracking_uri())))
