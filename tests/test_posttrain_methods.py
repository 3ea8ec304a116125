"""Each post-training method's defining part, on a tiny model: break it and its test fails.

π-Distill's joint objective and its teacher-student KL, SPIN's pair order and previous-round
reference, GRPO's use of the domain reward, DPO's chosen-over-rejected pairs, the data each SFT variant
learns from, and SDFT's privileged context reaching the teacher only.
"""
import pytest
import torch

from forgetting.posttrain import POSTTRAIN_METHODS
from forgetting.posttrain.data import MethodData
from forgetting.posttrain.stage import PosttrainConfig
from forgetting.rewards import REWARDS
from forgetting.rewards.domains import DOMAINS, Domain
from forgetting.rewards.environment import DomainEnv
from forgetting.rewards.spec import Reward

FAST = {"lr": 3e-3, "batch_size": 4, "max_length": 256, "max_new_tokens": 8, "num_generations": 4,
        "checkpoint_every": 100, "precision": "fp32"}


def math_rows(limit=4):
    return list(DomainEnv("math", "train", seed=0, limit=limit).rows)


@pytest.fixture
def tiny(tiny_checkpoint_with_tokenizer):
    from forgetting.models import load_model

    return load_model(str(tiny_checkpoint_with_tokenizer))


def snapshot(model):
    return [p.detach().clone() for p in model.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# π-Distill ------------------------------------------------------------------------------------------------

def test_pi_objective_trains_both_roles_through_their_own_terms():
    """Teacher terms reach only the teacher's logits, student terms only the student's; pi_beta=0 drops
    both KL terms and pi_alpha picks the role."""
    from forgetting.posttrain.pi_distill import pi_losses

    generator = torch.Generator().manual_seed(0)
    teacher_logits, student_logits = (torch.randn(6, 11, generator=generator) for _ in range(2))
    tokens, zero = torch.randint(0, 11, (6,), generator=generator), torch.zeros(6)

    def grads(alpha, beta, advantages=zero):
        t, s = teacher_logits.clone().requires_grad_(), student_logits.clone().requires_grad_()
        terms = pi_losses(t.log_softmax(-1), s.log_softmax(-1), tokens, advantages, alpha, beta)
        terms["loss"].backward()
        return t.grad.abs().sum().item(), s.grad.abs().sum().item(), terms

    defaults = PosttrainConfig()
    teacher, student, terms = grads(defaults.pi_alpha, defaults.pi_beta)
    assert teacher > 0 and student > 0, "the default run trains both roles"
    assert terms["student_teacher_kl"] > 0 and terms["teacher_student_kl"] > 0
    assert grads(defaults.pi_alpha, 0.0)[:2] == (0.0, 0.0), "with equal rewards only the KL terms move the roles"
    assert grads(1.0, defaults.pi_beta)[1] == 0.0, "the teacher's KL must hold the student fixed (sg)"
    assert grads(0.0, defaults.pi_beta)[0] == 0.0, "the student's KL must hold the teacher fixed (sg)"
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    assert grads(1.0, 0.0, advantages)[0] > 0 and grads(0.0, 0.0, advantages)[1] > 0, "the reward reaches both roles"


def test_pi_kl_weight_changes_the_models_gradient(tiny):
    from forgetting.posttrain.pi_distill import loss_step

    model, tokenizer = tiny
    prompts = ["Question: 2+2?\nAnswer:"] * 2
    hinted = [f"Reference solution (privileged): #### 4\n\n{p}" for p in prompts]
    responses = [" #### 4", " #### 5"]

    def gradient(pi_beta):
        config = PosttrainConfig(method="pi", pi_beta=pi_beta, **FAST)
        terms = loss_step(model, tokenizer, prompts, hinted, responses, [0.0, 0.0], config)
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]), terms

    with_kl, terms = gradient(PosttrainConfig().pi_beta)
    without_kl, _ = gradient(0.0)
    assert terms["student_teacher_kl"] > 0 and with_kl.abs().sum() > 0
    assert without_kl.abs().sum() == 0 and not torch.equal(with_kl, without_kl)


def probe_kl(model, tokenizer, rows) -> float:
    """KL(student ‖ teacher) per token on the references, teacher-forced: a fixed yardstick."""
    from forgetting.posttrain.pi_distill import completion_log_probs, encode_pairs, kl, with_hint

    prompts, references = [r["prompt"] for r in rows], [DOMAINS["math"].reference(r) for r in rows]
    with torch.no_grad():
        student, _, _ = completion_log_probs(model, *encode_pairs(tokenizer, prompts, references, 512, model.device))
        teacher, _, _ = completion_log_probs(model, *encode_pairs(
            tokenizer, [with_hint(p, r) for p, r in zip(prompts, references)], references, 512, model.device))
    return kl(student, teacher).mean().item()


