"""main: the embedded default job (accuracy of the default model on a few real tasks), cached."""
from dataclasses import dataclass, field

from forgetting.cli import parse_config, run_cli
from forgetting.models import DEFAULT_MODEL


@dataclass(frozen=True)
class MainConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec"})
    preset: str = field(default="quick", metadata={"help": "quick (minutes on 2 CPU cores), full (whole splits) or smoke"})


def main() -> None:
    config = parse_config(MainConfig, __doc__)
    from forgetting.tracking.ui import print_where_results_are
    from forgetting.stages import main_stage

    main_stage(config.model, config.preset)
    print_where_results_are()


if __name__ == "__main__":
    run_cli(main)
