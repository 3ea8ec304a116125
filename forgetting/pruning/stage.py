"""The ``prune`` stage: score MLP neurons on Python code, remove the weakest, register the result.

A sequence-classifier checkpoint is pruned for the selective study instead
(``forgetting.pruning.selective``): by neuron or by weight, then recovery training.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import mlflow

from forgetting.device import DEVICE_HELP, PRECISIONS
from forgetting.errors import UsageError, check_choice, check_range
from forgetting.models import DEFAULT_MODEL
from forgetting.pruning.tuneprune import BY_SPARSITY, DEFAULT_LR, DEFAULT_PENALTY_LR, DEFAULT_STEPS
from forgetting.tracking.checkpoints import CHECKPOINT_DTYPES

CLASSIFIER_FIELDS = ("task", "recovery_steps", "recovery_lr")
LANGUAGE_MODEL_FIELDS = ("calibration_blocks", "eval_blocks", "block_size", "checkpoint_dtype")


@dataclass(frozen=True)
class PruneConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec to prune"})
    method: str = field(default="attribution", metadata={
        "help": "random, attribution, tuneprune; classifiers: magnitude, movement, gradient, combined, random"})
    sparsity: float = field(default=0.3, metadata={"help": "fraction of MLP neurons removed, in [0, 1)"})
    scope: str = field(default="layer", metadata={"help": "layer (same fraction per layer) or global"})
    seed: int = field(default=0, metadata={"help": "seed of random scores and corpus sampling"})
    calibration_blocks: int = field(default=32, metadata={"help": "Python-code blocks for scoring/tuning"})
    eval_blocks: int = field(default=16, metadata={"help": "held-out Python-code blocks for the loss"})
    block_size: int = field(default=256, metadata={"help": "tokens per block"})
    batch_size: int = field(default=4, metadata={"help": "blocks per batch"})
    l1_lambda: float = field(default=BY_SPARSITY, metadata={
        "help": "tuneprune group-lasso weight, >= 0; -1 = by sparsity (3e-4, 5e-4, 1e-3 at 0.3, 0.63, 0.8, "
                "log-linear between, clamped outside)"})
    tuneprune_steps: int = field(default=DEFAULT_STEPS, metadata={"help": "tuneprune training steps"})
    tuneprune_lr: float = field(default=DEFAULT_LR, metadata={"help": "tuneprune AdamW learning rate (LM loss)"})
    tuneprune_penalty_lr: float = field(default=DEFAULT_PENALTY_LR, metadata={
        "help": "tuneprune proximal step size in AdamW's metric: a step shrinks neuron j's norm by this x "
                "l1_lambda / d_j, d_j the mean AdamW denominator of its weights"})
    precision: str = field(default="fp32", metadata={"help": ", ".join(PRECISIONS)})
    checkpoint_dtype: str = field(default="fp32", metadata={
        "help": "dtype of the registered pruned checkpoint's weights: fp32, or bf16 (half the bytes)"})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    register_as: str = field(default="", metadata={"help": "registered model name ('' = derived)"})
    granularity: str = field(default="neuron", metadata={"help": "neuron (removed) or weight (zeroed; classifiers)"})
    task: str = field(default="sst2", metadata={"help": "classifiers: the task scored and recovered on"})
    recovery_steps: int = field(default=60, metadata={"help": "classifiers: recovery training steps after pruning"})
    recovery_lr: float = field(default=1e-4, metadata={"help": "classifiers: recovery learning rate"})

    def method_options(self) -> dict:
        """The options this config gives its pruning criterion (``PruningCriterion.options_of``)."""
        from forgetting.pruning import PRUNING_METHODS

        return PRUNING_METHODS.get(self.method).options_of(self)

    def params(self) -> dict:
        """The parameters the chosen path reads: what the cache key covers. Every criterion's own fields
        (``PruningCriterion.fields``) are read by that criterion alone."""
        from forgetting.pruning import PRUNING_METHODS

        own = set(PRUNING_METHODS.get(self.method).fields) if self.method in PRUNING_METHODS else set()
        others = {name for method in PRUNING_METHODS for name in PRUNING_METHODS.get(method).fields} - own
        unread = set(LANGUAGE_MODEL_FIELDS if self.classifier else CLASSIFIER_FIELDS) | others
        return {name: value for name, value in asdict(self).items() if name not in unread}

    @property
    def classifier(self) -> bool:
        from forgetting.models import resolve_model
        from forgetting.models.classifier import is_classifier

        return is_classifier(resolve_model(self.model))

    def validate(self) -> None:
        from forgetting.models import resolve_model
        from forgetting.pruning import PRUNING_METHODS, check_pruning

        if self.classifier:
            from forgetting.pruning.selective import check_selective_pruning

            return check_selective_pruning(self, resolve_model(self.model))
        criterion = PRUNING_METHODS.get(self.method)
        if not criterion.language_model:
            language_models = PRUNING_METHODS.names_where(lambda spec: spec.language_model)
            raise UsageError(f"method={self.method!r} prunes sequence classifiers (the selective study); a language "
                             f"model takes one of: {', '.join(language_models)}")
        if self.granularity != "neuron":
            raise UsageError(f"granularity={self.granularity!r} is for sequence classifiers (the selective study); "
                             "a language model is pruned by neuron")
        check_pruning(self.method, self.sparsity, self.scope, **self.method_options())
        check_choice("checkpoint_dtype", self.checkpoint_dtype, CHECKPOINT_DTYPES)
        for name in ("calibration_blocks", "eval_blocks", "block_size", "batch_size"):
            check_range(name, getattr(self, name), 1)

    @property
    def study(self) -> str | None:
        """A classifier's prune belongs to the classifiers' study; None: the entry point's (``study_of``)."""
        from forgetting.tracking.studies import classifier_study

        return classifier_study() if self.classifier else None

    def model_name(self) -> str:
        """``register_as``, or ``<model>-<method>-<percent>``."""
        from forgetting.tracking.checkpoints import registered_name

        suffix = "-weights" if self.granularity == "weight" else ""
        return self.register_as or f"{registered_name(self.model)}-{self.method}{suffix}-{round(100 * self.sparsity)}"


