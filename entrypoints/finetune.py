"""finetune: baseline accuracy, then an Optuna learning-rate sweep (a multiple-choice task, or a sentence classifier
registered with its pruning statistics)."""
from forgetting.cli import parse_config, run_cli
from forgetting.training.finetune_stage import FinetuneConfig


def main() -> None:
    config = parse_config(FinetuneConfig, __doc__)
    from forgetting.stages import finetune_stage

    finetune_stage(config)


if __name__ == "__main__":
    run_cli(main)
