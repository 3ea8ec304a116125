"""The selective study: classifier fine-tuning statistics, weight criteria, masks, recovery, neuron removal."""
import copy

import pytest
import torch

from forgetting.data.classification import classification_batches, classification_rows
from forgetting.errors import UsageError
from forgetting.models.classifier import is_classifier, load_classifier
from forgetting.models.weights import apply_masks, prunable_weights
from forgetting.pruning import prune
from forgetting.pruning import score_weights
from forgetting.pruning.weights import select_weights
from forgetting.scoring.classification import predict
from forgetting.training.classifier import train_classifier
from forgetting.training.statistics import FinetuneStatistics


@pytest.fixture
def classifier(tiny_checkpoint_with_tokenizer):
    return load_classifier(str(tiny_checkpoint_with_tokenizer))


@pytest.fixture(scope="module")
def rows():
    return classification_rows("sst2", "train", limit=32)


def test_a_causal_lm_becomes_a_seeded_classifier_and_saves_as_one(tiny_checkpoint_with_tokenizer, tmp_path):
    model, tokenizer = load_classifier(str(tiny_checkpoint_with_tokenizer), seed=3)
    again, _ = load_classifier(str(tiny_checkpoint_with_tokenizer), seed=3)
    assert torch.equal(model.score.weight, again.score.weight)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert not is_classifier(str(tiny_checkpoint_with_tokenizer))
    model.save_pretrained(tmp_path / "classifier")
    assert is_classifier(str(tmp_path / "classifier"))


def test_statistics_hold_the_true_movement_and_mean_absolute_gradient(classifier, rows):
    model, tokenizer = classifier
    start = {name: weight.detach().clone() for name, weight in prunable_weights(model).items()}
    frozen = "model.layers.0.self_attn.q_proj.weight"
    prunable_weights(model)[frozen].requires_grad_(False)
    trained = train_classifier(model, tokenizer, rows, lr=1e-3, max_steps=3, batch_size=8, record_statistics=True)
    statistics = trained.statistics
    assert statistics.steps == 3
    for name, weight in prunable_weights(model).items():
        assert torch.allclose(statistics.movement[name], weight.detach() - start[name])
    assert statistics.movement[frozen].abs().max() == 0 and statistics.gradient[frozen].abs().max() == 0

    # with lr 0 the weights stay put, so the mean |gradient| can be recomputed batch by batch
    still = copy.deepcopy(model)
    recorded = train_classifier(still, tokenizer, rows, lr=0.0, max_steps=2, batch_size=8, seed=5,
                                record_statistics=True).statistics
    name = "model.layers.1.mlp.down_proj.weight"
    expected = torch.zeros_like(recorded.gradient[name])
    batches = classification_batches(tokenizer, rows, 8, torch.Generator().manual_seed(5))
    for _, batch in zip(range(2), batches):
        still.zero_grad()
        still.train()
        still(**batch).loss.backward()
        expected += prunable_weights(still)[name].grad.abs() / 2
    assert torch.allclose(recorded.gradient[name], expected, rtol=1e-4, atol=1e-8)


def test_a_weight_that_moved_is_kept_and_one_that_did_not_is_flagged(classifier, rows, tmp_path):
    model, tokenizer = classifier
    frozen = "model.layers.0.self_attn.q_proj.weight"
    prunable_weights(model)[frozen].requires_grad_(False)
    statistics = train_classifier(model, tokenizer, rows, lr=1e-3, max_steps=2, batch_size=8,
                                  record_statistics=True).statistics
    statistics.save(tmp_path)
    statistics = FinetuneStatistics.load(tmp_path)  # through the bf16 file, as the prune stage reads it
    share = prunable_weights(model)[frozen].numel() / sum(w.numel() for w in prunable_weights(model).values())
    for method in ("movement", "gradient"):
        masks = select_weights(score_weights(method, model, statistics), sparsity=share + 0.01, scope="global")
        assert not masks[frozen].any(), method  # never moved, never pulled on: all of it flagged
        moved = torch.cat([statistics.movement[name].abs().flatten() for name in masks])
        kept = torch.cat([mask.flatten() for mask in masks.values()])
        assert moved[kept].min() > 0 and moved.argmax() in kept.nonzero()


def test_combined_prunes_only_what_every_criterion_ranks_low(classifier):
    model, _ = classifier
    weights = prunable_weights(model)
    name = "model.layers.1.mlp.up_proj.weight"
    with torch.no_grad():
        weights[name][0, 0], weights[name][0, 1] = 1e-9, 1e-9
    movement = {n: torch.ones_like(w) for n, w in weights.items()}
    gradient = {n: torch.ones_like(w) for n, w in weights.items()}
    movement[name][0, 0] = movement[name][0, 1] = 0.0
    gradient[name][0, 0] = 0.0  # weight (0, 1): small and unmoved, but the loss pulls on it
    statistics = FinetuneStatistics(movement, gradient, steps=1)
    masks = select_weights(score_weights("combined", model, statistics), sparsity=1 / weights[name].numel())
    assert not masks[name][0, 0] and masks[name][0, 1]


def test_select_weights_prunes_the_exact_fraction_per_matrix_or_globally():
    scores = {"a": torch.arange(10.0).view(2, 5), "b": torch.arange(100.0, 120.0).view(4, 5)}
    per_matrix = select_weights(scores, 0.5)
    assert [int((~mask).sum()) for mask in per_matrix.values()] == [5, 10]
    assert not per_matrix["a"].flatten()[:5].any() and per_matrix["a"].flatten()[5:].all()
    together = select_weights(scores, 0.5, scope="global")
    assert int((~together["a"]).sum()) == 10 and int((~together["b"]).sum()) == 5
    with pytest.raises(UsageError, match=r"sparsity=1.0 is outside \[0, 1\)"):
        select_weights(scores, 1.0)


def test_recovery_keeps_pruned_weights_at_zero_and_learns(classifier, rows):
    model, tokenizer = classifier
    masks = select_weights(score_weights("magnitude", model), 0.5)
    apply_masks(model, masks)
    losses = train_classifier(model, tokenizer, rows, lr=3e-3, max_steps=12, batch_size=8, masks=masks).losses
    for name, weight in prunable_weights(model).items():
        assert torch.count_nonzero(weight[~masks[name]]) == 0
        assert torch.count_nonzero(weight[masks[name]]) == masks[name].sum()
    assert sum(losses[-4:]) < sum(losses[:4])


def test_neuron_granularity_removes_neurons_from_a_classifier(classifier, rows):
    from forgetting.models.variable_llama import VariableLlamaForSequenceClassification
    from forgetting.pruning import mask_neurons

    model, tokenizer = classifier
    pruned = prune(model, "magnitude", None, 0.5)
    assert isinstance(pruned.model, VariableLlamaForSequenceClassification)
    batch = next(classification_batches(tokenizer, rows, 8))
    with torch.no_grad():
        expected = mask_neurons(model, pruned.keep)(**batch).logits
        assert torch.allclose(pruned.model(**batch).logits, expected, atol=1e-5)
    assert len(predict(pruned.model, tokenizer, rows, 16)) == len(rows)


def test_statistics_criteria_refuse_a_model_without_them(classifier):
    model, _ = classifier
    with pytest.raises(UsageError, match="method='movement' needs fine-tuning statistics"):
        score_weights("movement", model)
