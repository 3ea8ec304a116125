"""A study grid as Slurm jobs: one array job per stage, each stage after the previous one succeeded.

The unlearning grid is the one ``main`` runs (``forgetting.studies.unlearning.PRESETS`` through
``stage_configs``): an array task per prune config, per training start (the dense model and every
pruned one) and per (checkpoint, task) fine-tune sweep, then one analyze job. The forgetting grid
(``forgetting.studies.forgetting``) is collect → posttrain → evaluate → analyze; with
``posttrain_backend=cluster`` its SFT and GRPO jobs run verl (Ray, vLLM rollout) on the task's GPUs,
and a posttrain task finds the collect run it learns from when it starts (``upstream``). Each task calls
``mlflow run . -e <stage> --env-manager local -P …`` with ``MLFLOW_TRACKING_URI`` set to the
tracking server, so the entry points run as they do on a laptop. Stages find their upstream
checkpoints through registry aliases that the upstream stage sets (``models:/<name>@pruned``,
``models:/<name>-python@step-<n>``), since version numbers are unknown when the jobs are written.
``submit.sh`` checks the server, creates the study's experiment and the Optuna tables once (no
array task races to create them) and chains the arrays with ``sbatch --dependency=afterok``.

With several ``models`` (the model-scale axis) or ``seeds`` each (model, seed) gets its own chain of jobs,
its scripts in a folder named after the model and seed (``<folder>/<name>-seed1/02-train.sbatch``; seed 0
has the plain name): the unlearning grid's prune → train → finetune, the forgetting grid's posttrain →
evaluate after one shared collect job (a teacher's trajectories of a seed serve every model that learns
from them). One analyze job runs after every chain.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from forgetting.backends.commands import mlflow_run_arguments, stage_parameters
from forgetting.errors import UsageError, check_choice, check_range
from forgetting.models import DEFAULT_MODEL
from forgetting.tracking.store import PROJECT_ROOT, home

POSTTRAIN_BACKENDS = ("local", "cluster")
SLURM_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")
SLURM_MEMORY = re.compile(r"^\d+[KMGT]?$")
HUB_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")  # passed on as set at launch


@dataclass(frozen=True)
class LaunchConfig:
    study: str = field(default="unlearning", metadata={"help": "study whose grid becomes jobs: unlearning or forgetting"})
    preset: str = field(default="quick", metadata={"help": "grid preset of the study: quick, paper or smoke"})
    model: str = field(default=DEFAULT_MODEL, metadata={
        "help": "model spec every start descends from (one model; see models)"})
    models: str = field(default="", metadata={
        "help": "comma-separated model specs, one chain of jobs per model (e.g. smollm2-135m,gemma3-270m; '' = model)"})
    seeds: str = field(default="0", metadata={
        "help": "comma-separated grid seeds, one chain of jobs per model and seed (seed s != 0 registers its "
                "checkpoints as <name>-seed<s>; forgetting: collect runs once per seed too)"})
    tracking_uri: str = field(default="", metadata={"help": "http(s) URL of the tracking server ('' = $MLFLOW_TRACKING_URI)"})
    storage: str = field(default="", metadata={
        "help": "unlearning: shared Optuna RDB URL for the sweeps, e.g. postgresql+psycopg2://host/optuna"})
    safe_model: str = field(default="", metadata={
        "help": "forgetting: the safety-aligned start, post-trained like `model` ('' = the base start only); with "
                "several models one per model, comma-separated, or a template with {model} (the model's registered "
                "name), e.g. models:/{model}-gt-sft-safety@posttrained"})
    same_family_teacher: str = field(default="", metadata={
        "help": "forgetting: sf-sft's teacher, one for every model or one per model, comma-separated ('' = the "
                "preset's: the start model itself)"})
    cross_family_teacher: str = field(default="", metadata={
        "help": "forgetting: cf-sft's teacher (another family), one for every model or one per model, "
                "comma-separated ('' = the preset's: gemma3-270m)"})
    posttrain_backend: str = field(default="cluster", metadata={
        "help": "forgetting: cluster (verl on the task's GPUs for SFT and GRPO, TRL for the rest) or local (TRL for all)"})
    dry_run: bool = field(default=True, metadata={"help": "print the scripts instead of writing and submitting them"})
    output: str = field(default="", metadata={"help": "folder for the scripts and logs ('' = <home>/slurm/<study>-<preset>)"})
    partition: str = field(default="", metadata={"help": "#SBATCH --partition ('' = the cluster default)"})
    account: str = field(default="", metadata={"help": "#SBATCH --account ('' = none)"})
    time: str = field(default="04:00:00", metadata={"help": "#SBATCH --time per task"})
    cpus_per_task: int = field(default=8, metadata={"help": "#SBATCH --cpus-per-task"})
    mem: str = field(default="32G", metadata={"help": "#SBATCH --mem per task"})
    gpus: int = field(default=1, metadata={"help": "GPUs per task of every stage but analyze (--gres=gpu:N)"})
    max_parallel: int = field(default=0, metadata={"help": "array tasks running at once (the --array throttle; 0 = no limit)"})
    sbatch_extra: str = field(default="", metadata={"help": "more #SBATCH options, comma-separated (--qos=high,--constraint=a100)"})
    setup: str = field(default="", metadata={"help": "shell line that activates the environment ('' = the project's .venv)"})
    forgetting_home: str = field(default="", metadata={"help": "FORGETTING_HOME of the jobs ('' = the project's .forgetting)"})

    def validate(self) -> None:
        from forgetting.sweep import check_storage
        from forgetting.studies.unlearning import seed_list

        check_choice("study", self.study, tuple(study_grids()))
        grid = study_grids()[self.study]
        check_choice("preset", self.preset, tuple(grid.presets))
        seed_list(self.seeds)  # a bad list fails here, in one line, before any script is written
        for name in ("safe_model", "same_family_teacher", "cross_family_teacher"):
            self.per_model(name)
        if not self.server_uri().startswith(("http://", "https://")):
            raise UsageError(f"tracking_uri={self.server_uri()!r} is not an http(s) tracking server: Slurm jobs on "
                             "other nodes need one (python -m forgetting.tracking.server)")
        if grid.sweeps and (not self.storage or self.storage.startswith("sqlite")):
            raise UsageError(f"storage={self.storage!r}: Slurm jobs need a shared Optuna RDB URL "
                             "(postgresql+psycopg2://host/optuna); SQLite must not be shared over NFS")
        if self.storage:
            check_storage(self.storage)
        check_choice("posttrain_backend", self.posttrain_backend, POSTTRAIN_BACKENDS)
        if not SLURM_TIME.match(self.time):
            raise UsageError(f"time={self.time!r} is not a Slurm time (MM, HH:MM:SS, D-HH:MM:SS)")
        if not SLURM_MEMORY.match(self.mem):
            raise UsageError(f"mem={self.mem!r} is not a Slurm memory size (e.g. 32G, 8000M)")
        check_range("cpus_per_task", self.cpus_per_task, 1)
        check_range("gpus", self.gpus, 0)
        check_range("max_parallel", self.max_parallel, 0)
        for option in self.extra_options():
            if not re.match(r"^--[a-z][\w-]*(=\S+)?$", option):
                raise UsageError(f"sbatch_extra option {option!r} is not --name or --name=value")

    def model_list(self) -> list[str]:
        """The models, one chain of jobs each (``models``, else ``[model]``)."""
        from forgetting.studies.unlearning import model_specs

        return model_specs(self.model, self.models)

    def chains(self) -> dict[tuple[str, int], str]:
        """The chain of jobs of each (model, grid seed), named after the model's registered name and the seed
        (``seeded_name``); '' when there is only one."""
        from forgetting.tracking.checkpoints import registered_name
        from forgetting.studies.unlearning import seed_list, seeded_name

        models, seeds = self.model_list(), seed_list(self.seeds)
        return {(model, seed): seeded_name(registered_name(model), seed) if len(models) * len(seeds) > 1 else ""
                for model in models for seed in seeds}

    def per_model(self, name: str) -> list[str]:
        """The comma-separated value of ``name``, one entry per model ('' for none): one value serves every
        model, ``{model}`` in it becoming the model's registered name; a safe start is one model's, so
        several models need a list or a template."""
        from forgetting.tracking.checkpoints import registered_name

        models, value = self.model_list(), getattr(self, name)
        specs = [spec.strip() for spec in value.split(",")] if value.strip() else [""]
        if not all(specs) and value.strip():
            raise UsageError(f"{name}={value!r} has an empty entry")
        one_for_all = name != "safe_model" or len(models) == 1 or not value or "{model}" in value
        if len(specs) == 1 and one_for_all:
            specs *= len(models)
        elif len(specs) != len(models):
            raise UsageError(f"{name}={value!r} names {len(specs)} spec{'s' * (len(specs) > 1)} for {len(models)} "
                             f"models ({', '.join(models)}): give one per model, comma-separated in the order of "
                             "models" + (", or a template with {model}" if name == "safe_model" else ""))
        return [spec.replace("{model}", registered_name(model)) for spec, model in zip(specs, models)]

    def server_uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")

    def extra_options(self) -> list[str]:
        return [option.strip() for option in self.sbatch_extra.split(",") if option.strip()]

    def folder(self) -> Path:
        return Path(self.output).expanduser().resolve() if self.output else home() / "slurm" / f"{self.study}-{self.preset}"

    def setup_line(self) -> str:
        if self.setup:
            return self.setup
        venv = PROJECT_ROOT / ".venv" / "bin" / "activate"
        return f"source {shlex.quote(str(venv))}" if venv.exists() else ""


@dataclass(frozen=True)
class Grid:
    """A study's grid as ``launch`` renders it."""

    presets: dict
    jobs: Callable[[LaunchConfig], list[StageJob]]  # every job in submission order
    sweeps: bool = False  # its jobs run Optuna sweeps, which share one RDB storage across nodes


