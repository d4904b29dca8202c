"""DrQ-v2: augmentation, architecture, std schedule, update structure and hooks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from neuroplastic import config, runs
from neuroplastic.agents.drqv2 import DrQV2, DrQV2Params, random_shift
from neuroplastic.envs import EnvSpec
from neuroplastic.methods.base import Method, MethodStack, RunContext
from neuroplastic.nets import MLP, MaskedLinear
from neuroplastic.replay import Batch
from tests.conftest import tiny_config


def _spec(size: int = 84, act_dim: int = 2) -> EnvSpec:
    return EnvSpec(9 * size * size, act_dim, 1.0, 500, obs_shape=(9, size, size), action_repeat=2)


def _agent(size: int = 20, methods: list[Method] | None = None, **params) -> DrQV2:
    torch.manual_seed(0)
    p = DrQV2Params(**{"hidden": 32, "feature_dim": 8, "batch_size": 8, **params})
    return DrQV2(p, _spec(size), torch.device("cpu"), MethodStack(methods or []), seed=0)


def _batch(size: int = 20, n: int = 8, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (n, 9, size, size), generator=g, dtype=torch.uint8)
    nxt = torch.randint(0, 256, (n, 9, size, size), generator=g, dtype=torch.uint8)
    return Batch(obs, torch.rand(n, 2, generator=g) * 2 - 1, torch.rand(n, 1, generator=g), nxt, torch.ones(n, 1))


def _coded_images(n: int, size: int) -> torch.Tensor:
    """Channel 0 holds the row index, channel 1 the column index of every pixel."""
    rows = torch.arange(size)[:, None].expand(size, size)
    cols = torch.arange(size)[None, :].expand(size, size)
    img = torch.stack((rows, cols, torch.zeros_like(rows)))
    return img[None].expand(n, 3, size, size).to(torch.uint8).contiguous()


def _recover_shift(out: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(dy, dx) per image from the centre pixel of a coded image (the centre is never clamped for pad ≤ 4)."""
    c = size // 2
    return out[:, 0, c, c].long() - c, out[:, 1, c, c].long() - c


def test_random_shift_is_an_integer_shift_within_pad_with_replicated_border():
    size, n = 20, 4000
    torch.manual_seed(0)
    out = random_shift(_coded_images(n, size), pad=4)
    dy, dx = _recover_shift(out, size)
    assert int(dy.abs().max()) <= 4 and int(dx.abs().max()) <= 4
    # every shift in [−4, 4] occurs, on both axes
    assert set(dy.tolist()) == set(range(-4, 5)) and set(dx.tolist()) == set(range(-4, 5))
    # the whole image is the clamped shift (replicate padding), not just the centre
    idx = torch.arange(size)
    exp_rows = (idx[None, :] + dy[:, None]).clamp(0, size - 1)
    exp_cols = (idx[None, :] + dx[:, None]).clamp(0, size - 1)
    assert torch.equal(out[:, 0].long(), exp_rows[:, :, None].expand(n, size, size))
    assert torch.equal(out[:, 1].long(), exp_cols[:, None, :].expand(n, size, size))


def test_random_shift_equals_pad_then_crop():
    torch.manual_seed(1)
    x = torch.randint(0, 256, (64, 9, 16, 16), dtype=torch.uint8)
    coded = _coded_images(64, 16)
    torch.manual_seed(2)
    out = random_shift(x, 4)
    torch.manual_seed(2)
    dy, dx = _recover_shift(random_shift(coded, 4), 16)  # same draws → same shifts
    padded = nn.functional.pad(x.float(), (4, 4, 4, 4), mode="replicate")
    for i in range(64):
        oy, ox = 4 + int(dy[i]), 4 + int(dx[i])
        assert torch.equal(out[i].float(), padded[i, :, oy : oy + 16, ox : ox + 16])


def test_obs_and_next_obs_are_augmented_independently():
    agent = _agent(size=20)
    imgs = _coded_images(512, 20)
    torch.manual_seed(0)
    a, b = agent.augment_pair(imgs, imgs.clone())
    (ay, ax), (by, bx) = _recover_shift(a, 20), _recover_shift(b, 20)
    for s in (ay, ax, by, bx):
        assert int(s.abs().max()) <= 4
    same = (ay == by) & (ax == bx)
    # independent uniform draws on 81 shifts agree ~1/81 of the time; a shared draw would agree always
    assert float(same.float().mean()) < 0.05
    agent.augment = False
    a, b = agent.augment_pair(imgs, imgs)
    assert a is imgs and b is imgs


