"""Record a loaded task split as an MLflow dataset input of the active run."""
from __future__ import annotations

import hashlib
import json
import warnings

from forgetting.data.schemas import TARGET_COLUMN


def dataset_digest(ds) -> str:
    """A content hash over every row (MLflow's own digest only looks at the first 10,000 rows)."""
    digest = hashlib.sha256()
    for batch in ds.data.to_batches():
        for row in batch.to_pylist():
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
            digest.update(b"\n")
    return digest.hexdigest()[:16]


def log_dataset(ds, name: str, split: str, context: str = "eval") -> str:
    """Log ``ds`` (task ``name``, split ``split``) as an input of the active run; return its digest.

    Also logs the params ``<context>_task``, ``<context>_split``, ``<context>_rows`` and
    ``<context>_digest``. A dataset from ``load_task(..., source="hub")`` is logged with a
    Hugging Face dataset source (repo id, config, files, hub split, revision), the input tags
    ``source`` and ``revision``, and the params ``<context>_source`` and ``<context>_revision``. MLflow
    params cannot change within a run, so log different datasets of one run under different
    contexts (e.g. ``"eval_arc_easy"``). Requires an active run.
    """
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    from forgetting.data.hub import origin_of
    from forgetting.data.loading import task_kind

    if mlflow.active_run() is None:
        raise RuntimeError("log_dataset needs an active MLflow run (mlflow.start_run())")
    digest = dataset_digest(ds)
    try:
        target = TARGET_COLUMN[task_kind(name)]
    except ValueError:  # not a task name (UsageError): a dataset built elsewhere
        target = None
    hub_origin = origin_of(ds)
    tags = {"task": name, "split": split}
    params = {f"{context}_task": name, f"{context}_split": split, f"{context}_rows": len(ds),
              f"{context}_digest": digest}
    if hub_origin is None:
        source = CodeDatasetSource(tags={"forgetting.task": name, "forgetting.split": split})
    else:
        from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

        source = HuggingFaceDatasetSource(path=hub_origin["source"], config_name=hub_origin["config"],
                                          data_files=hub_origin["files"], split="+".join(hub_origin["splits"]),
                                          revision=hub_origin["revision"])
        tags |= {"source": hub_origin["source"], "revision": hub_origin["revision"]}
        params |= {f"{context}_source": hub_origin["source"], f"{context}_revision": hub_origin["revision"]}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        dataset = mlflow.data.from_huggingface(ds, name=f"{name}-{split}", digest=digest, source=source,
                                               targets=target if target in ds.column_names else None)
        mlflow.log_input(dataset, context=context, tags=tags)
    mlflow.log_params(params)
    return digest
