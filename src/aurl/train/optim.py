"""Optimizers: building them from TrainConfig, and their state as flat tensors plus JSON (no pickle).

`flatten` turns `optimizer.state_dict()` into {"<name>.state.<param_index>.<key>": tensor} for a
safetensors file and a JSON-able rest (param groups, non-tensor state entries); `unflatten` is its
inverse. Parameter indices are positions in the optimizer's param groups, as torch numbers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from aurl.config.train import TrainConfig
from aurl.errors import CheckpointError


def param_groups(params: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: matrices and embeddings decay, vectors and scalars (biases, norms, log-vars) do not."""
    params = [p for p in params if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def build_optimizer(params: Iterable[nn.Parameter], config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """The optimizer `config.optimizer` over `params` at learning rate `lr` (the schedule rescales it)."""
    groups = param_groups(params, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config.betas[0], nesterov=config.betas[0] > 0)
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    # foreach=False: the per-parameter path gives the same bits whatever the grouping of tensors,
    # which keeps resumed runs identical to uninterrupted ones across torch's heuristics.
    return kind(groups, lr=lr, betas=config.betas, eps=config.eps, foreach=False)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every param group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def flatten(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors of the optimizer's state under `<name>.state.<index>.<key>`, and the JSON-able rest."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}.state.{index}.{key}"] = value.detach().contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten(
    name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Load what `flatten` produced into `optimizer` (built over the same parameters)."""
    prefix = f"{name}.state."
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        if key.startswith(prefix):
            index, entry = key[len(prefix) :].split(".", 1)
            state.setdefault(int(index), {})[entry] = tensor
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as error:
        raise CheckpointError(
            f"optimizer '{name}' state does not fit this model: {error}; was the model config changed?"
        ) from None