def study_grids() -> dict[str, Grid]:
    """The studies ``launch`` renders as jobs."""
    from forgetting.studies.forgetting import FORGETTING_PRESETS
    from forgetting.studies.unlearning import PRESETS

    return {"unlearning": Grid(PRESETS, unlearning_study_jobs, sweeps=True),
            "forgetting": Grid(FORGETTING_PRESETS, forgetting_jobs)}


@dataclass(frozen=True)
class Upstream:
    """A parameter known only once an upstream stage ran: the ID of the study's newest FINISHED
    ``entry_point`` run with these parameters, looked up by the task when it starts."""

    entry_point: str
    params: tuple[tuple[str, str], ...]

    def lookup(self, study: str) -> str:
        words = [study, self.entry_point, *(f"{name}={value}" for name, value in self.params)]
        return f"$(python -m forgetting.studies.slurm upstream {shlex.join(words)})"


@dataclass(frozen=True)
class StageJob:
    """One stage of the grid: an array task per parameter set (a plain job when there is one). ``chain``
    names the model whose chain of jobs it belongs to ('' = a job of the whole grid, or the only chain)."""

    stage: str
    tasks: tuple[dict[str, str | Upstream], ...]
    gpus: bool = True
    chain: str = ""


def unlearning_jobs(model: str, preset_name: str, storage: str, gpus: int = 1, chain: str = "") -> list[StageJob]:
    """prune → train → finetune → analyze for ``main``'s grid on ``model``, every config validated; each
    train task runs data-parallel on its ``gpus`` (torchrun started by the train entry point)."""
    return [*unlearning_chain(model, preset_name, storage, gpus, chain), analyze_job("unlearning")]


