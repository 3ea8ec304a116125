"""Every training and scoring loop feeds the model on its own device.

A forward pre-hook on the model checks every tensor it is called with. Data the test hands in (or
that a loop builds on the CPU) is wrapped as ``Foreign``: a CPU tensor standing for one on another
device, which becomes a plain tensor only through ``.to(...)``. A loop that forgets to move a batch
therefore fails here on a CPU, where "the model's device" and "the CPU" are the same; with a GPU the
models sit on ``current().device`` and the hook also compares devices.
"""
import contextlib
import copy
import math
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

from forgetting.attribution.examples import Encoded, encode_examples, example_losses
from forgetting.attribution.gradients import per_example_dot
from forgetting.attribution.methods import Budget, tracin, untrac
from forgetting.device import current
from forgetting.models.bundled import bundled_model_dir
from forgetting.models.tiny import tiny_llama
from forgetting.pruning import score_neurons
from forgetting.pruning import score_weights
from forgetting.pruning.weights import select_weights


class Foreign(torch.Tensor):
    """A CPU tensor that stands for one on another device: ops keep it ``Foreign``; ``.to`` gives a plain tensor."""

    def to(self, *args, **kwargs):
        return torch.Tensor.to(self.as_subclass(torch.Tensor), *args, **kwargs)


def foreign(batch):
    """``batch`` (a tensor, or a mapping holding tensors) with every tensor ``Foreign``."""
    if isinstance(batch, torch.Tensor):
        return batch.as_subclass(Foreign)
    return {key: foreign(value) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


@contextlib.contextmanager
def fed_on_device(*models):
    """Fail any forward pass of ``models`` (or their deep copies) given a tensor not on the model's device;
    yields the list of checked calls, so a test can tell the hook ran."""
    calls = []

    def check(module, args, kwargs):
        name, device = type(module).__name__, next(module.parameters()).device
        for value in [*args, *kwargs.values()]:
            if isinstance(value, torch.Tensor):
                assert not isinstance(value, Foreign), f"{name} was fed a batch not moved to its device"
                assert value.device == device, f"{name} on {device} was fed a tensor on {value.device}"
        calls.append(name)

    handles = [model.register_forward_pre_hook(check, with_kwargs=True) for model in models]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def lm_batches(count=2, batch_size=2, length=10, vocab=256):
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        ids = torch.randint(0, vocab, (batch_size, length), generator=generator)
        batches.append(foreign({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}))
    return batches


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(bundled_model_dir())


@pytest.fixture
def model():
    return tiny_llama().to(current().device)


@pytest.fixture
def language_model(tokenizer):
    return tiny_llama(vocab_size=len(tokenizer)).to(current().device)


def test_the_hook_catches_a_batch_left_where_it_was(model):
    batch = lm_batches(count=1)[0]
    with fed_on_device(model), pytest.raises(AssertionError, match="not moved to its device"):
        model(**batch)
    with fed_on_device(model) as calls:
        model(**{key: value.to(model.device) for key, value in batch.items()})
    assert calls == ["LlamaForCausalLM"]


@pytest.mark.parametrize("method, options", [("attribution", {}), ("tuneprune", {"steps": 2, "lr": 1e-3}),
                                             ("random", {})])
def test_neuron_scoring_runs_on_the_models_device(model, method, options):
    with fed_on_device(model) as calls:
        result = score_neurons(method, model, lm_batches(), **options)
    assert len(calls) == (0 if method == "random" else 2)
    assert all(score.device == model.device for score in result.scores)
    assert result.model.device == model.device


def test_weight_scores_and_masks_stay_on_the_models_device(model):
    for method in ("magnitude", "random"):
        masks = select_weights(score_weights(method, model), 0.5)
        assert all(mask.device == model.device for mask in masks.values())


def test_tracin_gradients_and_scores_are_on_the_models_device(language_model, tokenizer):
    rows = [{"source": "a", "text": "The capital of France is Paris."}, {"source": "b", "text": "def f(x): return x"}]
    train, test = (Encoded(*(foreign(tensor) for tensor in (data.input_ids, data.attention_mask, data.labels)))
                   for data in (encode_examples(tokenizer, rows),
                                encode_examples(tokenizer, [{"prompt": "The capital of", "completion": " Paris"}])))
    with fed_on_device(language_model) as calls:
        dots = per_example_dot(language_model, train, test, 2, "mlp")
        assert dots.device == language_model.device and dots.shape == (2,)
        checkpoint = {key: value.clone() for key, value in language_model.state_dict().items()}
        result = tracin(language_model, train, ["a", "b"], test, batch_size=2, lr=0.1, checkpoints=[(checkpoint, 0.1)],
                        parameters="mlp")
        untrac(language_model, train, ["a", "b"], test, Budget(lr=1e-3, steps=1, batch_size=2))
        assert example_losses(language_model, test).device == language_model.device
    assert calls and set(result.per_source["source"]) == {"a", "b"}


def tiny_classifier(layers=2):
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2, head_dim=32, num_labels=2, pad_token_id=0)
    torch.manual_seed(0)
    return LlamaForSequenceClassification(config).to(current().device).eval()


