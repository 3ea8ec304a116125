"""evaluate: one suite on a model spec: task accuracy, safety attacks (GCG, AutoDAN), linear fact probes, a
classifier's accuracy, active parameters, time and memory, or the forgetting study's suites (forgetting,
safety, policy, representation, all)."""
from forgetting.cli import parse_config, run_cli
from forgetting.evaluation.suites import EvaluateConfig


def main() -> None:
    config = parse_config(EvaluateConfig, __doc__)
    from forgetting.stages import evaluate_stage

    evaluate_stage(config)


if __name__ == "__main__":
    run_cli(main)
