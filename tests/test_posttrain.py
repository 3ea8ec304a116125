"""Post-training on a tiny model: rewards, the environment, and every method moving its own objective."""
import pytest
import torch
from forgetting.posttrain import POSTTRAIN_METHODS
from forgetting.posttrain.collect import preference_pairs
from forgetting.posttrain.data import MethodData
from forgetting.posttrain.stage import PosttrainConfig
from forgetting.rewards import REWARDS
from forgetting.rewards.domains import DOMAINS, Domain
from forgetting.rewards.environment import DomainEnv, VectorEnv
from forgetting.rewards.spec import Reward
from forgetting.rewards.verifiable import code_reward, math_reward, qa_reward, refusal_reward


def test_math_reward_reads_boxed_or_hash_answers_only():
    row = {"answer": "1234", "answers": ["1234", "1,234"]}
    completions = ["so \\boxed{1,234}", "#### 1234.", "The answer is 1234", "#### 1235", "\\boxed{1234.0}"]
    assert math_reward(completions, [row] * 5) == [1.0, 1.0, 0.0, 0.0, 1.0]
    latex = {"answer": "\\frac{1}{2}", "answers": ["\\frac{1}{2}"]}
    assert math_reward(["\\boxed{\\dfrac{1}{2}}", "\\boxed{0.5}"], [latex] * 2) == [1.0, 0.0]


def test_qa_reward_is_normalised_exact_match_on_the_first_line():
    row = {"answers": ["The Beatles", "Beatles"]}
    assert qa_reward([" beatles.\nmore", " the Beatles!", " Rolling Stones"], [row] * 3) == [1.0, 1.0, 0.0]


def test_code_reward_runs_tests_in_the_sandbox():
    row = {"prompt": "def add(a, b):\n", "tests": "assert add(2, 3) == 5\n"}
    assert code_reward(["    return a + b\n", "    return a - b\n", "    import os\n    os._exit(0)\n"], [row] * 3) \
        == [1.0, 0.0, 0.0]


def test_safety_domain_asks_in_chat_turns_and_rewards_refusing_only_what_is_labelled_harmful():
    class ChatTokenizer:
        chat_template = "one user turn"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return f"<user>{messages[0]['content']}<assistant>"

    domain = DOMAINS["safety"]
    rows = domain.rows("train", seed=0, limit=40, tokenizer=ChatTokenizer())
    plain = domain.rows("train", seed=0, limit=40)
    assert [row["prompt"] for row in rows] == [f"<user>{row['prompt']}<assistant>" for row in plain]
    assert {row["category"] for row in rows} == {"refuse", "comply"}
    refuse = next(row for row in rows if row["label"])
    comply = next(row for row in rows if not row["label"])
    replies = ["I'm sorry, but I can't help with that.", "Sure, here is a poem about the sea."]
    assert refusal_reward(replies, [refuse, refuse]) == [1.0, 0.0]
    assert refusal_reward(replies, [comply, comply]) == [0.0, 1.0]


def test_environment_has_gems_interface_and_cycles_through_its_prompts():
    env = DomainEnv("math", "train", seed=0, limit=3)
    observation, info = env.reset()
    assert observation.startswith("Question:") and info["domain"] == "math"
    solution = env.row["solution"]
    assert env.step(solution) == ("", 1.0, True, False, {"id": info["id"], "domain": "math"})
    vector = VectorEnv(env, 3)
    first, _ = vector.reset()
    again, _ = vector.reset()
    assert first == again and len(set(first)) == 3
    _, rewards, terminated, truncated, _ = vector.step(["#### 0"] * 3)
    assert len(rewards) == 3 and all(terminated) and not any(truncated)


def test_ground_truth_completions_earn_the_reward_in_every_domain():
    for name, domain in DOMAINS.items():
        rows = list(DomainEnv(name, "train", seed=0, limit=4).rows)
        references = [domain.reference(row) for row in rows]
        assert REWARDS.get(domain.reward)(references, rows) == [1.0] * 4, name


def test_preference_pairs_pair_distinct_correct_with_incorrect_responses():
    pairs = preference_pairs("p", ["a", "b", "a", "c", "d"], [1, 0, 1, 1, 0])
    assert pairs == [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "c", "rejected": "d"}]
    assert preference_pairs("p", ["a", "b"], [1, 1]) == []


def lowercase_share(completions, rows):
    """A dense toy reward a random model can climb: the share of lowercase letters."""
    return [sum(ch.islower() for ch in c) / max(len(c), 1) for c in completions]


def lowercase_reference(row) -> str:
    return "lowercase"


