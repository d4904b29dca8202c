"""CReLU (Shang et al., 2016; used as a plasticity baseline by Ma et al., ICLR 2024 and Abbas et al., 2023).

CReLU(x) = [ReLU(x), ReLU(−x)] replaces ReLU in the hidden layers of the selected networks. The concatenation
doubles each hidden layer's output, so the next layer's fan-in doubles. `width: keep` keeps the hidden widths
(Ma et al.'s reading: the critic just gets wider inputs); `width: halve` halves every hidden width so the
parameter count stays close to the ReLU network's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from neuroplastic.methods._common import Nets, select_nets, selects
from neuroplastic.methods.base import Method, Params
from neuroplastic.nets import MLPSpec

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent


class CReLUParams(Params):
    nets: Nets = Field("critic", description="Networks whose ReLUs become CReLUs (Ma et al.: the critic).")
    width: Literal["keep", "halve"] = Field("keep", description="Keep hidden widths (fan-in doubles) or halve them.")


class CReLU(Method):
    name = "crelu"
    smoke_params: ClassVar[dict[str, Any]] = {"nets": "both"}
    Params = CReLUParams
    params: CReLUParams

    def net_spec(self, role: str, spec: MLPSpec) -> MLPSpec:
        if not selects(self.params.nets, role):
            return spec
        if spec.activation not in ("relu", "crelu"):
            raise ValueError(f"crelu: {role} uses activation {spec.activation!r}; CReLU replaces ReLU only")
        hidden = spec.hidden if self.params.width == "keep" else tuple(max(1, h // 2) for h in spec.hidden)
        return spec.with_(activation="crelu", hidden=hidden)

    def on_build(self, agent: Agent) -> None:
        select_nets(self.params.nets, agent, self.name)