def prune_model(config: PruneConfig) -> dict[str, float]:
    """Inside the active run: held-out loss before/after, counts, the pruned checkpoint registered."""
    from forgetting.models import load_model
    from forgetting.models.weights import count_parameters
    from forgetting.pruning import counts_as_metrics, prune
    from forgetting.tracking.checkpoints import log_model
    from forgetting.training.corpus import lm_batches, python_code_blocks
    from forgetting.training.loss import heldout_loss

    model, tokenizer = load_model(config.model)
    calibration = python_code_blocks(tokenizer, "train", config.block_size, config.calibration_blocks, config.seed)
    held_out = python_code_blocks(tokenizer, "eval", config.block_size, config.eval_blocks, config.seed)
    loss_before = heldout_loss(model, lm_batches(held_out, config.batch_size), config.precision)
    pruned = prune(model, config.method, lm_batches(calibration, config.batch_size), config.sparsity,
                   scope=config.scope, seed=config.seed, **config.method_options())
    metrics = {"heldout_loss_before": loss_before,
               "heldout_loss_after": heldout_loss(pruned.model, lm_batches(held_out, config.batch_size),
                                                  config.precision),
               "parameters_before": count_parameters(model), "parameters_after": count_parameters(pruned.model),
               **counts_as_metrics(pruned.counts), **pruned.scores.metrics}
    metrics["parameter_ratio"] = metrics["parameters_after"] / metrics["parameters_before"]
    mlflow.log_metrics(metrics)
    log_model(pruned.model, tokenizer, register_as=config.model_name(), alias="pruned", dtype=config.checkpoint_dtype,
              tags={"stage": "prune", "method": config.method, "sparsity": config.sparsity, "step": 0})
    return metrics
