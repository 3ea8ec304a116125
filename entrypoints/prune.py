"""prune: remove the lowest-scoring MLP neurons (random, attribution, tuneprune) and register the model; a classifier
is pruned by neuron or weight (magnitude, movement, gradient, combined) and recovered."""
from forgetting.cli import parse_config, run_cli
from forgetting.pruning.stage import PruneConfig


def main() -> None:
    config = parse_config(PruneConfig, __doc__)
    from forgetting.stages import prune_stage

    prune_stage(config)


if __name__ == "__main__":
    run_cli(main)