def test_official_architecture_and_init():
    agent = DrQV2(DrQV2Params(), _spec(84, act_dim=6), torch.device("cpu"), MethodStack([]), seed=0)
    enc, actor, critic = agent.nets["encoder"], agent.nets["actor"], agent.nets["critic"]
    assert enc.repr_dim == 32 * 35 * 35
    assert [c.stride[0] for c in enc.convs] == [2, 1, 1, 1] and all(c.out_channels == 32 for c in enc.convs)
    assert isinstance(actor.policy, MLP) and actor.policy.spec.hidden == (1024, 1024) and actor.policy.spec.in_dim == 50
    assert critic.q1.spec.in_dim == 56 and critic.q1.spec.out_dim == 1
    # trunks are dense nn.Linear (never masked), heads are MaskedLinear
    assert type(actor.trunk[0]) is nn.Linear and isinstance(actor.trunk[1], nn.LayerNorm)
    assert all(isinstance(layer, MaskedLinear) for layer in critic.q2.layers)
    w = actor.policy.layers[0].weight  # orthogonal (1024×50): orthonormal columns
    assert torch.allclose(w.T @ w, torch.eye(50), atol=1e-4)
    assert float(enc.convs[0].bias.detach().abs().sum()) == 0.0
    assert set(agent.targets) == {"critic"} and set(agent.optimizers) == {"encoder", "actor", "critic"}
    assert agent.replay_ratio == 0.5 and agent.params.tau == 0.01 and agent.params.nstep == 3


def test_std_schedule_in_agent_steps():
    agent = _agent()
    for step, expected in ((0, 1.0), (250_000, 0.55), (500_000, 0.1), (2_000_000, 0.1)):
        agent.env_step = step
        assert agent.stddev() == pytest.approx(expected)


class HookLog(Method):
    name = "_hooklog"

    def __init__(self) -> None:
        super().__init__(None, RunContext(0, 10, 0, torch.device("cpu")))
        self.calls = []

    def extra_loss(self, agent, net):
        self.calls.append(("extra", net))
        return None

    def before_optimizer_step(self, agent, net, update):
        self.calls.append(("before", net))
        return True

    def after_target_update(self, agent):
        self.calls.append(("target",))


def test_update_hooks_encoder_trained_by_the_critic_loss_and_target_polyak():
    log = HookLog()
    agent = _agent(methods=[log])
    enc0 = [p.detach().clone() for p in agent.nets["encoder"].parameters()]
    tgt0 = [p.detach().clone() for p in agent.targets["critic"].parameters()]
    agent.update(_batch())
    assert log.calls == [
        ("extra", "critic"),
        ("extra", "encoder"),
        ("before", "critic"),
        ("before", "encoder"),
        ("extra", "actor"),
        ("before", "actor"),
        ("target",),
    ]
    assert any(not torch.equal(a, b) for a, b in zip(enc0, agent.nets["encoder"].parameters(), strict=True))
    online = list(agent.nets["critic"].parameters())
    for t0, t1, o in zip(tgt0, agent.targets["critic"].parameters(), online, strict=True):
        assert torch.allclose(t1, 0.99 * t0 + 0.01 * o.detach(), atol=1e-6)