def test_default_pi_run_brings_the_student_towards_the_teacher(store, tmp_path, tiny):
    """Default pi_alpha and pi_beta: the per-step student-vs-teacher KL is logged, and the KL on a fixed
    probe (references the run never sampled) falls."""
    import mlflow

    model, tokenizer = tiny
    rows = math_rows()
    before = probe_kl(model, tokenizer, rows)
    config = PosttrainConfig(method="pi", steps=10, **FAST)
    with mlflow.start_run() as run:
        metrics = POSTTRAIN_METHODS.get("pi").train(model, tokenizer, MethodData(DOMAINS["math"], rows, None),
                                                    config, tmp_path / "work")
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "student_teacher_kl")
    assert sorted(m.step for m in history) == list(range(1, 11))
    assert metrics["student_teacher_kl_end"] < metrics["student_teacher_kl_start"], metrics
    after = probe_kl(model, tokenizer, rows)
    print(f"probe KL {before:.5f} -> {after:.5f}; sampled {metrics['student_teacher_kl_start']:.5f} -> "
          f"{metrics['student_teacher_kl_end']:.5f}")
    assert after < 0.5 * before


# SPIN ----------------------------------------------------------------------------------------------------

def test_spin_prefers_the_reference_over_its_own_answer_against_the_previous_round(monkeypatch, store, tmp_path,
                                                                                    tiny):
    import mlflow
    import trl

    from forgetting.scoring.generation import generate

    model, tokenizer = tiny
    rounds = []

    class Recording(trl.DPOTrainer):
        def __init__(self, model, ref_model, train_dataset, **kwargs):
            rounds.append({"pairs": list(train_dataset), "reference": snapshot(ref_model), "policy": snapshot(model)})
            super().__init__(model=model, ref_model=ref_model, train_dataset=train_dataset, **kwargs)

    monkeypatch.setattr(trl, "DPOTrainer", Recording)
    data = MethodData(DOMAINS["math"], math_rows(), None)
    config = PosttrainConfig(method="self", steps=4, rounds=2, **FAST)
    start = snapshot(model)
    own, _ = generate(model, tokenizer, [row["prompt"] for row in data.rows], config.max_new_tokens,
                      config.batch_size, data.domain.stop_strings, config.precision)
    with mlflow.start_run():
        POSTTRAIN_METHODS.get("self").train(model, tokenizer, data, config, tmp_path / "work")
    assert len(rounds) == 2
    first = rounds[0]["pairs"]
    assert [p["chosen"] for p in first] == [data.domain.reference(row) for row in data.rows]
    assert [p["rejected"] for p in first] == own
    assert same(rounds[0]["reference"], start)
    assert same(rounds[1]["reference"], rounds[1]["policy"]), "round 2's reference is the weights round 1 left"
    assert not same(rounds[1]["reference"], start), "not the start model"


# GRPO ----------------------------------------------------------------------------------------------------

SCORED = []  # completions per call of the lowercase reward


def lowercase_share(completions, rows):
    SCORED.append(len(completions))
    return [sum(ch.islower() for ch in c) / max(len(c), 1) for c in completions]


def constant_reward(completions, rows):
    return [1.0] * len(completions)


def lowercase_reference(row) -> str:
    return "lowercase"


def test_grpo_update_follows_the_domain_reward(monkeypatch, store, tmp_path, tiny_checkpoint_with_tokenizer):
    """A reward the model can climb moves the weights; a constant reward (no advantage) leaves them."""
    import mlflow

    from forgetting.models import load_model

    SCORED.clear()
    for name, scorer in (("test-lowercase", "lowercase_share"), ("test-constant", "constant_reward")):
        monkeypatch.setitem(REWARDS._entries, name, Reward(f"{__name__}:{scorer}", f"{__name__}:lowercase_reference"))
    moved = {}
    for reward in ("test-lowercase", "test-constant"):
        model, tokenizer = load_model(str(tiny_checkpoint_with_tokenizer))
        start = snapshot(model)
        data = MethodData(Domain("toy", "gsm8k", ("gsm8k",), reward), math_rows(), None)
        config = PosttrainConfig(method="on-rl", steps=2, **FAST)
        with mlflow.start_run():
            POSTTRAIN_METHODS.get("on-rl").train(model, tokenizer, data, config, tmp_path / reward)
        moved[reward] = not same(start, snapshot(model))
    assert SCORED and sum(SCORED) >= 2 * FAST["batch_size"], "the domain reward scored every completion"
    assert moved == {"test-lowercase": True, "test-constant": False}


# DPO -----------------------------------------------------------------------------------------------------

