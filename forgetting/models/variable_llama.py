"""A Llama whose MLP width differs per layer: what physically pruning MLP neurons leaves behind.

Importing this module registers ``model_type="variable_llama"`` with ``AutoConfig``,
``AutoModel``, ``AutoModelForCausalLM`` and ``AutoModelForSequenceClassification``, so a saved
pruned checkpoint loads with plain ``from_pretrained(directory)`` once ``forgetting.models`` is
imported.
The weights are stored at their pruned shapes; nothing is masked at run time.

``config.intermediate_size`` keeps the dense width the model was pruned from (so the removed
fraction of a layer is ``1 - intermediate_sizes[i] / intermediate_size``);
``config.intermediate_sizes[i]`` is the width layer ``i`` actually has.
"""
from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig,
                          LlamaForCausalLM, LlamaForSequenceClassification, LlamaModel)
from transformers.activations import ACT2FN


@strict
class VariableLlamaConfig(LlamaConfig):
    """``LlamaConfig`` plus ``intermediate_sizes``, one MLP width per layer (default: all dense)."""

    model_type = "variable_llama"

    intermediate_sizes: list[int] | None = None

    def __post_init__(self, **kwargs):
        if self.intermediate_sizes is None:
            self.intermediate_sizes = [self.intermediate_size] * self.num_hidden_layers
        self.intermediate_sizes = [int(size) for size in self.intermediate_sizes]
        super().__post_init__(**kwargs)

    @classmethod
    def from_llama_config(cls, config: LlamaConfig, intermediate_sizes: list[int]) -> "VariableLlamaConfig":
        """The same architecture as ``config`` (dense or variable) with new per-layer MLP widths."""
        fields = config.to_dict()
        for key in ("model_type", "transformers_version", "architectures", "intermediate_sizes", "_name_or_path"):
            fields.pop(key, None)
        return cls(**fields, intermediate_sizes=list(intermediate_sizes),
                   attn_implementation=config._attn_implementation)

    def validate_architecture(self):
        super().validate_architecture()
        if len(self.intermediate_sizes) != self.num_hidden_layers:
            raise ValueError(f"intermediate_sizes has {len(self.intermediate_sizes)} entries "
                             f"for {self.num_hidden_layers} layers")
        if min(self.intermediate_sizes) < 1:
            raise ValueError(f"every layer needs at least one MLP neuron, got {self.intermediate_sizes}")


class SizedLlamaMLP(nn.Module):
    """The Llama gated MLP, ``down(act(gate(x)) * up(x))``, at an explicit width.

    Parameter names match ``LlamaMLP`` so state-dict keys are the same as a dense Llama's.
    """

    def __init__(self, config: LlamaConfig, intermediate_size: int):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.intermediate_size = intermediate_size
        self.gate_proj = nn.Linear(config.hidden_size, intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.hidden_size, intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class VariableLlamaModel(LlamaModel):
    config_class = VariableLlamaConfig

    def __init__(self, config: VariableLlamaConfig):
        super().__init__(config)
        for layer, size in zip(self.layers, config.intermediate_sizes):
            layer.mlp = SizedLlamaMLP(config, size)
        self.post_init()


class VariableLlamaForCausalLM(LlamaForCausalLM):
    config_class = VariableLlamaConfig

    def __init__(self, config: VariableLlamaConfig):
        super().__init__(config)
        self.model = VariableLlamaModel(config)
        self.post_init()


class VariableLlamaForSequenceClassification(LlamaForSequenceClassification):
    config_class = VariableLlamaConfig

    def __init__(self, config: VariableLlamaConfig):
        super().__init__(config)
        self.model = VariableLlamaModel(config)
        self.post_init()


AutoConfig.register(VariableLlamaConfig.model_type, VariableLlamaConfig, exist_ok=True)
AutoModel.register(VariableLlamaConfig, VariableLlamaModel, exist_ok=True)
AutoModelForCausalLM.register(VariableLlamaConfig, VariableLlamaForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(VariableLlamaConfig, VariableLlamaForSequenceClassification, exist_ok=True)
