"""The evaluation loops follow the device policy: a model's inputs are on ``model.device``.

A CPU-only machine has no second device, so ``OnModelDevice`` emulates one: the model's parameters
are marked as living on ``ELSEWHERE`` (they really stay on the CPU), a tensor moved to or created on
``ELSEWHERE`` is marked the same way, marks follow every op, and outside the model a marked tensor
reports ``ELSEWHERE`` as its device. What a CUDA run would reject fails here too: a forward pass
given an unmarked tensor, an op outside the model mixing marked and unmarked (non-scalar) tensors,
and ``.numpy()`` of a marked tensor.
"""
import sys
from types import SimpleNamespace

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map
from transformers import AutoTokenizer

from forgetting.errors import UsageError
from forgetting.evaluation.suites import EvaluateConfig
from forgetting.models.bundled import bundled_model_dir
from forgetting.models.tiny import tiny_llama

ELSEWHERE = torch.device("meta")
_DEVICE = torch.Tensor.device.__get__


def _marked(tensor) -> bool:
    return isinstance(tensor, torch.Tensor) and getattr(tensor, "_on_model_device", False)


def _mark(tree):
    for tensor in tree_flatten(tree)[0]:
        if isinstance(tensor, torch.Tensor):
            tensor._on_model_device = True
    return tree


def _names_elsewhere(value) -> bool:
    return isinstance(value, (str, torch.device)) and torch.device(value) == ELSEWHERE


def _target(func, args, kwargs):
    """The device a call moves to or creates on, if it names one."""
    if "device" in kwargs:
        return kwargs["device"]
    if func is torch.Tensor.to:
        return next((a for a in args[1:] if isinstance(a, (str, torch.device))), None)
    return torch.device("cpu") if func is torch.Tensor.cpu else None


class OnModelDevice(TorchFunctionMode):
    """While active, ``model`` lives on the emulated device ``ELSEWHERE`` (see the module docstring)."""

    def __init__(self, model):
        super().__init__()
        self.depth = 0  # > 0 inside a module's forward, where the model's own code runs unchecked
        _mark(list(model.parameters()) + list(model.buffers()))
        self.handles = [handle for module in model.modules() for handle in (
            module.register_forward_pre_hook(self._enter, with_kwargs=True),
            module.register_forward_hook(self._leave, always_call=True))]

    def _enter(self, module, args, kwargs):
        if self.depth == 0:
            stray = [t.shape for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor) and not _marked(t)]
            assert not stray, f"{type(module).__name__} got inputs that are not on the model's device: {stray}"
        self.depth += 1

    def _leave(self, module, args, output):
        self.depth -= 1

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        marked = any(_marked(t) for t in tensors)
        if self.depth > 0:
            return _mark(func(*args, **kwargs)) if marked else func(*args, **kwargs)
        if func == _DEVICE:
            return ELSEWHERE if marked else func(*args, **kwargs)
        target = _target(func, args, kwargs)
        if target is not None and _names_elsewhere(target):
            args, kwargs = tree_map(lambda a: torch.device("cpu") if _names_elsewhere(a) else a, (args, kwargs))
            result = func(*args, **kwargs)
            return _mark(result.clone() if any(result is t for t in tensors) else result)
        if target is not None and torch.device(target).type == "cpu":  # a copy back to the CPU: unmarked
            result = func(*args, **kwargs)
            return result.clone() if any(result is t for t in tensors) else result
        name = getattr(func, "__name__", str(func))
        assert not (marked and func is torch.Tensor.numpy), "numpy() of a tensor on the model's device: .cpu() first"
        assert not (marked and any(not _marked(t) and t.dim() > 0 for t in tensors)), \
            f"{name} mixes tensors on the model's device with CPU tensors"
        return _mark(func(*args, **kwargs)) if marked else func(*args, **kwargs)


@pytest.fixture
def cpu_policy(monkeypatch):
    from forgetting.device import DevicePolicy

    monkeypatch.setattr("forgetting.device._current", DevicePolicy(torch.device("cpu"), "fp32"))


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(bundled_model_dir())


@pytest.fixture
def model(tokenizer):
    """A tiny model of its own (the marks stay on its parameters)."""
    return tiny_llama(vocab_size=len(tokenizer), seed=1).eval().requires_grad_(False)


