"""Grid seeds of the forgetting study: ``launch -P study=forgetting -P seeds=…`` gives each seed its own
collect, posttrain and evaluate runs under its own registered names, and the analysis makes one condition
of a method's seeds."""
import dataclasses
import re

import mlflow
import numpy as np
import pytest
from test_analysis import Study
from test_scaleout import fake_commands, quick_config, run_script
from test_study_suites import forgetting_metrics

from forgetting.studies.slurm import launch
from forgetting.errors import UsageError

MODEL = "smollm2-135m"


def array_tasks(text: str, tmp_path) -> list[dict]:
    """The ``-P`` parameters of every task of an array job script, as its ``mlflow run`` receives them."""
    found = []
    for index in range(int(re.search(r"--array=0-(\d+)", text)[1]) + 1):
        result = run_script(text, tmp_path, SLURM_ARRAY_TASK_ID=str(index))
        assert result.returncode == 0, result.stderr
        found.append(dict(w.split("=", 1) for w in result.stdout.splitlines()[9::2]))
    return found


def test_dry_run_renders_a_chain_per_seed_with_its_own_seeds_names_and_collect_runs(tmp_path):
    config = quick_config(tmp_path, study="forgetting", preset="smoke", storage="", seeds="0,1,2")
    texts = launch(config)
    assert not (tmp_path / "slurm").exists()  # a dry run writes nothing
    chains = [MODEL, f"{MODEL}-seed1", f"{MODEL}-seed2"]
    assert list(texts) == ["01-collect.sbatch", *(f"{chain}/{stage}.sbatch" for chain in chains
                                                  for stage in ("02-posttrain", "03-evaluate")),
                           "04-analyze.sbatch", "submit.sh"]
    submit = texts["submit.sh"]
    assert all(f"posttrain_{n}=$(sbatch --parsable --dependency=afterok:$collect " in submit for n in (1, 2, 3))
    assert "analyze=$(sbatch --parsable --dependency=afterok:$evaluate_1:$evaluate_2:$evaluate_3 " in submit

    # The upstream lookup answers with the collect run of the teacher and seed it was asked for.
    fake_commands(tmp_path / "bin", mlflow='printf "%s\\n" "$@"',
                  python='if [ "$3" = upstream ]; then echo "run-${6#model=}-${7#domain=}-${8#seed=}"; fi')
    collects = array_tasks(texts["01-collect.sbatch"], tmp_path)
    assert sorted(t.get("seed", "0") for t in collects) == ["0", "1", "2"]  # off-rl and sf-sft share a seed's
    names, evaluated = [], []
    for seed, chain in enumerate(chains):
        posttrains = array_tasks(texts[f"{chain}/02-posttrain.sbatch"], tmp_path)
        evaluations = array_tasks(texts[f"{chain}/03-evaluate.sbatch"], tmp_path)
        assert len(posttrains) == len(evaluations) == 3  # gt-sft, sf-sft, off-rl on math
        suffix = f"-seed{seed}" * bool(seed)  # seed 0 keeps today's names and parameters
        for posttrain, evaluation in zip(posttrains, evaluations):
            method = posttrain.get("method", "gt-sft")  # a task passes only what differs from the defaults
            name = f"{MODEL}-{method}-math{suffix}"
            assert posttrain.get("seed", "0") == evaluation.get("seed", "0") == str(seed)
            assert posttrain.get("register_as", "") == (name if seed else "")
            assert evaluation["model"] == f"models:/{name}@posttrained" and evaluation["reference"] == MODEL
            assert posttrain.get("data", "") == ("" if method == "gt-sft" else f"run-{MODEL}-math-{seed}")
            names.append(name)
            evaluated.append(evaluation["model"])
    assert len(set(names)) == len(set(evaluated)) == 9


