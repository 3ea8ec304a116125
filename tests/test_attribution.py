import json

import pytest
import torch
from transformers import AutoTokenizer

from forgetting.attribution.examples import IGNORE, encode_examples, example_losses
from forgetting.attribution.gradients import naive_dot, per_example_dot
from forgetting.attribution.methods import Budget, untrac, untrac_inv
from forgetting.attribution.mixtures import leave_dataset_out
from forgetting.attribution.planted import PLANTED, planted_mixture
from forgetting.attribution.toxicity import TOXIC, toxicity_mixture
from forgetting.attribution.stage import AttributeConfig, attribute
from forgetting.errors import UsageError
from forgetting.models.bundled import bundled_model_dir
from forgetting.models.tiny import tiny_llama


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(bundled_model_dir())


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(vocab_size=len(tokenizer), seed=0)


def test_planted_mixture_is_real_data_with_the_answer_built_in():
    mixture = planted_mixture(per_source=3, test_examples=4, seed=1)
    train, test = mixture.train, mixture.test
    assert mixture.responsible == PLANTED
    assert [row["source"] for row in train].count(PLANTED) == 4 and len(test) == 4
    assert {row["source"] for row in train} == {"python", "gsm8k", "sst2", "facts", PLANTED}
    planted_texts = {row["text"] for row in train if row["source"] == PLANTED}
    assert all(f"{t['prompt']}{t['completion']}." in planted_texts for t in test)


def test_toxicity_mixture_tests_held_out_toxic_web_text():
    mixture = toxicity_mixture(per_source=3, test_examples=5, seed=1)
    sources = [row["source"] for row in mixture.train]
    assert mixture.responsible == TOXIC and sources.count(TOXIC) == 3 and len(mixture.test) == 5
    assert set(sources) == {"python", "gsm8k", "sst2", "facts", "donotanswer", TOXIC}
    toxic_texts = {row["text"] for row in mixture.train if row["source"] == TOXIC}
    tested = [(t["prompt"] + t["completion"]).strip() for t in mixture.test]
    assert all(t["prompt"] and t["completion"].strip() for t in mixture.test)
    assert not toxic_texts & set(tested)


def test_leave_dataset_out_retrains_without_each_source_and_keeps_the_model(model, tokenizer):
    rows = [{"source": "fact", "text": "The capital of Peru is Oslo."} for _ in range(4)] + \
           [{"source": "code", "text": f"def f(x): return x + {i}"} for i in range(4)]
    train = encode_examples(tokenizer, rows)
    test = encode_examples(tokenizer, [{"prompt": "The capital of Peru is", "completion": " Oslo."}])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    truth = leave_dataset_out(model, train, [row["source"] for row in rows], test, steps=8, lr=1e-3, batch_size=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    scores = truth.set_index("source")["score"]
    assert scores["fact"] > 0 and scores["fact"] > scores["code"]


def test_test_examples_are_scored_on_the_completion_only(tokenizer):
    encoded = encode_examples(tokenizer, [{"prompt": "The capital of Peru is", "completion": " Oslo"},
                                          {"source": "s", "text": "print(1)"}])
    prompt_length = len(tokenizer("The capital of Peru is", add_special_tokens=False)["input_ids"])
    assert (encoded.labels[0, :prompt_length] == IGNORE).all() and (encoded.labels[0, prompt_length:] != IGNORE).any()
    assert (encoded.labels[1][encoded.attention_mask[1] == 1] != IGNORE).all()


def test_batched_per_example_gradients_equal_one_backward_per_example(model, tokenizer):
    train = encode_examples(tokenizer, [{"source": "a", "text": "The capital of France is Paris."},
                                        {"source": "b", "text": "def f(x): return x"}])
    test = encode_examples(tokenizer, [{"prompt": "The capital of France is", "completion": " Paris"}])
    assert torch.allclose(per_example_dot(model, train, test, 2), naive_dot(model, train, test, 2), rtol=1e-3, atol=1e-5)


def test_methods_leave_the_given_model_unchanged(model, tokenizer):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = [{"source": "a", "text": "one two three"}, {"source": "b", "text": "four five six"}]
    train, test = encode_examples(tokenizer, rows), encode_examples(tokenizer, [{"prompt": "one", "completion": " two"}])
    losses = example_losses(model, test)
    for method in (untrac, untrac_inv):
        result = method(model, train, ["a", "b"], test, Budget(lr=1e-2, steps=2, batch_size=2))
        assert set(result.per_source["source"]) == {"a", "b"}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(example_losses(model, test), losses)


def test_planted_source_ranks_first_on_the_tiny_model(store, tiny_checkpoint_with_tokenizer):
    import mlflow

    config = AttributeConfig(model=str(tiny_checkpoint_with_tokenizer), examples_per_source=4, test_examples=4,
                             train_steps=12, train_lr=1e-3, checkpoints=2, unlearning_rate=1e-3,
                             unlearning_steps=3, batch_size=8, max_length=48, tracin_parameters="mlp")
    with mlflow.start_run() as run:
        metrics = attribute(config)
    assert metrics["rank_untrac"] == 1 and metrics["rank_untrac-inv"] == 1
    assert -1 <= metrics["spearman_untrac_vs_untrac-inv"] <= 1
    top = json.loads(open(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="attribution/untrac-inv_top.json")).read())
    assert len(top["data"]) == 10


@pytest.mark.parametrize("changes, names", [
    ({"method": "influence"}, "method='influence' is not one of"),
    ({"unlearning_rate": 0.0}, "unlearning_rate=0.0 is outside"),
    ({"unlearning_steps": 0}, "unlearning_steps=0 is outside"),
    ({"train_data": "/no/such.jsonl", "test_data": "/no/such.jsonl"},
     r"train_data='/no/such.jsonl' is neither an experiment \(planted, toxicity\) nor a JSONL file"),
    ({"train_data": "/no/such.jsonl"}, "test_data and leave_dataset_out need an experiment"),
    ({"train_data": "toxicity"}, "test_data='planted' must equal train_data='toxicity'"),
])
def test_bad_input_is_one_line(changes, names):
    with pytest.raises(UsageError, match=names):
        AttributeConfig(**changes).validate()


@pytest.fixture
def throwaway_method():
    """An attribution method registered in one line for one test."""
    from forgetting.attribution import ATTRIBUTION_METHODS
    from forgetting.attribution.spec import AttributionMethod

    ATTRIBUTION_METHODS.register("throwaway", AttributionMethod("never_imported:scores"))
    yield "throwaway"
    ATTRIBUTION_METHODS.unregister("throwaway")


def test_a_registered_method_is_accepted_and_joins_all(throwaway_method):
    AttributeConfig(method=throwaway_method).validate()
    AttributeConfig(method=f"untrac, {throwaway_method}").validate()
    assert AttributeConfig(method="all").methods() == ["untrac", "untrac-inv", "tracin", throwaway_method]


def test_malformed_jsonl_names_the_line(tmp_path):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text('{"source": "a", "text": "x"}\n{"text": 3}\n')
    test.write_text('{"prompt": "p", "completion": "c"}\n')
    with pytest.raises(UsageError, match="train.jsonl'?: line 2 needs string fields source, text"):
        AttributeConfig(train_data=str(train), test_data=str(test)).validate()
