"""The ``classification`` evaluation suite: what pruning and distillation cost and save.

Accuracy and F1 on the task, active (non-zero) and stored parameters, inference time per
example, and memory. Time and memory are measured in a fresh spawned process, so one model's
allocations cannot hide another's. Memory is anonymous resident memory (``RssAnon``) over the
process after its imports: ``model_memory_mb`` once the model is loaded, ``peak_memory_mb`` the
highest during inference. The weights are copied out of the memory-mapped checkpoint first, or
the file pages a model happened to touch would decide the number. With ``sparse=true`` the
pruned Linear layers run as ``SparseLinear`` (CSR), the path whose real effect unstructured
sparsity is judged by.
"""
from __future__ import annotations

import gc
import threading
import time
from typing import Sequence

import mlflow


def check_classification(config) -> None:
    from forgetting.data.classification import check_classification_task

    check_classification_task(config.task, getattr(config, "source", "offline"), config.split)


def classification_summary(config, metrics: dict) -> str:
    from forgetting.scoring.intervals import interval_text

    return (f"{config.task} [{config.split}, {int(metrics['n_rows'])} rows]: accuracy {metrics['accuracy']:.4f} "
            f"{interval_text(metrics, 'accuracy')}, F1 {metrics['f1']:.4f}, "
            f"{int(metrics['active_parameters']):,} active parameters, "
            f"{1000 * metrics['seconds_per_example']:.1f} ms/example, peak {metrics['peak_memory_mb']:.0f} MB")


def evaluate_classification(config) -> dict[str, float]:
    """Inside the active run: the metrics above and the per-example predictions table."""
    import multiprocessing

    from forgetting.data import log_dataset
    from forgetting.data.classification import CLASSIFICATION_LABELS, classification_rows
    from forgetting.device import current
    from forgetting.evaluation.accuracy import as_table
    from forgetting.models import resolve_model
    from forgetting.scoring.classification import classification_metrics

    rows = classification_rows(config.task, config.split, config.seed, config.limit,
                               getattr(config, "source", "offline"))
    log_dataset(rows, config.task, config.split)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        measured = pool.apply(measure_classifier, (resolve_model(config.model), list(rows),
                                                   CLASSIFICATION_LABELS[config.task], config.batch_size,
                                                   config.precision, config.sparse, str(current().device)))
    predictions = measured.pop("predictions")
    metrics = classification_metrics([row["label"] for row in rows], predictions) | measured | {"n_rows": len(rows)}
    mlflow.log_metrics(metrics)
    mlflow.log_table(as_table([{"id": row["id"], "label": row["label"], "prediction": prediction}
                               for row, prediction in zip(rows, predictions)]),
                     artifact_file=f"predictions/{config.task}.json")
    return metrics


def measure_classifier(location: str, rows: Sequence[dict], num_labels: int, batch_size: int, precision: str,
                       sparse: bool, device: str = "cpu") -> dict:
    """Run in a spawned process: load, (sparsify,) classify ``rows``; predictions, time and memory. A
    spawned process starts without the stage's device policy, so ``device`` (the parent's) selects it."""
    import torch

    from forgetting.device import select
    from forgetting.models.classifier import load_classifier
    from forgetting.models.weights import count_parameters
    from forgetting.pruning.sparse import active_parameters, parameter_bytes, sparsify_linears
    from forgetting.scoring.classification import predict

    select(device, precision)
    baseline = _resident_mb()
    model, tokenizer = load_classifier(location, num_labels)
    parameters = count_parameters(model)
    sparse_layers = sparsify_linears(model) if sparse else 0
    for parameter in model.parameters():
        parameter.data = parameter.data.clone()
    gc.collect()
    loaded = _resident_mb()
    predict(model, tokenizer, rows[:batch_size], batch_size, precision)  # warm-up
    with _PeakResidentMemory() as peak:
        started = time.perf_counter()
        predictions = predict(model, tokenizer, rows, batch_size, precision)
        seconds = time.perf_counter() - started
    return {"predictions": predictions, "seconds_per_example": seconds / len(rows),
            "model_memory_mb": loaded - baseline, "peak_memory_mb": peak.mb - baseline,
            "parameter_mb": parameter_bytes(model) / 2**20, "active_parameters": active_parameters(model),
            "parameters": parameters, "sparse_layers": sparse_layers,
            "threads": torch.get_num_threads()}


def _resident_mb() -> float:
    """Anonymous resident memory of this process (Linux ``/proc/self/status``)."""
    with open("/proc/self/status") as status:
        kilobytes = next(line.split()[1] for line in status if line.startswith("RssAnon:"))
    return int(kilobytes) / 1024


class _PeakResidentMemory:
    """Samples anonymous resident memory every few milliseconds while the block runs."""

    def __enter__(self):
        self.mb = _resident_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.mb = max(self.mb, _resident_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.mb = max(self.mb, _resident_mb())
