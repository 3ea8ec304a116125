"""Real data from installed packages, as ``datasets.Dataset`` splits with one schema per task kind.

``load_task(name, split="eval", seed=0, limit=None, source="offline")`` returns a split; ``log_dataset``
records it in the active MLflow run. Schemas: ``forgetting.data.schemas``; which split is what: the
docstring of each family module (``multiple_choice``, ``generative``, ``code``, ``facts``, ``corpus``,
``safety``). ``source="hub"`` reads the seeds' real data sets from the Hugging Face hub behind the
same task names (``hub``, ``hub_tasks``). Importing this package reads no data and imports neither
``datasets`` nor ``mlflow``.
"""
from forgetting.data.loading import (SOURCES, check_source, check_task, load_task, task_kind, task_names,
                                     task_splits)
from forgetting.data.schemas import COLUMNS, KINDS
from forgetting.data.task import TASKS, Task
from forgetting.data.tracking import dataset_digest, log_dataset

TASKS.register("arc_easy", "forgetting.data.multiple_choice:ARC_EASY")
TASKS.register("arc_challenge", "forgetting.data.multiple_choice:ARC_CHALLENGE")
TASKS.register("mmlu", "forgetting.data.multiple_choice:MMLU")
TASKS.register("hellaswag", "forgetting.data.multiple_choice:HELLASWAG")
TASKS.register("boolq", "forgetting.data.multiple_choice:BOOLQ")
TASKS.register("piqa", "forgetting.data.multiple_choice:PIQA")
TASKS.register("sciq", "forgetting.data.multiple_choice:SCIQ")
TASKS.register("sst2", "forgetting.data.multiple_choice:SST2")
TASKS.register("counterfact", "forgetting.data.facts:COUNTERFACT")
TASKS.register("gsm8k", "forgetting.data.generative:GSM8K")
TASKS.register("math", "forgetting.data.generative:MATH")
TASKS.register("math500", "forgetting.data.generative:MATH500")
TASKS.register("naturalqs", "forgetting.data.generative:NATURALQS")
TASKS.register("triviaqa", "forgetting.data.generative:TRIVIAQA")
TASKS.register("humaneval", "forgetting.data.code:HUMANEVAL")
TASKS.register("mbpp", "forgetting.data.code:MBPP")
TASKS.register("facts", "forgetting.data.facts:FACTS")
TASKS.register("python_code", "forgetting.data.corpus:PYTHON_CODE")
TASKS.register("harmbench", "forgetting.data.safety:HARMBENCH")
TASKS.register("advbench", "forgetting.data.safety:ADVBENCH")
TASKS.register("donotanswer", "forgetting.data.safety:DONOTANSWER")
TASKS.register("realtoxicityprompts", "forgetting.data.safety:REALTOXICITYPROMPTS")
TASKS.register("refusal_labelled", "forgetting.data.safety:REFUSAL_LABELLED")
TASKS.register("refusal_demonstrations", "forgetting.data.safety:REFUSAL_DEMONSTRATIONS")

__all__ = ["COLUMNS", "KINDS", "SOURCES", "TASKS", "Task", "check_source", "check_task", "dataset_digest", "load_task",
           "log_dataset", "task_kind", "task_names", "task_splits"]
