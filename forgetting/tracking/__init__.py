"""Tracking core: the store, stage runs with caching, checkpoints in the model registry."""
from forgetting.tracking.checkpoints import is_tracking_uri, log_checkpoint, resolve_checkpoint
from forgetting.tracking.runs import run_stage
from forgetting.tracking.store import configure, experiment_id, home, tracking_uri

__all__ = ["configure", "experiment_id", "home", "is_tracking_uri", "log_checkpoint",
           "resolve_checkpoint", "run_stage", "tracking_uri"]