def analyze_job(study: str) -> StageJob:
    from forgetting.analysis import AnalyzeConfig

    analyze = AnalyzeConfig(study=study)
    analyze.validate()
    return StageJob("analyze", (stage_parameters(analyze),), gpus=False)


def unlearning_chain(model: str, preset_name: str, storage: str, gpus: int = 1, chain: str = "",
                     seed: int = 0) -> list[StageJob]:
    """prune → train → finetune of one model and grid seed (registered names as ``main`` gives them)."""
    from forgetting.studies.unlearning import PRESETS, stage_configs, train_config

    preset = PRESETS[preset_name]
    prunes, train, finetunes = stage_configs(model, preset, seed=seed)
    trains = [replace(train_config(train, start), gpus=max(gpus, 1))
              for start in [model, *(f"models:/{prune.model_name()}@pruned" for prune in prunes)]]
    sweeps = [replace(finetune, model=f"models:/{trained.model_name()}@step-{step}", storage=storage)
              for trained in trains for step in preset.finetuned_steps(train.checkpoint_steps())
              for finetune in finetunes]
    for config in (*trains, *sweeps):
        config.validate()
    return [StageJob("prune", tuple(stage_parameters(c) for c in prunes), chain=chain),
            StageJob("train", tuple(stage_parameters(c) for c in trains), chain=chain),
            StageJob("finetune", tuple(stage_parameters(c) for c in sweeps), chain=chain)]


