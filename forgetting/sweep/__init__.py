"""Optuna studies for learning-rate sweeps, stored next to the tracking store or in a shared RDB."""
from forgetting.sweep.studies import check_storage, default_storage, open_lr_study, pending_grid_values

__all__ = ["check_storage", "default_storage", "open_lr_study", "pending_grid_values"]
