"""attribute: which training data caused a behaviour: UnTrac, UnTrac-Inv and TracIn scores per source and example."""
from forgetting.cli import parse_config, run_cli
from forgetting.attribution.stage import AttributeConfig


def main() -> None:
    config = parse_config(AttributeConfig, __doc__)
    from forgetting.stages import attribute_stage

    attribute_stage(config)


if __name__ == "__main__":
    run_cli(main)
