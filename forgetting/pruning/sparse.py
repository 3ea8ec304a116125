"""Run unstructured-pruned Linear layers as sparse matrices, and count what a model really holds.

A weight-pruned checkpoint stores exact zeros in dense tensors, which saves nothing by itself.
``sparsify_linears`` swaps those layers for ``SparseLinear`` (CSR, int32 indices: with int64
indices a 50%-sparse matrix would take more bytes than the dense one) so that evaluation can
measure the memory and time that sparsity actually buys on this hardware. Inference only.
"""
from __future__ import annotations

import torch
from torch import nn


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` held as a CSR matrix of its non-zero entries."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        csr = weight.detach().to_sparse_csr()
        self.register_buffer("values", csr.values().clone())
        self.register_buffer("crow_indices", csr.crow_indices().to(torch.int32))
        self.register_buffer("col_indices", csr.col_indices().to(torch.int32))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "SparseLinear":
        return cls(linear.weight, linear.bias)

    @property
    def weight(self) -> torch.Tensor:
        return torch.sparse_csr_tensor(self.crow_indices, self.col_indices, self.values,
                                       (self.out_features, self.in_features), check_invariants=False)

    @property
    def nnz(self) -> int:
        return self.values.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        # CPU CSR matmul has no bf16 kernel: compute in the stored dtype and cast back.
        out = torch.sparse.mm(self.weight, flat.to(self.values.dtype).T).T.to(x.dtype)
        if self.bias is not None:
            out = out + self.bias.to(x.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz}, "
                f"density={self.nnz / (self.in_features * self.out_features):.3f}")


def sparsify_linears(model: nn.Module, min_sparsity: float = 0.0) -> int:
    """Replace, in place, each decoder-layer ``nn.Linear`` whose fraction of exact-zero weights is
    above zero and at least ``min_sparsity`` by a ``SparseLinear``; returns how many were replaced.
    Embeddings, the LM head and a classification head stay dense."""
    replaced = 0
    for layer in model.model.layers:
        for name, module in list(layer.named_modules()):
            if not isinstance(module, nn.Linear):
                continue
            zeros = (module.weight == 0).float().mean().item()
            if zeros > 0 and zeros >= min_sparsity:
                parent_name, _, child = name.rpartition(".")
                setattr(layer.get_submodule(parent_name) if parent_name else layer, child,
                        SparseLinear.from_linear(module))
                replaced += 1
    return replaced


def _distinct_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Parameters and buffers, each storage once (tied embeddings share one)."""
    seen, tensors = set(), []
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            tensors.append(tensor)
    return tensors


def parameter_bytes(model: nn.Module) -> int:
    """Bytes the model's tensors hold (CSR values and indices for a ``SparseLinear``)."""
    return sum(tensor.numel() * tensor.element_size() for tensor in _distinct_tensors(model))


def active_parameters(model: nn.Module) -> int:
    """Non-zero parameter entries, sparse layers' stored values included; tied weights once."""
    total = sum(int(torch.count_nonzero(p)) for p in {p.data_ptr(): p for p in model.parameters()}.values())
    return total + sum(int(torch.count_nonzero(m.values)) + (0 if m.bias is None else int(torch.count_nonzero(m.bias)))
                       for m in model.modules() if isinstance(m, SparseLinear))
