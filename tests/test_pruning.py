"""Neuron scoring, selection and physical removal on the tiny random Llama."""
import copy
import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM

from forgetting.errors import UsageError
from forgetting.models.tiny import tiny_llama
from forgetting.models.variable_llama import VariableLlamaForCausalLM
from forgetting.models.weights import count_parameters
from forgetting.pruning import (PRUNING_METHODS, check_pruning, counts_as_metrics, layer_counts, mask_neurons,
                                mlp_widths, prune, remove_neurons, score_neurons, select_neurons)
from forgetting.pruning.scores import mlp_modules
from forgetting.pruning.spec import PruningCriterion
from forgetting.pruning.stage import PruneConfig
from forgetting.pruning.tuneprune import lambda_for, neuron_group_norms

WIDTH, HIDDEN, LAYERS = 128, 64, 2
FAST_TUNEPRUNE = {"steps": 3, "lr": 1e-3, "penalty_lr": 0.01}


def code_batches(count=2, batch_size=2, length=12, seed=0):
    """Causal-LM batches of random token ids, the shape the prune stage feeds from Python code."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        input_ids = torch.randint(0, 256, (batch_size, length), generator=generator)
        batches.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                        "labels": input_ids.clone()})
    return batches


def state_of(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def assert_same_state(model, state):
    current = model.state_dict()
    assert current.keys() == state.keys()
    for name, tensor in state.items():
        assert torch.equal(current[name], tensor), name


@pytest.fixture(scope="module")
def dense():
    return tiny_llama()


@pytest.mark.parametrize("sparsity", [0.3, 0.63, 0.8])
def test_each_layer_loses_round_sparsity_times_width(dense, sparsity):
    keep = select_neurons(score_neurons("random", dense, None, seed=1).scores, sparsity)
    pruned = remove_neurons(dense, keep)
    removed = round(sparsity * WIDTH)
    assert mlp_widths(pruned) == [WIDTH - removed] * LAYERS
    assert pruned.config.intermediate_sizes == [WIDTH - removed] * LAYERS
    assert [count.removed for count in layer_counts(dense, keep)] == [removed] * LAYERS
    assert count_parameters(dense) - count_parameters(pruned) == LAYERS * removed * 3 * HIDDEN
    assert counts_as_metrics(layer_counts(dense, keep))["removed_neurons"] == LAYERS * removed


def test_global_scope_removes_the_global_count_and_keeps_a_neuron_per_layer():
    scores = [torch.arange(WIDTH, dtype=torch.float) + 1000, torch.arange(WIDTH, dtype=torch.float)]
    keep = select_neurons(scores, 0.3, scope="global")
    assert sum(WIDTH - len(indices) for indices in keep) == round(0.3 * 2 * WIDTH)
    assert len(keep[0]) == WIDTH
    keep = select_neurons(scores, 0.99, scope="global")
    assert [len(indices) for indices in keep] == [2, 1]
    assert keep[1].tolist() == [WIDTH - 1]


def test_pruned_checkpoint_loads_with_plain_from_pretrained(dense, tmp_path):
    pruned = prune(dense, "random", None, 0.63, seed=3).model
    pruned.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is VariableLlamaForCausalLM
    assert loaded.config.intermediate_sizes == pruned.config.intermediate_sizes
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    assert_same_state(loaded, pruned.state_dict())


def test_pruned_logits_equal_masked_dense_logits(dense):
    batch = code_batches(count=1, length=10, seed=5)[0]
    batch["attention_mask"][1, 7:] = 0
    once = prune(dense, "random", None, 0.63, seed=4)
    twice = prune(once.model, "random", None, 0.3, seed=5)
    with torch.no_grad():
        for result, source in ((once, dense), (twice, once.model)):
            pruned_logits = result.model(**batch).logits
            masked_logits = mask_neurons(source, result.keep)(**batch).logits
            torch.testing.assert_close(pruned_logits, masked_logits, atol=1e-4, rtol=0)
            assert not torch.allclose(pruned_logits, source(**batch).logits, atol=1e-4)


def test_removal_keeps_dtype_and_the_pruned_model_generates():
    half = tiny_llama().to(torch.bfloat16)
    pruned = prune(half, "random", None, 0.5).model
    assert {parameter.dtype for parameter in pruned.parameters()} == {torch.bfloat16}
    generated = pruned.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, 7)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0])
def test_sparsity_outside_unit_interval_is_a_usage_error(sparsity):
    with pytest.raises(UsageError, match=r"sparsity=.* is outside \[0, 1\)"):
        check_pruning("random", sparsity)
    with pytest.raises(UsageError, match="sparsity"):
        select_neurons([torch.rand(WIDTH)], sparsity)


def test_unknown_method_lists_the_allowed_names(dense):
    names = "attribution, combined, gradient, magnitude, movement, random, tuneprune"
    with pytest.raises(UsageError, match=f"method='snip' is not one of: {names}"):
        prune(dense, "snip", None, 0.3)
    assert PRUNING_METHODS.names() == names.split(", ")


@pytest.mark.parametrize("name", PRUNING_METHODS.names())
def test_every_pruning_criterion_is_complete(name):
    """A registered criterion resolves, applies to some model, names only real config fields, and the
    options a default prune config gives it are the ones it takes; each field it alone reads reaches them."""
    criterion = PRUNING_METHODS.get(name)
    assert isinstance(criterion, PruningCriterion)
    assert callable(criterion.score) and callable(criterion.check)
    assert criterion.language_model or criterion.classifier
    assert set(criterion.fields) <= {field.name for field in dataclasses.fields(PruneConfig)}
    if criterion.language_model:
        config = PruneConfig(method=name)
        check_pruning(name, config.sparsity, **config.method_options())
        assert set(criterion.fields) <= set(config.params())
        for field in criterion.fields:
            changed = dataclasses.replace(config, **{field: getattr(config, field) + 1})
            assert changed.method_options() != config.method_options(), field
    if criterion.needs_statistics or criterion.weight_level:
        assert criterion.classifier


@pytest.fixture
def keep_first():
    PRUNING_METHODS.register("keep-first", PruningCriterion("plugin_keep_first:score_neurons",
                                                            options="plugin_keep_first:stage_options"))
    yield
    PRUNING_METHODS.unregister("keep-first")


def test_a_criterion_added_in_one_file_and_one_registration_line_runs_in_the_prune_stage(
        keep_first, tiny_checkpoint_with_tokenizer):
    test_every_pruning_criterion_is_complete("keep-first")
    config = PruneConfig(model=str(tiny_checkpoint_with_tokenizer), method="keep-first", sparsity=0.25, seed=1)
    config.validate()
    assert config.params()["seed"] == 1 and "l1_lambda" not in config.params()
    result = prune(tiny_llama(seed=0), config.method, None, config.sparsity, **config.method_options())
    assert all(torch.equal(kept, torch.arange(WIDTH // 4, WIDTH)) for kept in result.keep)  # reverse: seed 1


def test_negative_lambda_and_unknown_options_are_usage_errors(dense):
    with pytest.raises(UsageError, match="l1_lambda"):
        check_pruning("tuneprune", 0.3, l1_lambda=-1e-4)
    with pytest.raises(UsageError, match="l1_lambda"):
        score_neurons("tuneprune", dense, code_batches(), l1_lambda=-1.0)
    with pytest.raises(UsageError, match="steps"):
        check_pruning("random", 0.3, steps=10)


def test_random_scores_are_deterministic_per_seed(dense):
    first, again, other = (score_neurons("random", dense, None, seed=seed).scores for seed in (7, 7, 8))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    assert [len(score) for score in first] == [WIDTH] * LAYERS


def _loss_with_scaled_activation(model, batch, layer, neuron, token, factor):
    def scale(module, args):
        activation = args[0].clone()
        activation[:, token, neuron] *= factor
        return (activation,)

    handle = mlp_modules(model)[layer].down_proj.register_forward_pre_hook(scale)
    try:
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"]).logits
    finally:
        handle.remove()
    # in float64: the model's own loss is computed in float32
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten()).item()


def test_attribution_matches_per_token_finite_differences():
    """d L / d eps of scaling a_tj by (1 + eps) is a_tj * dL/da_tj: sum its |.| over tokens.

    Llama's RMSNorm rounds hidden states to float32 even in a float64 model, so epsilon must be
    large enough to rise above that rounding; the central difference's O(eps^2) error stays small.
    Neuron (0, 3) reaches the loss through layer 1's MLP too, which a cut graph would miss.
    """
    model = tiny_llama(seed=1).double()
    batches = code_batches(count=2, batch_size=1, length=6, seed=9)
    scores = score_neurons("attribution", model, batches).scores
    epsilon = 0.02
    for layer, neuron in ((0, 3), (1, 100)):
        expected = sum(
            abs(_loss_with_scaled_activation(model, batch, layer, neuron, token, 1 + epsilon)
                - _loss_with_scaled_activation(model, batch, layer, neuron, token, 1 - epsilon)) / (2 * epsilon)
            for batch in batches for token in range(6))
        assert scores[layer][neuron].item() == pytest.approx(expected, rel=2e-3)
    frozen = score_neurons("attribution", model.requires_grad_(False), batches).scores
    assert all(torch.allclose(a, b) for a, b in zip(frozen, scores))
    # Accumulated outside the graph: a total inside it keeps every batch's activations (memory grew by
    # about 600 MB per batch on SmolLM2-135M).
    assert not any(score.requires_grad for score in scores)


def initial_norms(model):
    with torch.no_grad():
        return [neuron_group_norms(mlp) for mlp in mlp_modules(model)]


def adamw_denominators(model, batch):
    """Per neuron, the mean of AdamW's first-step denominator ``|g| + eps`` over its gate row, up row and
    down column, from one backward pass of ``model`` on ``batch``."""
    model = copy.deepcopy(model).train()
    model(**batch).loss.backward()
    return [(mlp.gate_proj.weight.grad.abs().sum(1) + mlp.up_proj.weight.grad.abs().sum(1)
             + mlp.down_proj.weight.grad.abs().sum(0)) / (3 * HIDDEN) + 1e-8 for mlp in mlp_modules(model)]


def test_tuneprune_proximal_step_shrinks_each_neuron_by_penalty_over_its_adamw_denominator(dense):
    """One step: the LM step is the same with and without the penalty, so the norms differ by exactly the
    proximal threshold penalty_lr * l1_lambda / d_j, which differs between neurons (AdamW's metric)."""
    one_step = FAST_TUNEPRUNE | {"steps": 1}
    plain = score_neurons("tuneprune", dense, code_batches(), l1_lambda=0.0, **one_step)
    lasso = score_neurons("tuneprune", dense, code_batches(), l1_lambda=1e-3, **one_step)
    for plain_norms, lasso_norms, denominator in zip(plain.scores, lasso.scores,
                                                     adamw_denominators(dense, code_batches()[0])):
        shrink = plain_norms - lasso_norms
        torch.testing.assert_close(shrink, 0.01 * 1e-3 / denominator, rtol=2e-3, atol=1e-6)
        assert shrink.std() / shrink.mean() > 0.1  # not one threshold for every group
    assert lasso.metrics["tuneprune_penalty"] == pytest.approx(1e-3 * sum(n.sum().item() for n in lasso.scores),
                                                               rel=1e-4)
    assert lasso.metrics["tuneprune_norm_shrink"] > plain.metrics["tuneprune_norm_shrink"]
    wiped = score_neurons("tuneprune", dense, code_batches(), l1_lambda=1.0, **FAST_TUNEPRUNE)
    assert wiped.metrics["tuneprune_zeroed_fraction"] == 1.0


def test_tuneprune_removes_the_neurons_the_loss_does_not_use_even_with_the_largest_norms():
    """Dead neurons (gate and up rows zero, so their activation and every gradient of theirs is zero) are
    given the largest norms through their down_proj columns: a ranking by norm, or a soft-threshold that
    shrinks every group alike, would keep them; in AdamW's metric their threshold is huge."""
    model = tiny_llama(seed=4)
    dead = torch.arange(0, WIDTH, 4)
    with torch.no_grad():
        for mlp, norms in zip(mlp_modules(model), initial_norms(model)):
            mlp.gate_proj.weight[dead] = 0
            mlp.up_proj.weight[dead] = 0
            columns = mlp.down_proj.weight[:, dead]
            mlp.down_proj.weight[:, dead] = columns * (2 * norms.max() / columns.norm(dim=0))
    assert all(set(norms.argsort()[-len(dead):].tolist()) == set(dead.tolist()) for norms in initial_norms(model))
    result = prune(model, "tuneprune", code_batches(), 0.25, l1_lambda=1e-3, **FAST_TUNEPRUNE)
    for kept in result.keep:
        assert not set(kept.tolist()) & set(dead.tolist())


def test_tuneprune_scores_are_the_tuned_copys_group_norms(dense):
    result = prune(dense, "tuneprune", code_batches(), 0.3, l1_lambda=1e-3, **FAST_TUNEPRUNE)
    tuned = result.scores.model
    assert tuned is not dense
    for layer, (score, before) in enumerate(zip(result.scores.scores, initial_norms(dense))):
        torch.testing.assert_close(score, neuron_group_norms(mlp_modules(tuned)[layer]).detach())
        assert (score < before).float().mean() > 0.9
    assert all(torch.equal(kept, expected) for kept, expected in zip(result.keep, select_neurons(
        initial_norms(tuned), 0.3)))
    tuned_down = mlp_modules(tuned)[0].down_proj.weight[:, result.keep[0]]
    assert torch.equal(mlp_modules(result.model)[0].down_proj.weight, tuned_down)


def test_tuneprune_prunes_the_groups_the_penalty_drove_to_zero():
    """Neurons whose norm starts small are zeroed by the soft-threshold and are the ones removed."""
    model = tiny_llama(seed=4)
    small = torch.arange(0, WIDTH, 4)
    with torch.no_grad():
        for mlp in mlp_modules(model):
            mlp.gate_proj.weight[small] *= 0.02
            mlp.up_proj.weight[small] *= 0.02
            mlp.down_proj.weight[:, small] *= 0.02
    result = prune(model, "tuneprune", code_batches(), 0.25, l1_lambda=2e-3, **FAST_TUNEPRUNE)
    assert result.scores.metrics["tuneprune_zeroed_fraction"] == pytest.approx(0.25)
    for kept in result.keep:
        assert not set(kept.tolist()) & set(small.tolist())


@pytest.mark.parametrize("sparsity, expected", [(0.3, 3e-4), (0.63, 5e-4), (0.8, 1e-3), (0.1, 3e-4), (0.95, 1e-3)])
def test_l1_lambda_follows_the_sparsity_unless_given(sparsity, expected):
    config = PruneConfig(method="tuneprune", sparsity=sparsity)
    assert config.method_options()["l1_lambda"] == pytest.approx(expected)
    assert PruneConfig(method="tuneprune", sparsity=sparsity, l1_lambda=2e-3).method_options()["l1_lambda"] == 2e-3
    assert PruneConfig(method="tuneprune", sparsity=sparsity, l1_lambda=0.0).method_options()["l1_lambda"] == 0.0


def test_l1_lambda_between_the_seeds_points_is_log_linear():
    assert lambda_for(0.465) == pytest.approx((3e-4 * 5e-4) ** 0.5)
    assert 5e-4 < lambda_for(0.7) < 1e-3
    with pytest.raises(UsageError, match="l1_lambda=-0.5 is negative.*-1 for the per-sparsity default"):
        PruneConfig(method="tuneprune", l1_lambda=-0.5).method_options()


def test_per_sparsity_lambda_reaches_the_tuning(dense, store):
    """The stage's options at 80% shrink norms (against the same steps without the penalty) 1e-3 / 3e-4
    times as far as at 30%, and each step is logged."""
    import mlflow

    shrink = {}
    plain = score_neurons("tuneprune", dense, code_batches(), l1_lambda=0.0, steps=3, lr=1e-3).scores
    for sparsity in (0.3, 0.8):
        options = PruneConfig(method="tuneprune", sparsity=sparsity, tuneprune_steps=3, tuneprune_lr=1e-3,
                              tuneprune_penalty_lr=0.01).method_options()
        with mlflow.start_run() as run:
            result = prune(dense, "tuneprune", code_batches(), sparsity, **options)
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "tuneprune_penalty")
        assert [point.step for point in history] == [1, 2, 3]
        assert history[-1].value < history[0].value
        assert result.scores.metrics["tuneprune_l1_lambda"] == pytest.approx(lambda_for(sparsity))
        shrink[sparsity] = sum((before - after).sum().item() for before, after
                               in zip(plain, result.scores.scores))
    assert shrink[0.8] / shrink[0.3] == pytest.approx(1e-3 / 3e-4, rel=0.15)


@pytest.mark.parametrize("method, options", [("random", {}), ("attribution", {}), ("tuneprune", FAST_TUNEPRUNE)])
def test_scoring_and_removal_leave_the_input_model_unchanged(method, options):
    model = tiny_llama(seed=2).train()
    before = state_of(model)
    prune(model, method, code_batches(), 0.5, **options)
    assert_same_state(model, before)
    assert model.training
    assert all(parameter.grad is None for parameter in model.parameters())
