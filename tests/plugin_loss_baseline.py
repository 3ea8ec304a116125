"""An attribution method written as a user would add one: this file plus one registration line.

``loss`` is the baseline the influence methods should beat: a training example scores by how well the
model fits it (minus its loss under the model), a source by the mean over its examples. It reads no
field of its own, only the common ``batch_size``, and no checkpoints.
"""
from forgetting.attribution.examples import example_losses
from forgetting.attribution.methods import by_source


def stage_options(config) -> dict:
    return {"batch_size": config.batch_size}


def loss_scores(model, train, sources, test, *, batch_size: int):
    return by_source(sources, -example_losses(model, train, batch_size))