def sequence_log_prob(model, tokenizer, prompts, completions):
    from forgetting.posttrain.pi_distill import completion_log_probs, encode_pairs

    with torch.no_grad():
        log_probs, rows, tokens = completion_log_probs(model, *encode_pairs(tokenizer, prompts, completions, 256,
                                                                            model.device))
        picked = log_probs.gather(-1, tokens[:, None]).squeeze(-1)
        return torch.zeros(len(prompts)).index_add_(0, rows.cpu(), picked.cpu())


def test_dpo_raises_the_chosen_over_the_rejected(store, tmp_path, tiny):
    import mlflow

    model, tokenizer = tiny
    pairs = [{"prompt": "Question: 2+2?\nAnswer:", "chosen": " #### 4", "rejected": " #### 5"},
             {"prompt": "Question: 3+3?\nAnswer:", "chosen": " #### 6", "rejected": " #### 7"}]

    def margin():
        prompts = [p["prompt"] for p in pairs]
        return (sequence_log_prob(model, tokenizer, prompts, [p["chosen"] for p in pairs])
                - sequence_log_prob(model, tokenizer, prompts, [p["rejected"] for p in pairs])).mean().item()

    before = margin()
    config = PosttrainConfig(method="off-rl", steps=6, **{**FAST, "batch_size": 2})
    with mlflow.start_run():
        POSTTRAIN_METHODS.get("off-rl").train(model, tokenizer, MethodData(DOMAINS["math"], [], pairs), config,
                                              tmp_path / "work")
    assert margin() > before + 1.0


# SFT variants --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["gt-sft", "sf-sft", "cf-sft"])
def test_each_sft_variant_learns_from_its_own_source(method, monkeypatch, tmp_path):
    import trl

    from forgetting.studies.forgetting import ForgettingPreset, teacher_of

    class Captured(Exception):
        pass

    def capture(train_dataset, **kwargs):
        raise Captured(list(train_dataset))

    monkeypatch.setattr(trl, "SFTTrainer", capture)
    rows = math_rows(2)
    teacher_rows = [{"prompt": row["prompt"], "completion": f" teacher {i} #### 1"} for i, row in enumerate(rows)]
    preset = ForgettingPreset(same_family_teacher="same-family", cross_family_teacher="other-family")
    collected = None if method == "gt-sft" else teacher_rows
    with pytest.raises(Captured) as captured:
        POSTTRAIN_METHODS.get(method).train(None, None, MethodData(DOMAINS["math"], rows, collected),
                                            PosttrainConfig(method=method, precision="fp32"), tmp_path)
    completions = [row["completion"] for row in captured.value.args[0]]
    if method == "gt-sft":
        assert completions == [DOMAINS["math"].reference(row) for row in rows]
        assert POSTTRAIN_METHODS.get(method).collected == "" and teacher_of(method, "start", preset) is None
    else:
        assert completions == [row["completion"] for row in teacher_rows]
        assert POSTTRAIN_METHODS.get(method).collected == "sft"  # the teacher's correct responses, not the references
        expected = {"sf-sft": "same-family", "cf-sft": "other-family"}[method]
        assert teacher_of(method, "start", preset) == expected


# SDFT ----------------------------------------------------------------------------------------------------

def test_sdft_gives_the_reference_to_the_teacher_only(monkeypatch, store, tmp_path, tiny):
    import mlflow
    from trl.experimental.sdft import SDFTTrainer

    model, tokenizer = tiny
    prepared = []
    original = SDFTTrainer._prepare_training_batch

    def recording(self, inputs):
        batch = original(self, inputs)
        prepared.append((tokenizer.batch_decode(batch["prompt_ids"], skip_special_tokens=True),
                         tokenizer.batch_decode(batch["teacher_input_ids"], skip_special_tokens=True), inputs))
        return batch

    monkeypatch.setattr(SDFTTrainer, "_prepare_training_batch", recording)
    data = MethodData(DOMAINS["math"], math_rows(), None)
    config = PosttrainConfig(method="sdft", steps=2, **{**FAST, "num_generations": 2, "max_length": 512})
    start = snapshot(model)
    with mlflow.start_run():
        metrics = POSTTRAIN_METHODS.get("sdft").train(model, tokenizer, data, config, tmp_path / "work")
    assert prepared and metrics["objective_steps"] == 2 and not same(start, snapshot(model))
    for students, teachers, inputs in prepared:
        for student, teacher, example in zip(students, teachers, inputs):
            reference = example["privileged_context"]
            assert reference.strip() and reference.strip() in teacher and reference.strip() not in student
            assert student.strip() == example["prompt"].strip() and example["prompt"].strip() in teacher
            assert "Reference solution (privileged):" in teacher and "(privileged)" not in student