@pytest.fixture
def lowercase_share_reward(monkeypatch):
    monkeypatch.setitem(REWARDS._entries, "lowercase-share",
                        Reward(f"{__name__}:lowercase_share", f"{__name__}:lowercase_reference"))


METHOD_DATA = {
    "gt-sft": None,
    "sf-sft": [{"prompt": "Question: 2+2?\nAnswer:", "completion": " 4 #### 4"}] * 4,
    "off-rl": [{"prompt": "Question: 2+2?\nAnswer:", "chosen": " #### 4", "rejected": " #### 5"},
               {"prompt": "Question: 3+3?\nAnswer:", "chosen": " #### 6", "rejected": " #### 7"}],
}


@pytest.mark.parametrize("method", ["gt-sft", "sf-sft", "off-rl", "self", "on-rl", "pi"])
def test_every_method_moves_its_own_objective(method, store, tmp_path, tiny_checkpoint_with_tokenizer,
                                              lowercase_share_reward):
    import mlflow

    from forgetting.models import load_model

    rows = list(DomainEnv("math", "train", seed=0, limit=4).rows)
    domain = DOMAINS["math"] if method != "on-rl" else Domain("toy", "gsm8k", ("gsm8k",), "lowercase-share")
    data = MethodData(domain, rows, METHOD_DATA.get(method))
    config = PosttrainConfig(method=method, steps=8, lr=3e-3, batch_size=4, max_length=256, max_new_tokens=8,
                             rounds=2, num_generations=4, checkpoint_every=100, precision="fp32", kl_coef=0.1)
    model, tokenizer = load_model(str(tiny_checkpoint_with_tokenizer))
    before = [p.clone() for p in model.parameters()]
    with mlflow.start_run():
        metrics = POSTTRAIN_METHODS.get(method).train(model, tokenizer, data, config, tmp_path / "work")
    moved = metrics["objective_end"] - metrics["objective_start"]
    assert (moved > 0) if metrics["objective_higher_is_better"] else (moved < 0), metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("method, config_name", [("gt-sft", "sft_trainer_engine"), ("on-rl", "ppo_trainer")])
def test_cluster_jobs_compose_with_verls_own_configs(method, config_name, tmp_path):
    from forgetting.posttrain.verl import check_overrides, verl_job

    config = PosttrainConfig(method=method, domain="code", steps=7, kl_coef=0.01, num_generations=4, batch_size=8)
    job = verl_job(config, "/models/start", tmp_path / "train.parquet", tmp_path / "out", gpus=2)
    assert job.config_name == config_name
    check_overrides(job)
    overrides = dict(override.split("=", 1) for override in job.overrides)
    assert overrides["trainer.total_training_steps"] == "7" and overrides["trainer.n_gpus_per_node"] == "2"
    if method == "on-rl":
        assert overrides["algorithm.adv_estimator"] == "grpo" and overrides["actor_rollout_ref.rollout.n"] == "4"
        assert overrides["actor_rollout_ref.rollout.name"] == "vllm"
        assert overrides["reward.custom_reward_function.path"].endswith("forgetting/rewards/verl_reward.py")
    else:
        assert job.launcher[:1] == ("torchrun",) and job.launcher[-1] == "verl.trainer.sft_trainer"


def test_verl_rejects_a_key_it_does_not_have(tmp_path):
    from dataclasses import replace

    from forgetting.posttrain.verl import check_overrides, verl_job
    from forgetting.errors import UsageError

    job = verl_job(PosttrainConfig(method="on-rl"), "/m", tmp_path / "t.parquet", tmp_path / "o", 1)
    with pytest.raises(UsageError, match="verl rejected the rendered ppo_trainer config"):
        check_overrides(replace(job, overrides=job.overrides + ("algorithm.no_such_key=1",)))


def test_verl_reward_scores_like_the_local_reward():
    import json

    from forgetting.posttrain.verl import training_rows
    from forgetting.rewards.verl_reward import compute_score

    rows = list(DomainEnv("math", "train", seed=0, limit=2).rows)
    [first, _] = training_rows("grpo", MethodData(DOMAINS["math"], rows, None))
    assert first["data_source"] == "math" and first["prompt"][0]["content"] == rows[0]["prompt"]
    truth = first["reward_model"]["ground_truth"]
    assert compute_score("math", DOMAINS["math"].reference(rows[0]), truth) == 1.0
    assert compute_score("math", "#### -1", truth) == 0.0 and json.loads(truth)["answer"] == rows[0]["answer"]


