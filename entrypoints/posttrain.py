"""posttrain: one post-training method (gt-sft, sf-sft, cf-sft, self, on-rl, off-rl, pi, sdft) on one domain; registers the result."""
from forgetting.cli import parse_config, run_cli
from forgetting.posttrain.stage import PosttrainConfig


def main() -> None:
    config = parse_config(PosttrainConfig, __doc__)
    from forgetting.stages import posttrain_stage

    posttrain_stage(config)


if __name__ == "__main__":
    run_cli(main)