def study_jobs(config: LaunchConfig) -> list[StageJob]:
    """Every job of the study's grid in submission order: with several models or seeds, a chain per model
    and seed (``LaunchConfig.chains``) between the jobs shared by the whole grid."""
    return study_grids()[config.study].jobs(config)


def unlearning_study_jobs(config: LaunchConfig) -> list[StageJob]:
    """prune → train → finetune per model and seed, then one analyze."""
    return [*(job for (model, seed), chain in config.chains().items()
              for job in unlearning_chain(model, config.preset, config.storage, config.gpus, chain, seed)),
            analyze_job("unlearning")]


def forgetting_jobs(config: LaunchConfig) -> list[StageJob]:
    """collect → posttrain → evaluate → analyze of the forgetting preset, every config validated: one
    collect job for the grid (each teacher's trajectories once per seed, for every model that learns from
    them), posttrain → evaluate per model and seed with the model's teachers and safe start, one analyze.
    A posttrain task looks up the collect run of its own teacher, domain and seed."""
    from forgetting.studies.forgetting import FORGETTING_PRESETS, forgetting_configs, teacher_of, with_teachers

    models = config.model_list()
    same, cross, safe = (config.per_model(name) for name in ("same_family_teacher", "cross_family_teacher",
                                                              "safe_model"))
    collects, jobs = {}, []
    for (model, seed), chain in config.chains().items():
        index = models.index(model)
        preset = with_teachers(FORGETTING_PRESETS[config.preset], same[index], cross[index])
        starts = {"base": model} | ({"safe": safe[index]} if safe[index] else {})
        needed, posttrains, evaluations = forgetting_configs(starts, preset, max(config.gpus, 1),
                                                             cluster=config.posttrain_backend == "cluster", seed=seed)
        for collect in needed:
            collects.setdefault((collect.model, collect.domain, collect.seed), collect)

        def posttrain_task(posttrain, preset=preset) -> dict:
            parameters = stage_parameters(posttrain)
            if teacher := teacher_of(posttrain.method, posttrain.model, preset):
                parameters["data"] = Upstream("collect", (("model", teacher), ("domain", posttrain.domain),
                                                          ("seed", str(posttrain.seed))))
            return parameters

        jobs += [StageJob("posttrain", tuple(posttrain_task(p) for p in posttrains), chain=chain),
                 StageJob("evaluate", tuple(stage_parameters(e) for e in evaluations), chain=chain)]
    return [StageJob("collect", tuple(stage_parameters(c) for c in collects.values())), *jobs,
            analyze_job("forgetting")]


def stage_positions(jobs: list[StageJob]) -> list[int]:
    """Each job's place in the study's pipeline (1 = its first stage), the same in every chain."""
    stages = list(dict.fromkeys(job.stage for job in jobs))
    return [stages.index(job.stage) + 1 for job in jobs]


def dependencies(jobs: list[StageJob]) -> list[list[int]]:
    """For each job, the jobs that must succeed first: the previous job of its chain (a chain's first job:
    the last shared job before it); a shared job waits for the end of every chain before it."""
    after, last_shared, chain_ends = [], None, {}
    for index, job in enumerate(jobs):
        if job.chain:
            after.append([chain_ends[job.chain]] if job.chain in chain_ends
                         else [last_shared] if last_shared is not None else [])
            chain_ends[job.chain] = index
        else:
            after.append(list(chain_ends.values()) or ([last_shared] if last_shared is not None else []))
            chain_ends, last_shared = {}, index
    return after


def script_name(position: int, job: StageJob) -> str:
    return f"{job.chain}/" * bool(job.chain) + f"{position:02d}-{job.stage}.sbatch"


