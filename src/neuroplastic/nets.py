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


class MaskedConv2d(nn.Conv2d):
    """A `nn.Conv2d` with the same optional bool `mask` (of the kernel's shape (out, in, kh, kw)) as
    `MaskedLinear`; sparse methods treat both alike. `padding="same"` follows TensorFlow's rule (the Dopamine
    Nature CNN's): out = ⌈in / stride⌉, the odd extra pad row/column on the bottom/right."""

    mask: torch.Tensor | None

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: str = "valid") -> None:
        super().__init__(in_channels, out_channels, kernel, stride=stride)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        self.same = padding == "same"
        self.register_buffer("mask", None)

    set_mask = MaskedLinear.set_mask

    def out_size(self, size: int) -> int:
        k, s = self.kernel_size[0], self.stride[0]
        return -(-size // s) if self.same else (size - k) // s + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            k, s = self.kernel_size[0], self.stride[0]
            pad_h = max((self.out_size(x.shape[-2]) - 1) * s + k - x.shape[-2], 0)
            pad_w = max((self.out_size(x.shape[-1]) - 1) * s + k - x.shape[-1], 0)
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)


MASKED_LAYERS = (MaskedLinear, MaskedConv2d)


class _SumOfSquares(torch.autograd.Function):
    """Σ w² with the gradient 2w·g written out. Autograd's `w.pow(2).sum()` takes ~4 passes over w forward and
    backward (pow, pow(w, 1), two products); on the Nature CNN's 1.7M kernel entries an L2 term cost DQN ~20% of
    its update (benchmarks). The gradient is bit-identical to the pow form's."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        flat = w.reshape(-1)
        return torch.dot(flat, flat)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (w,) = ctx.saved_tensors
        return w * (2 * grad)


def sum_of_squares(weights: list[torch.Tensor]) -> torch.Tensor:
    """Σ over `weights` of Σ w² (an L2 penalty's sum), differentiable."""
    return torch.stack([_SumOfSquares.apply(w) for w in weights]).sum()


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
class NatureCNNSpec:
    """The Nature DQN network (Mnih et al. 2015) as Dopamine builds it: conv 32×8×8/4, 64×4×4/2, 64×3×3/1
    (ReLU, TensorFlow "same" padding), a `hidden`-unit ReLU layer, one linear output per action."""

    in_channels: int
    image_size: int
    out_dim: int
    channels: tuple[int, ...] = (32, 64, 64)
    kernels: tuple[int, ...] = (8, 4, 3)
    strides: tuple[int, ...] = (4, 2, 1)
    hidden: int = 512
    padding: str = "same"

    def with_(self, **kw) -> NatureCNNSpec:
        return replace(self, **kw)


class NatureCNN(nn.Module):
    """uint8 frames (B, C, H, W) → /255 → `MaskedConv2d` stack → `MLP` head (one hidden layer).

    The convolutions and the head's linear layers are all maskable. `hidden_activations` is the head's hidden
    layer (the MLP contract every plasticity metric and ReDo rely on)."""

    def __init__(self, spec: NatureCNNSpec) -> None:
        super().__init__()
        self.spec = spec
        convs, fan_in, size = [], spec.in_channels, spec.image_size
        for width, kernel, stride in zip(spec.channels, spec.kernels, spec.strides, strict=True):
            conv = MaskedConv2d(fan_in, width, kernel, stride, spec.padding)
            size = conv.out_size(size)
            convs.append(conv)
            fan_in = width
        self.convs = nn.ModuleList(convs)
        self.head = MLP(MLPSpec(fan_in * size * size, (spec.hidden,), spec.out_dim))

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0
        for conv in self.convs:
            x = F.relu(conv(x))
        return x.flatten(1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(obs))

    def hidden_activations(self, obs: torch.Tensor) -> list[torch.Tensor]:
        return self.head.hidden_activations(self.features(obs))


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


def build_module(spec: MLPSpec | NatureCNNSpec) -> nn.Module:
    """The network a spec describes (for counting parameters of specs without an agent)."""
    return NatureCNN(spec) if isinstance(spec, NatureCNNSpec) else MLP(spec)


def scale_width(spec: MLPSpec | NatureCNNSpec, scale: float) -> MLPSpec | NatureCNNSpec:
    """Every hidden width (and conv channel count) × `scale`, rounded, at least 1; inputs/outputs unchanged."""

    def w(n: int) -> int:
        return max(1, round(n * scale))

    if isinstance(spec, NatureCNNSpec):
        return spec.with_(channels=tuple(w(c) for c in spec.channels), hidden=w(spec.hidden))
    return spec.with_(hidden=tuple(w(h) for h in spec.hidden))
