from __future__ import annotations

from neuroplastic.checkpoint import Checkpointer


def test_keeps_last_two_and_ignores_incomplete(tmp_path):
    ck = Checkpointer(tmp_path, keep=2)
    for s in (10, 20, 30):
        ck.save(s, {"step": s})
    assert ck.complete_steps() == [20, 30]
    # A checkpoint file without its sentinel (death between rename and sentinel) is not trusted.
    (tmp_path / "step_000000000040.pt").write_bytes(b"garbage")
    step, state = ck.latest()
    assert step == 30 and state == {"step": 30}
    ck.save(50, {"step": 50})
    assert ck.complete_steps() == [30, 50]
    assert not (tmp_path / "step_000000000040.pt").exists()
    ck.clear()
    assert ck.latest() is None