def job_script(job: StageJob, config: LaunchConfig) -> str:
    """The sbatch script of one stage: resources, environment, the task's ``mlflow run``."""
    name = "-".join([config.study, config.preset, *[job.chain] * bool(job.chain), job.stage])
    array = len(job.tasks) > 1
    directives = [f"--job-name={name}",
                  f"--output={config.folder() / 'logs'}/%x-{'%A_%a' if array else '%j'}.out",
                  f"--time={config.time}", f"--cpus-per-task={config.cpus_per_task}", f"--mem={config.mem}"]
    if array:
        throttle = f"%{config.max_parallel}" if config.max_parallel else ""
        directives.append(f"--array=0-{len(job.tasks) - 1}{throttle}")
    if job.gpus and config.gpus:
        directives.append(f"--gres=gpu:{config.gpus}")
    directives += [f"--partition={config.partition}"] * bool(config.partition)
    directives += [f"--account={config.account}"] * bool(config.account)
    directives += config.extra_options()
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives),
             f"# {job.stage} stage of the {config.study} grid (preset {config.preset})"
             + f" for {job.chain}" * bool(job.chain) + f": {len(job.tasks)} task{'s' * array}",
             "set -euo pipefail", f"cd {shlex.quote(str(PROJECT_ROOT))}", *_environment(config)]
    command = shlex.join(mlflow_run_arguments(job.stage, {}, config.study))
    if array:
        lines.append('case "${SLURM_ARRAY_TASK_ID:?not an array task}" in')
        for index, parameters in enumerate(job.tasks):
            lines.append(f"  {index}) {_task_line(parameters, config.study)} ;;")
        lines += ['  *) echo "error: no task ${SLURM_ARRAY_TASK_ID} in this array" >&2; exit 2 ;;', "esac"]
    else:
        lines.append(_task_line(job.tasks[0], config.study))
    lines += [f"python -m forgetting.tracking {config.study} >/dev/null  # unreachable server: one line, exit 2",
              f'exec {command} "$@"']
    return "\n".join(lines) + "\n"


def submit_script(jobs: list[StageJob], config: LaunchConfig) -> str:
    """Checks the server, creates the experiment once, then submits each stage after the previous one."""
    chains = list(dict.fromkeys(job.chain for job in jobs if job.chain))
    stages = " -> ".join(dict.fromkeys(job.stage for job in jobs))
    lines = ["#!/bin/bash", f"# Submit the {config.study} grid (preset {config.preset}): {stages}, each stage once "
             "the previous one succeeded"
             + (f"; one chain per model and seed ({', '.join(chains)})" if chains else "") + ".",
             "set -euo pipefail", f"cd {shlex.quote(str(PROJECT_ROOT))}", *_environment(config),
             shlex.join(["python", "-m", "forgetting.studies.slurm", "prepare", config.study,
                         *[config.storage] * bool(config.storage)])
             + "  # the server answers; the experiment (and Optuna's tables) exist before any task",
             f"mkdir -p {shlex.quote(str(config.folder() / 'logs'))}"]
    # shell variables holding the job IDs
    names = [f"{job.stage}_{chains.index(job.chain) + 1}" if job.chain else job.stage for job in jobs]
    for job, position, name, after in zip(jobs, stage_positions(jobs), names, dependencies(jobs)):
        script = shlex.quote(str(config.folder() / script_name(position, job)))
        waits = ":".join(f"${names[index]}" for index in after)
        dependency = f" --dependency=afterok:{waits} --kill-on-invalid-dep=yes" if after else ""
        lines.append(f"{name}=$(sbatch --parsable{dependency} {script}); {name}=${{{name}%%;*}}")
    lines.append('echo "submitted: ' + ", ".join(f"{job.stage}{f' {job.chain}' * bool(job.chain)} ${name}"
                                                 for job, name in zip(jobs, names)) + '"')
    return "\n".join(lines) + "\n"


def scripts(config: LaunchConfig) -> dict[str, str]:
    """``{file name: text}`` of every job script (a model's chain in a folder of its own when there are
    several models) and ``submit.sh``."""
    jobs = study_jobs(config)
    texts = {script_name(position, job): job_script(job, config) for job, position in zip(jobs, stage_positions(jobs))}
    return texts | {"submit.sh": submit_script(jobs, config)}


