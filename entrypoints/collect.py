"""collect: run a model through a domain's environment; log trajectories, SFT data from correct responses, ground truth and preference pairs."""
from forgetting.cli import parse_config, run_cli
from forgetting.posttrain.collect import CollectConfig


def main() -> None:
    config = parse_config(CollectConfig, __doc__)
    from forgetting.stages import collect_stage

    collect_stage(config)


if __name__ == "__main__":
    run_cli(main)