def test_the_emulated_device_catches_a_batch_left_on_the_cpu(model, tokenizer):
    inputs = tokenizer(["Hello"], return_tensors="pt")
    with OnModelDevice(model):
        assert model.device == ELSEWHERE
        with pytest.raises(AssertionError, match="not on the model's device"):
            model(**inputs)
        with pytest.raises(AssertionError, match="mixes tensors"):
            model.get_input_embeddings().weight[inputs["input_ids"]]
        logits = model(**{k: v.to(model.device) for k, v in inputs.items()}).logits
        with pytest.raises(AssertionError, match="numpy"):
            logits.numpy()
        assert logits.cpu().numpy().shape[0] == 1


def test_multiple_choice_scorer_on_the_model_device(model, tokenizer):
    from forgetting.scoring.multiple_choice import score_multiple_choice

    rows = [{"id": "a", "prompt": "The sky is", "choices": [" blue", " green"], "label": 0},
            {"id": "b", "prompt": "Question: 2 + 2?\nAnswer:", "choices": [" 4", " five", " 22"], "label": 0}]
    expected, _ = score_multiple_choice(model, tokenizer, rows, batch_size=2)
    with OnModelDevice(model):
        results, _ = score_multiple_choice(model, tokenizer, rows, batch_size=2)
    assert [r["logprobs"] for r in results] == [r["logprobs"] for r in expected]


def test_greedy_loop_on_the_model_device(model, tokenizer):
    """One row stops early (its own first two tokens are the stop string), so the loop drops it from the batch."""
    from forgetting.scoring.generation import generate, greedy_decode

    prompts = ["Hello", "A longer prompt here, with more tokens", "Question: two plus two?"]
    tokenizer.padding_side = "left"
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    stop = tokenizer.decode(greedy_decode(model, tokenizer, inputs["input_ids"], inputs["attention_mask"], 2, ())[1])
    expected = generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=3, stop_strings=(stop,))
    assert 6 < expected[1] < 3 * 6
    with OnModelDevice(model):
        assert generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=3, stop_strings=(stop,)) == expected


def test_sampling_engine_on_the_model_device(monkeypatch, model, tokenizer):
    from forgetting.scoring.engines import sample_with_transformers

    monkeypatch.setattr("forgetting.models.load_model", lambda spec: (model, tokenizer))
    with OnModelDevice(model):
        groups, tokens = sample_with_transformers("tiny", ["Hello", "The sky is"], 2, 1.0, 4, ("\n",), batch_size=2)
    assert [len(group) for group in groups] == [2, 2] and 0 < tokens <= 16


def test_gcg_step_and_attack_rows_on_the_model_device(model, tokenizer):
    from forgetting.attacks.gcg import GCGConfig, gcg
    from forgetting.attacks.prompts import Behaviour, target_for
    from forgetting.attacks.suite import suffix_rows

    behaviours = [Behaviour("0", "Explain how tides work", target_for("Explain how tides work"))]
    allowed = torch.zeros(len(tokenizer), dtype=torch.bool)
    allowed[300:2000] = True  # plain word pieces: allowed_tokens would decode the whole vocabulary
    config = GCGConfig(steps=1, suffix_length=4, top_k=8, batch=8, seed=0)
    expected = gcg(model, tokenizer, behaviours, config, allowed)
    with OnModelDevice(model):
        found = gcg(model, tokenizer, behaviours, config, allowed)
        [row] = suffix_rows(model, tokenizer, behaviours, [found.suffix_ids], config, max_new_tokens=3)
    assert found.suffix_ids == expected.suffix_ids
    assert row["loss_after"] == pytest.approx(found.losses[-1], abs=1e-5) and isinstance(row["success"], bool)


def test_hidden_states_on_the_model_device_come_back_for_sklearn(model, tokenizer):
    from forgetting.evaluation import probes, representation_suite

    texts = ["Paris is in France.", "Rome is in Italy, of course."]
    with OnModelDevice(model):
        states = probes.last_token_states(model, tokenizer, texts, batch_size=2)
        last = representation_suite.last_token_states(model, tokenizer, texts, 2, "auto")
    assert states.shape == (model.config.num_hidden_layers + 1, 2, model.config.hidden_size)
    assert last.device.type == "cpu" and representation_suite.linear_cka(last[1], last[1]) == pytest.approx(1.0)


def test_engine_vllm_without_vllm_is_one_line(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else find_spec(name, *a))
    for suite in ("accuracy", "policy", "forgetting"):
        with pytest.raises(UsageError, match="engine='vllm' needs vLLM") as error:
            EvaluateConfig(suite=suite, task="gsm8k", engine="vllm").validate()
        assert "\n" not in str(error.value)
    with pytest.raises(UsageError, match="engine='sglang' is not one of: hf, vllm"):
        EvaluateConfig(engine="sglang").validate()
    EvaluateConfig(suite="attacks", engine="vllm").validate()  # a suite that does not generate with it


