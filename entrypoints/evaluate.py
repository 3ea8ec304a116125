"""evaluate: accuracy of a model spec on one multiple-choice or generative task."""
from forgetting.cli import parse_config, run_cli
from forgetting.evaluation.accuracy import AccuracyConfig


def main() -> None:
    config = parse_config(AccuracyConfig, __doc__)
    from forgetting.stages import evaluate_stage

    evaluate_stage(config)


if __name__ == "__main__":
    run_cli(main)
