"""main: the unlearning study (prune x sparsity -> train on Python -> fine-tuning sweeps -> report), cached;
the whole grid once per model of `models`."""
from dataclasses import dataclass, field

from forgetting.cli import parse_config, run_cli
from forgetting.device import DEVICE_HELP, GPUS_HELP
from forgetting.models import DEFAULT_MODEL


@dataclass(frozen=True)
class MainConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec (one model; see models)"})
    models: str = field(default="", metadata={
        "help": "comma-separated model specs, the grid once per model (e.g. smollm2-135m,gemma3-270m; '' = model)"})
    preset: str = field(default="quick", metadata={"help": "quick (about 6 min on 2 CPU cores), paper (published budgets, GPU) or smoke"})
    device: str = field(default="auto", metadata={"help": "every stage's device: " + DEVICE_HELP})
    gpus: int = field(default=1, metadata={"help": "train: " + GPUS_HELP})
    seeds: str = field(default="0", metadata={
        "help": "comma-separated seeds, the whole grid once per seed (the analysis shows the mean and interval "
                "over seeds)"})

    def validate(self) -> None:
        """Every check the grid makes on its parameters before any run exists (``./run`` calls it)."""
        from forgetting.errors import check_choice
        from forgetting.studies.unlearning import PRESETS, model_specs, seed_list, stage_configs

        check_choice("preset", self.preset, tuple(PRESETS))
        for model in model_specs(self.model, self.models):
            for seed in seed_list(self.seeds):
                stage_configs(model, PRESETS[self.preset], self.device, self.gpus, seed)


def main() -> None:
    config = parse_config(MainConfig, __doc__)
    from forgetting.tracking.ui import print_where_results_are
    from forgetting.studies.unlearning import model_specs, run_grid, seed_list

    run_grid(model_specs(config.model, config.models), config.preset, config.device, config.gpus,
             tuple(seed_list(config.seeds)))
    print_where_results_are()


if __name__ == "__main__":
    run_cli(main)