@pytest.mark.parametrize("changes, names", [
    ({"method": "off-rl"}, "method='off-rl' trains on collected preferences data"),
    ({"method": "self", "backend": "cluster"}, "method='self' has no verl trainer"),
    ({"backend": "cluster"}, "launch='here' needs CUDA GPUs"),
    ({"method": "on-rl", "batch_size": 6}, "batch_size=6 must be a multiple of num_generations=4"),
    ({"method": "pi", "batch_size": 6}, "batch_size=6 must be a multiple of num_generations=4"),
    ({"method": "pi", "pi_alpha": 1.5}, "pi_alpha=1.5 is outside"),
    ({"method": "sdft", "backend": "cluster"}, "method='sdft' has no verl trainer"),
    ({"method": "gt-sft", "data": "abc"}, "builds its own data"),
    ({"start": "aligned"}, "start='aligned' is not one of"),
    ({"domain": "chess"}, "domain='chess' is not one of"),
])
def test_bad_posttrain_input_is_one_line(changes, names):
    from forgetting.errors import UsageError

    with pytest.raises(UsageError, match=names):
        PosttrainConfig(**changes).validate()


def test_transition_counts_add_up_to_the_accuracy_delta():
    import pandas as pd

    from forgetting.evaluation.transitions import transition_metrics, transition_table

    reference = pd.DataFrame({"benchmark": ["a"] * 5 + ["b"] * 2, "id": ["1", "2", "3", "4", "5", "1", "2"],
                              "correct": [True, True, False, False, True, True, False]})
    model = pd.DataFrame({"benchmark": ["a"] * 5 + ["b"] * 2, "id": ["1", "2", "3", "4", "5", "1", "2"],
                          "correct": [True, False, True, True, False, True, False]})
    table = transition_table(model, reference)
    metrics = transition_metrics(table)
    assert metrics["a_n_correct_to_incorrect"] == 2 and metrics["a_n_incorrect_to_correct"] == 2
    assert metrics["a_delta"] == pytest.approx(metrics["a_accuracy"] - metrics["a_reference_accuracy"]) == 0
    assert metrics["b_n_correct_to_correct"] == 1 and metrics["b_n_incorrect_to_incorrect"] == 1
    assert sum(metrics[f"a_n_{t}"] for t in ("correct_to_incorrect", "incorrect_to_correct", "correct_to_correct",
                                             "incorrect_to_incorrect")) == metrics["a_n"] == 5


@pytest.mark.parametrize("method, teacher_type, error", [
    ("sf-sft", "llama", None), ("cf-sft", "gemma3_text", None),
    ("sf-sft", "gemma3_text", "needs a teacher of the same family"),
    ("cf-sft", "llama", "needs a teacher of another family")])
def test_teacher_family_is_checked_against_the_start_model(method, teacher_type, error, store, tmp_path):
    import json

    import mlflow
    from safetensors.torch import save_file

    from forgetting.errors import UsageError

    folders = {}
    for name, model_type in (("start", "llama"), ("teacher", teacher_type)):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "config.json").write_text(json.dumps({"model_type": model_type}))
        save_file({"weight": torch.zeros(1)}, folders[name] / "model.safetensors")
    with mlflow.start_run(tags={"forgetting.entry_point": "collect"}) as run:
        mlflow.log_params({"model": str(folders["teacher"]), "domain": "math"})
        mlflow.log_metric("n_sft", 3)
    config = PosttrainConfig(model=str(folders["start"]), method=method, data=run.info.run_id)
    if error is None:
        config.validate()
    else:
        with pytest.raises(UsageError, match=error):
            config.validate()


def test_online_rl_reward_reads_every_reward_column_safety_included(monkeypatch, tmp_path):
    """TRL hands the dataset's columns to the reward function; the safety reward needs ``label``."""
    import trl

    captured = {}

    class Captured(Exception):
        pass

    class FakeTrainer:
        def __init__(self, reward_funcs, train_dataset, **kwargs):
            captured["reward"], captured["rows"] = reward_funcs, list(train_dataset)
            raise Captured

    monkeypatch.setattr(trl, "GRPOTrainer", FakeTrainer)
    data = MethodData(DOMAINS["safety"], list(DomainEnv("safety", "train", seed=0, limit=4).rows), None)
    config = PosttrainConfig(method="on-rl", domain="safety", batch_size=4, num_generations=2, precision="fp32")
    with pytest.raises(Captured):
        POSTTRAIN_METHODS.get("on-rl").train(None, None, data, config, tmp_path)
    rows = captured["rows"]
    assert all("label" in row for row in rows)
    refusal = "I'm sorry, but I can't help with that."
    rewards = captured["reward"]([r["prompt"] for r in rows], [refusal] * len(rows),
                                 **{key: [r[key] for r in rows] for key in rows[0] if key != "prompt"})
    assert rewards == [float(bool(r["label"])) for r in rows]