@pytest.mark.parametrize("seeds", ["0,x", "1,1", "-1", "", " , "])
def test_bad_seeds_are_the_unlearning_studys_one_line_error_before_anything_is_written(tmp_path, seeds):
    from forgetting.cli import check

    message = f"seeds={seeds!r} is not a comma-separated list of distinct integers >= 0"
    with pytest.raises(UsageError) as unlearning:
        check("main", ["-P", f"seeds={seeds}"])
    with pytest.raises(UsageError) as forgetting:
        check("launch", ["-P", "study=forgetting", "-P", "preset=smoke", "-P", f"seeds={seeds}"])
    assert str(unlearning.value) == str(forgetting.value) == message
    with pytest.raises(UsageError, match=re.escape(message)):
        launch(quick_config(tmp_path, study="forgetting", preset="smoke", storage="", seeds=seeds, dry_run=False))
    assert not (tmp_path / "slurm").exists()


def test_analysis_makes_one_condition_of_a_methods_seeds_with_an_interval_over_them(store):
    """Seeds 0 and 1 of sf-sft, written as the grid writes them (a collect run per seed, seed 1 registered
    as <name>-seed1), are one row with n_seeds=2 and a t interval; gt-sft's one seed keeps its logged one."""
    from scipy import stats

    from forgetting.analysis import forgetting
    from forgetting.studies.forgetting import FORGETTING_PRESETS, forgetting_configs
    from forgetting.tracking import experiment_id

    s, client = Study(experiment_id("forgetting")), mlflow.MlflowClient()
    study = {"forgetting.study": "forgetting"}
    deltas = {("sf-sft", 0): -0.2, ("sf-sft", 1): -0.26, ("gt-sft", 0): -0.1}
    for seed in (0, 1):
        collects, posttrains, evaluations = forgetting_configs({"base": MODEL}, FORGETTING_PRESETS["smoke"], seed=seed)
        [collect] = collects
        data = s.run("collect", dataclasses.asdict(collect), {"n_sft": 4.0}, tags=study)
        for posttrain, evaluation in zip(posttrains, evaluations):
            if (posttrain.method, seed) not in deltas:
                continue
            params = dataclasses.asdict(posttrain) | {"data": "" if posttrain.method == "gt-sft" else data}
            run = s.run("posttrain", params, {"parameters": 1e8}, tags=study)
            version = s.register(posttrain.model_name(), run, study="forgetting", stage="posttrain",
                                 method=posttrain.method, domain="math", start="base", scale=1e8)
            client.set_registered_model_alias(posttrain.model_name(), "posttrained", version.version)
            lineage = {"method": posttrain.method, "domain": "math", "start": "base"}
            s.run("evaluate", evaluation.params() | lineage,
                  forgetting_metrics(deltas[(posttrain.method, seed)], 0.4), tags=study)

    frames, _, counts, _, _ = forgetting.collect("forgetting")
    assert counts == {"n_evaluated_models": 3}
    results = frames["forgetting_results"].set_index(["method", "benchmark"])
    assert len(results.loc["sf-sft"]) == 2  # arc_easy and gsm8k: one row each for both seeds
    row = results.loc[("sf-sft", "arc_easy")]
    assert row["n_seeds"] == 2 and row["seeds"] == "0,1" and row["delta"] == pytest.approx(-0.23)
    assert row["condition"].startswith(f"{MODEL}-sf-sft-math:")
    half = stats.t.ppf(0.975, 1) * np.std([-0.2, -0.26], ddof=1) / np.sqrt(2)
    assert (row["delta_ci_low"], row["delta_ci_high"]) == pytest.approx((-0.23 - half, -0.23 + half))
    single = results.loc[("gt-sft", "arc_easy")]
    assert single["n_seeds"] == 1 and (single["delta_ci_low"], single["delta_ci_high"]) == pytest.approx((-0.16, -0.04))
    by_condition = frames["condition_summary"].set_index("method")
    assert by_condition.loc["sf-sft", "n_seeds"] == 2 and by_condition.loc["sf-sft", "capability_change"] == \
        pytest.approx(-0.23)