def test_actor_loss_leaves_encoder_untouched():
    """The actor learns on detached features: vetoing the critic/encoder steps leaves the encoder unchanged."""

    class Veto(Method):
        name = "_veto"

        def before_optimizer_step(self, agent, net, update):
            return net == "actor"

    agent = _agent(methods=[Veto(None, RunContext(0, 10, 0, torch.device("cpu")))])
    enc0 = [p.detach().clone() for p in agent.nets["encoder"].parameters()]
    act0 = [p.detach().clone() for p in agent.nets["actor"].parameters()]
    agent.update(_batch())
    assert all(torch.equal(a, b) for a, b in zip(enc0, agent.nets["encoder"].parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(act0, agent.nets["actor"].parameters(), strict=True))


def test_hidden_activations_per_module_and_critic_fau_tracking():
    agent = _agent(size=20)
    acts = agent.hidden_activations(_batch())
    assert [tuple(h.shape) for h in acts["encoder"]] == [(8, 32, 9, 9), (8, 32, 7, 7), (8, 32, 5, 5), (8, 32, 3, 3)]
    assert [tuple(h.shape) for h in acts["actor"]] == [(8, 32)] * 2
    assert [tuple(h.shape) for h in acts["critic"]] == [(8, 32)] * 4
    agent.update(_batch())
    assert agent.critic_fau() is None
    agent.track_critic_fau = True
    agent.update(_batch(seed=1))
    v = float(agent.critic_fau())
    assert 0.0 < v < 1.0


def test_state_roundtrip_is_exact():
    a, b = _agent(), _agent(aug_pad=4)
    a.update(_batch())
    a.augment = False
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # as a checkpoint does: no tensor shared between a and b
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=False))
    assert b.augment is False and b.updates == 1
    torch.manual_seed(5)
    a.update(_batch(seed=3))
    torch.manual_seed(5)
    b.update(_batch(seed=3))
    for x, y in zip(a.nets["critic"].parameters(), b.nets["critic"].parameters(), strict=True):
        assert torch.equal(x, y)


def test_act_explores_with_the_schedule_and_is_deterministic_in_eval():
    agent = _agent(size=20)
    obs = np.zeros((9, 20, 20), dtype=np.uint8)
    assert np.array_equal(agent.act(obs, explore=False), agent.act(obs, explore=False))
    agent.env_step = 0
    spread_early = np.std([agent.act(obs, explore=True) for _ in range(200)])
    agent.env_step = 10**7
    spread_late = np.std([agent.act(obs, explore=True) for _ in range(200)])
    assert spread_early > 3 * spread_late


def test_drqv2_needs_a_pixel_env():
    with pytest.raises(config.ConfigError, match="drqv2 learns from pixels"):
        runs.resolve(tiny_config(agent="drqv2", env="dmc:cartpole-swingup"))


def test_redo_recycles_dormant_conv_channels_and_their_outgoing_weights():
    from neuroplastic.methods.redo import ReDo, ReDoParams

    agent = _agent(size=20)
    agent.update(_batch())  # populate Adam state
    enc = agent.nets["encoder"]
    with torch.no_grad():
        # Make channel 3 of conv 1 and channel 5 of the last conv dead: negative bias, zero filter.
        enc.convs[1].weight[3].zero_()
        enc.convs[1].bias[3] = -1.0
        enc.convs[3].weight[5].zero_()
        enc.convs[3].bias[5] = -1.0
    before = {k: v.detach().clone() for k, v in agent.nets["actor"].state_dict().items()}
    redo = ReDo(ReDoParams(tau=0.0, nets="critic"), RunContext(0, 10, 0, torch.device("cpu")))
    dormant = redo.recycle(agent, _batch(seed=2), number=1)
    assert bool(dormant["encoder"][1][3]) and bool(dormant["encoder"][3][5])
    assert float(enc.convs[1].bias.detach()[3]) == 0.0 and float(enc.convs[1].weight.detach()[3].abs().sum()) > 0
    # outgoing: input channel 3 of conv 2 is zero, with its Adam moments
    assert float(enc.convs[2].weight.detach()[:, 3].abs().sum()) == 0.0
    assert float(agent.optimizers["encoder"].state[enc.convs[2].weight]["exp_avg"][:, 3].abs().sum()) == 0.0
    # last conv: channel 5's 3×3 = 9 flattened positions are zero in both trunks
    for role in ("actor", "critic"):
        w = agent.nets[role].trunk[0].weight.detach()
        assert float(w[:, 5 * 9 : 6 * 9].abs().sum()) == 0.0 and float(w[:, 4 * 9 : 5 * 9].abs().sum()) > 0
    # the actor's head MLP was not selected (nets: critic), so it is unchanged
    after = agent.nets["actor"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("policy."))
    assert redo.log_metrics(agent, None, 0)["redo.recycled_fraction.encoder"] > 0
