"""train: continued causal-LM training on Python code, checkpoints registered with their step."""
from forgetting.cli import parse_config, run_cli
from forgetting.training.stage import TrainConfig


def main() -> None:
    config = parse_config(TrainConfig, __doc__)
    from forgetting.stages import train_stage

    train_stage(config)


if __name__ == "__main__":
    run_cli(main)