def launch(config: LaunchConfig) -> dict[str, str]:
    """Print the scripts (dry run), or write them to ``config.folder()`` and run ``submit.sh``."""
    from forgetting.tracking.store import check_reachable

    config.validate()
    if not config.dry_run:
        check_reachable(config.server_uri())
        if not shutil.which("sbatch"):
            raise UsageError("sbatch is not on PATH: submit from a Slurm login node, or use dry_run=true "
                             "to print the scripts")
    texts = scripts(config)
    if config.dry_run:
        for name, text in texts.items():
            print(f"# ==> {config.folder() / name} <==\n{text}")
        return texts
    folder = config.folder()
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    if (code := subprocess.run(["bash", str(folder / "submit.sh")]).returncode) != 0:
        raise UsageError(f"{folder / 'submit.sh'} failed with exit status {code} (its output is above)")
    return texts


def prepare_stores(study: str, storage: str = "") -> None:
    """Check the tracking server and create the study's experiment and Optuna's tables, once, before
    any task starts: array tasks starting together would race to create them."""
    from forgetting.backends.shared_study import prepare_storage
    from forgetting.sweep import check_storage
    from forgetting.tracking import experiment_id, tracking_uri

    check_choice("study", study, tuple(study_grids()))
    if storage:
        check_storage(storage)
    experiment = experiment_id(study)
    try:
        if storage:
            prepare_storage(storage)
    except Exception as error:  # noqa: BLE001 - any driver error means the same to the user
        raise UsageError(f"storage={storage!r} is unreachable ({type(error).__name__}: {error})".splitlines()[0]) from None
    print(f"tracking server {tracking_uri()}: experiment {study} ({experiment}) ready"
          + ("; Optuna tables ready" if storage else ""))


def upstream_run(study: str, entry_point: str, params: dict[str, str]) -> str:
    """The ID of the study's newest FINISHED ``entry_point`` run with ``params``; one-line error if none."""
    import mlflow

    from forgetting.tracking import configure

    configure()
    query = " and ".join([f"tags.`forgetting.entry_point` = '{entry_point}'", f"tags.`forgetting.study` = '{study}'",
                          "attributes.status = 'FINISHED'", *(f"params.`{k}` = '{v}'" for k, v in params.items())])
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=query, order_by=["attributes.start_time DESC"],
                              max_results=1, output_format="list")
    if not runs:
        shown = " ".join(f"{k}={v}" for k, v in params.items())
        raise UsageError(f"no FINISHED {entry_point} run with {shown} in study {study!r}: its job has not succeeded")
    return runs[0].info.run_id


def _environment(config: LaunchConfig) -> list[str]:
    lines = [config.setup_line()] if config.setup_line() else []
    lines.append(f"export MLFLOW_TRACKING_URI={shlex.quote(config.server_uri())}")
    if config.forgetting_home:
        lines.append(f"export FORGETTING_HOME={shlex.quote(config.forgetting_home)}")
    lines.append("export MLFLOW_DISABLE_TELEMETRY=true")
    # Hub access as at launch: the user's setting (HF_HUB_OFFLINE=0 goes online), else the project's default
    # (forgetting.tracking.store sets HF_HUB_OFFLINE=1 where it is unset); never forced over the user's.
    lines += [f"export {name}={shlex.quote(os.environ[name])}" for name in HUB_VARIABLES if name in os.environ]
    lines.append("export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}")
    return lines


def _task_line(parameters: dict[str, str | Upstream], study: str) -> str:
    """``set -- -P …`` of one task, after assigning each upstream value (a failed lookup stops the job)."""
    lookups = [f"upstream_{name}={value.lookup(study)}; " for name, value in parameters.items()
               if isinstance(value, Upstream)]
    words = [f'-P "{name}=$upstream_{name}"' if isinstance(value, Upstream) else f"-P {shlex.quote(f'{name}={value}')}"
             for name, value in parameters.items()]
    return "".join(lookups) + " ".join(["set --", *words])


if __name__ == "__main__":
    import sys

    from forgetting.cli import run_cli

    usage = ("usage: python -m forgetting.studies.slurm prepare STUDY [OPTUNA_STORAGE_URL] | "
             "upstream STUDY ENTRY_POINT NAME=VALUE ...")

    def main() -> None:
        command, arguments = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
        if command == "prepare" and len(arguments) in (1, 2):
            prepare_stores(*arguments)
        elif command == "upstream" and len(arguments) >= 2 and all("=" in word for word in arguments[2:]):
            print(upstream_run(arguments[0], arguments[1], dict(word.split("=", 1) for word in arguments[2:])))
        else:
            raise UsageError(usage)

    run_cli(main)
