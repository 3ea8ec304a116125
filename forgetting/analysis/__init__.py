"""analysis: runs and registered checkpoints of a study → pandas → plotly figures → one HTML report."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from forgetting.errors import UsageError


@dataclass(frozen=True)
class AnalyzeConfig:
    study: str = field(default="unlearning", metadata={"help": "study whose experiment is analysed"})
    output: str = field(default="", metadata={"help": "report file ('' = <home>/reports/<study>.html)"})

    def validate(self) -> None:
        from forgetting.tracking.studies import check_study

        check_study(self.study)
        if self.output and Path(self.output).expanduser().is_dir():
            raise UsageError(f"output={self.output!r} is a directory; give the report's file name")


def analyze_stage(config: AnalyzeConfig) -> Path:
    """Analyse in a fresh run every time: new stage runs keep arriving, so no cached result is reused."""
    import mlflow

    from forgetting.analysis.report import analyze_study
    from forgetting.tracking import configure, experiment_id
    from forgetting.tracking.runs import log_unlogged_params

    config.validate()
    configure()
    launcher = os.environ.get("MLFLOW_RUN_ID") if mlflow.active_run() is None else None
    with mlflow.start_run(run_id=launcher or None,
                          experiment_id=None if launcher else experiment_id(config.study),
                          run_name=f"analyze-{config.study}",
                          nested=mlflow.active_run() is not None,
                          tags={"forgetting.study": config.study, "forgetting.entry_point": "analyze"}) as run:
        log_unlogged_params(run.info.run_id, {"study": config.study, "output": config.output})
        path = analyze_study(config)
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    counts = ", ".join(f"{int(value)} {name.removeprefix('n_').replace('_', ' ')}"
                       for name, value in sorted(metrics.items()) if name.startswith("n_"))
    print(f"analyze {config.study}: {counts} -> {path}")
    return path
