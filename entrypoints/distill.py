"""distill: train a smaller student (layers:N of the teacher, or a pruned classifier) on a fine-tuned classifier."""
from forgetting.cli import parse_config, run_cli
from forgetting.training.distill_stage import DistillConfig


def main() -> None:
    config = parse_config(DistillConfig, __doc__)
    from forgetting.stages import distill_stage

    distill_stage(config)


if __name__ == "__main__":
    run_cli(main)