def test_distillation_steps_feed_teacher_and_student_on_their_device():
    from forgetting.training.distill import distill, student_from_teacher

    teacher = tiny_classifier()
    student = student_from_teacher(teacher, 1)
    assert student.device == teacher.device
    ids = torch.randint(1, 64, (4, 8), generator=torch.Generator().manual_seed(0))
    data = [foreign({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 0, 1])})]
    with fed_on_device(teacher, student) as calls:
        losses = distill(student, teacher, lambda: data, steps=2, lr=1e-3, alpha=0.5, temperature=2.0)
    assert len(losses) == 2 and calls.count("LlamaForSequenceClassification") == 4


def test_a_finetune_trial_trains_its_copy_on_the_base_models_device(language_model, tokenizer, monkeypatch):
    from forgetting.training import finetune

    built = finetune.answer_batches
    monkeypatch.setattr(finetune, "answer_batches", lambda *args: map(foreign, built(*args)))
    rows = [{"prompt": "2 + 2 =", "choices": [" 3", " 4"], "label": 1},
            {"prompt": "The sky is", "choices": [" blue", " green"], "label": 0}]
    trial = copy.deepcopy(language_model)  # what each Optuna trial trains
    with fed_on_device(trial, trial.get_decoder()) as calls:  # answer_loss feeds the decoder itself
        loss = finetune.finetune_on_answers(trial, tokenizer, rows, lr=1e-3, batch_size=2)
    assert calls and math.isfinite(loss) and trial.device == language_model.device


def test_classifier_prediction_feeds_the_model_on_its_device(monkeypatch):
    from forgetting.scoring import classification as classifier

    model = tiny_classifier()
    ids = torch.tensor([[5, 6, 7], [8, 9, 0]])
    batch = foreign({"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([0, 1])})
    monkeypatch.setattr(classifier, "classification_batches", lambda *args, **kwargs: iter([batch]))
    with fed_on_device(model) as calls:
        predictions = classifier.predict(model, None, [{}, {}])
    assert len(predictions) == 2 and all(isinstance(p, int) for p in predictions) and calls


def test_pi_distill_samples_and_steps_on_the_models_device(language_model, tokenizer):
    from forgetting.posttrain.pi_distill import encode_pairs, loss_step, sample_responses

    prompts, references = ["Question: 2+2?\nAnswer:"], [" #### 4"]
    hinted = [f"Reference: {references[0]}\n\n{prompts[0]}"]
    config = SimpleNamespace(precision="auto", max_length=64, pi_alpha=0.5, pi_beta=1.0)
    assert all(t.device == language_model.device for t in encode_pairs(tokenizer, prompts, references, 64,
                                                                       language_model.device))
    with fed_on_device(language_model) as calls:
        responses = sample_responses(language_model, tokenizer, hinted, 3, ())
        terms = loss_step(language_model, tokenizer, prompts, hinted, responses, [0.0], config)
    assert calls and terms["loss"].device == language_model.device and torch.isfinite(terms["loss"])
    assert any(parameter.grad is not None for parameter in language_model.parameters())


def test_trl_arguments_follow_the_device_policy(tmp_path):
    from trl import SFTConfig

    from forgetting.posttrain.trl_methods import training_arguments

    device = current().device
    for precision in ("fp32", "bf16-autocast", "auto"):
        config = SimpleNamespace(lr=1e-4, batch_size=2, checkpoint_every=10, seed=0, precision=precision)
        args = training_arguments(SFTConfig, config, tmp_path, 4)
        assert args.use_cpu == (device.type == "cpu") and args.device == device
        assert args.bf16 == (precision == "bf16-autocast" or (precision == "auto" and device.type == "cuda"))
        assert args.n_gpu == (0 if device.type == "cpu" else 1)


def test_only_rank_zero_logs_trainer_metrics(monkeypatch):
    import mlflow

    from forgetting.posttrain.trl_methods import MlflowMetrics

    logged = []
    monkeypatch.setattr(mlflow, "log_metrics", lambda metrics, step: logged.append(metrics))
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        callback = MlflowMetrics()
        callback.on_log(None, SimpleNamespace(global_step=1), None, logs={"loss": 1.5})
        assert callback.history == [{"loss": 1.5}]
    assert logged == [{"loss": 1.5}]
