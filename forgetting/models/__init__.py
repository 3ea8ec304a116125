"""Model sources: bundled default, local directory, registry/run URI, hub id; tiny test model."""
from forgetting.models.bundled import DEFAULT_MODEL
from forgetting.models.resolve import load_model, resolve_model

__all__ = ["DEFAULT_MODEL", "load_model", "resolve_model"]
