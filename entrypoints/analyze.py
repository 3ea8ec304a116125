"""analyze: query a study's runs and registered checkpoints, draw plotly figures, write one HTML report."""
from forgetting.analysis import AnalyzeConfig
from forgetting.cli import parse_config, run_cli


def main() -> None:
    config = parse_config(AnalyzeConfig, __doc__)
    from forgetting.analysis import analyze_stage

    analyze_stage(config)


if __name__ == "__main__":
    run_cli(main)
