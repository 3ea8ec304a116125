"""SparseLinear and the byte/active-parameter counts the classification suite reports."""
import copy

import pytest
import torch
from torch import nn

from forgetting.models.tiny import tiny_llama
from forgetting.models.weights import apply_masks, prunable_weights
from forgetting.pruning import score_weights
from forgetting.pruning.sparse import SparseLinear, active_parameters, parameter_bytes, sparsify_linears
from forgetting.pruning.weights import select_weights


@pytest.mark.parametrize("bias", [True, False])
def test_sparse_linear_computes_the_masked_dense_layer(bias):
    torch.manual_seed(0)
    dense = nn.Linear(16, 8, bias=bias)
    with torch.no_grad():
        dense.weight[dense.weight.abs() < 0.15] = 0
    sparse = SparseLinear.from_linear(dense)
    assert sparse.nnz == int(torch.count_nonzero(dense.weight)) < dense.weight.numel()
    assert sparse.crow_indices.dtype == torch.int32
    for shape in ((5, 16), (2, 3, 16)):
        x = torch.randn(shape)
        assert torch.allclose(sparse(x), dense(x), atol=1e-5)


def magnitude_pruned(sparsity):
    model = tiny_llama()
    apply_masks(model, select_weights(score_weights("magnitude", model), sparsity))
    return model


def test_sparsify_swaps_only_the_pruned_decoder_linears_and_keeps_the_logits():
    dense = magnitude_pruned(0.6)
    sparse = copy.deepcopy(dense)
    with torch.no_grad():
        sparse.model.layers[1].mlp.down_proj.weight.add_(1.0)  # no zero left: stays dense
    reference = copy.deepcopy(sparse)
    assert sparsify_linears(sparse, min_sparsity=0.5) == 13
    assert isinstance(sparse.model.layers[0].self_attn.q_proj, SparseLinear)
    assert isinstance(sparse.model.layers[1].mlp.down_proj, nn.Linear)
    assert isinstance(sparse.lm_head, nn.Linear) and isinstance(sparse.model.embed_tokens, nn.Embedding)
    ids = torch.randint(0, 256, (2, 10))
    with torch.no_grad():
        assert torch.allclose(sparse(ids).logits, reference(ids).logits, atol=1e-4)


def test_bytes_drop_and_active_parameters_match_the_dense_count():
    dense = magnitude_pruned(0.9)
    nonzero = sum(int(torch.count_nonzero(p)) for p in dense.parameters())  # tied embeddings once
    sparse = copy.deepcopy(dense)
    sparsify_linears(sparse)
    assert active_parameters(sparse) == active_parameters(dense) == nonzero
    assert parameter_bytes(sparse) < parameter_bytes(dense)
    decoder = sum(w.numel() for w in prunable_weights(dense).values())
    assert parameter_bytes(dense) - parameter_bytes(sparse) > 0.7 * 4 * decoder
