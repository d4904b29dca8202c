"""Networks built from a declarative layer list.

`MLPSpec` says what an MLP is (widths, where the LayerNorms sit, the activation); `MLP` builds it. Methods
that change the architecture (LayerNorm, CReLU, the NE critic) edit the spec before the network is built, so
no method needs a copy of the agent.

Every linear layer is a `MaskedLinear`: a plain `nn.Linear` with an optional boolean `mask` buffer next to its
weight. The forward pass is the dense matmul; the topology engine keeps masked entries at exactly zero after
each optimizer step, which is cheaper than multiplying by the mask on every forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn


class MaskedLinear(nn.Linear):
    mask: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("mask", None)

    def set_mask(self, mask: torch.Tensor | None) -> None:
        if mask is not None:
            if mask.shape != self.weight.shape:
                raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
            mask = mask.to(device=self.weight.device, dtype=torch.bool)
        self.mask = mask
        if mask is not None:
            with torch.no_grad():
                self.weight.mul_(mask)


def crelu(x: torch.Tensor) -> torch.Tensor:
    return torch.cat((F.relu(x), F.relu(-x)), dim=-1)


ACTIVATIONS = {"relu": F.relu, "crelu": crelu, "tanh": torch.tanh}
# Width multiplier of each activation's output (CReLU concatenates both signs).
ACTIVATION_WIDTH = {"relu": 1, "crelu": 2, "tanh": 1}


@dataclass(frozen=True)
class MLPSpec:
    in_dim: int
    hidden: tuple[int, ...]
    out_dim: int
    activation: str = "relu"
    # Indices of hidden layers with a LayerNorm on their pre-activation (Linear -> LN -> activation).
    layernorm: frozenset[int] = field(default_factory=frozenset)
    layernorm_affine: bool = True

    def with_(self, **kw) -> MLPSpec:
        return replace(self, **kw)


class MLP(nn.Module):
    """Linear → [LayerNorm] → activation for each hidden layer, then a linear output layer."""

    def __init__(self, spec: MLPSpec) -> None:
        super().__init__()
        if spec.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {spec.activation!r}")
        self.spec = spec
        self.act = ACTIVATIONS[spec.activation]
        widen = ACTIVATION_WIDTH[spec.activation]
        layers, norms = [], []
        fan_in = spec.in_dim
        for i, width in enumerate(spec.hidden):
            layers.append(MaskedLinear(fan_in, width))
            norms.append(
                nn.LayerNorm(width, elementwise_affine=spec.layernorm_affine) if i in spec.layernorm else nn.Identity()
            )
            fan_in = width * widen
        layers.append(MaskedLinear(fan_in, spec.out_dim))
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, norm in zip(self.layers[:-1], self.norms, strict=True):
            x = self.act(norm(layer(x)))
        return self.layers[-1](x)

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-activation output of every hidden layer (for dormant-ratio and FAU metrics)."""
        out = []
        for layer, norm in zip(self.layers[:-1], self.norms, strict=True):
            x = self.act(norm(layer(x)))
            out.append(x)
        return out


class Actor(nn.Module):
    """Deterministic policy: max_action · tanh(MLP(s))."""

    def __init__(self, spec: MLPSpec, max_action: float) -> None:
        super().__init__()
        self.net = MLP(spec)
        self.max_action = max_action

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(self.net(obs))


class TwinQ(nn.Module):
    """Two independent Q-heads on (s, a)."""

    def __init__(self, spec: MLPSpec) -> None:
        super().__init__()
        self.q1 = MLP(spec)
        self.q2 = MLP(spec)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sa = torch.cat((obs, action), dim=-1)
        return self.q1(sa), self.q2(sa)

    def q1_only(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.q1(torch.cat((obs, action), dim=-1))


def mlps(module: nn.Module) -> list[tuple[str, MLP]]:
    """Every MLP inside `module`, with its qualified name, in registration order."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, MLP)]


def masked_linears(module: nn.Module) -> list[tuple[str, MaskedLinear]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, MaskedLinear)]


@dataclass(frozen=True)
class ConvSpec:
    """A stack of 3×3 convolutions with ReLU, no padding (DrQ-v2: 4 layers, 32 channels, strides 2,1,1,1)."""

    in_channels: int
    image_size: int
    channels: tuple[int, ...] = (32, 32, 32, 32)
    strides: tuple[int, ...] = (2, 1, 1, 1)
    kernel: int = 3

    def out_size(self) -> int:
        size = self.image_size
        for stride in self.strides:
            size = (size - self.kernel) // stride + 1
        return size

    def repr_dim(self) -> int:
        return self.channels[-1] * self.out_size() ** 2


class ConvEncoder(nn.Module):
    """Pixels (uint8 or float in [0, 255]) → obs/255 − 0.5 → conv/ReLU stack → flattened features."""

    def __init__(self, spec: ConvSpec) -> None:
        super().__init__()
        if len(spec.channels) != len(spec.strides):
            raise ValueError("ConvSpec: channels and strides must have the same length")
        self.spec = spec
        convs, fan_in = [], spec.in_channels
        for width, stride in zip(spec.channels, spec.strides, strict=True):
            convs.append(nn.Conv2d(fan_in, width, spec.kernel, stride=stride))
            fan_in = width
        self.convs = nn.ModuleList(convs)
        self.repr_dim = spec.repr_dim()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 - 0.5
        for conv in self.convs:
            x = F.relu(conv(x))
        return x.flatten(1)

    def hidden_activations(self, obs: torch.Tensor) -> list[torch.Tensor]:
        """Post-ReLU feature maps (batch, channels, h, w) of every conv layer."""
        x = obs.float() / 255.0 - 0.5
        out = []
        for conv in self.convs:
            x = F.relu(conv(x))
            out.append(x)
        return out