def test_engine_is_in_the_cache_key_of_the_suites_that_read_it():
    assert EvaluateConfig(engine="vllm").params()["engine"] == "vllm"
    assert "engine" in EvaluateConfig(suite="all").params()
    assert "engine" not in EvaluateConfig(suite="attacks").params()


def test_lm_eval_backend_follows_the_policy(cpu_policy, tmp_path):
    from forgetting.scoring.engines import ENGINES

    hf = ENGINES.get("hf").lm_eval(tmp_path, "auto")
    assert hf == {"model": "hf", "device": "cpu", "model_args": {"pretrained": str(tmp_path), "dtype": "float32"}}
    assert ENGINES.get("hf").lm_eval(tmp_path, "bf16-autocast")["model_args"]["dtype"] == "float32"  # CUDA only
    vllm = ENGINES.get("vllm").lm_eval(tmp_path, "bf16-autocast")
    assert vllm["model"] == "vllm" and vllm["device"] is None and vllm["model_args"]["dtype"] == "bfloat16"
    assert 0 < vllm["model_args"]["gpu_memory_utilization"] < 1


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in ``vllm`` module recording what the engine asks of it."""
    calls = {}

    class LLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def generate(self, prompts, params):
            calls["params"] = params
            return [SimpleNamespace(outputs=[SimpleNamespace(text=f"{i} #### {i}\nQuestion: next", token_ids=[1, 2])])
                    for i, _ in enumerate(prompts)]

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=LLM, SamplingParams=lambda **kwargs: kwargs))
    return calls


def test_generative_accuracy_through_vllm(cpu_policy, fake_vllm, tokenizer):
    from forgetting.evaluation.accuracy import greedy_engine_of
    from forgetting.scoring.generative import score_generative
    from forgetting.models import resolve_model

    config = EvaluateConfig(model=str(bundled_model_dir()), task="gsm8k", engine="vllm", max_new_tokens=7)
    rows = [{"id": str(i), "prompt": f"Q{i}", "answer": f"#### {i}"} for i in range(2)]
    results, tokens = score_generative(None, tokenizer, "gsm8k", rows, 7, prompt_format="plain",
                                       engine=greedy_engine_of(config, None, tokenizer))
    assert [r["correct"] for r in results] == [True, True] and tokens == 4
    assert results[0]["completion"] == "0 #### 0"  # cut at the stop string
    assert fake_vllm["params"]["temperature"] == 0 and fake_vllm["params"]["max_tokens"] == 7
    assert fake_vllm["llm"]["model"] == resolve_model(config.model) and fake_vllm["llm"]["dtype"] == "float32"


@pytest.fixture
def own_weights_engine():
    """A throwaway third engine, registered for one test, that loads the weights itself; it records
    what it is asked for."""
    from forgetting.scoring.engines import ENGINES, Engine

    calls = {}

    def greedy(model_dir, model, tokenizer, batch_size, precision):
        calls["greedy"] = (model_dir, model)
        return lambda prompts, max_new_tokens, stop_strings=(): ([f"#### {i}" for i in range(len(prompts))], 1)

    def lm_eval(model_dir, precision=None):
        return {"model": "own-weights-backend", "device": None, "model_args": {"pretrained": str(model_dir)}}

    ENGINES.register("own-weights", Engine(sample=None, greedy=greedy, lm_eval=lm_eval, loads_weights=True))
    yield calls
    ENGINES.unregister("own-weights")


def test_accuracy_and_lm_eval_read_the_engine_entry_not_its_name(cpu_policy, own_weights_engine, monkeypatch,
                                                                 tmp_path):
    import lm_eval

    from forgetting.evaluation.accuracy import greedy_engine_of, load_scorer
    from forgetting.evaluation.lm_eval_bridge import run_lm_eval
    from forgetting.models import resolve_model

    config = EvaluateConfig(model=str(bundled_model_dir()), task="gsm8k", engine="own-weights")
    model, tokenizer = load_scorer(config, "generative")
    assert model is None  # the engine loads the weights itself: no transformers copy beside it
    assert greedy_engine_of(config, model, tokenizer)(["Q0", "Q1"], 4) == (["#### 0", "#### 1"], 1)
    assert own_weights_engine["greedy"] == (resolve_model(config.model), None)
    asked = {}
    monkeypatch.setattr(lm_eval, "simple_evaluate", lambda **kwargs: asked.update(kwargs))
    run_lm_eval(tmp_path, tmp_path, ["forgetting_x"], engine="own-weights")
    assert asked["model"] == "own-weights-backend" and asked["device"] is None

