"""launch: a study's grid as Slurm array jobs chained with afterok (unlearning: prune -> train -> finetune ->
analyze; forgetting: collect -> posttrain -> evaluate -> analyze), each task an ``mlflow run`` of one stage
against the tracking server; dry run prints the scripts."""
from forgetting.studies.slurm import LaunchConfig
from forgetting.cli import parse_config, run_cli


def main() -> None:
    config = parse_config(LaunchConfig, __doc__)
    from forgetting.studies.slurm import launch

    launch(config)


if __name__ == "__main__":
    run_cli(main)
