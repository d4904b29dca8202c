"""Env construction: the one MuJoCo compiler warning that gymnasium's HalfCheetah model triggers is dropped,
and nothing else is."""

from __future__ import annotations

import subprocess
import sys

import mujoco

from neuroplastic import envs


def _stderr_of(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr


def test_halfcheetah_is_made_without_the_settotalmass_warning():
    direct = _stderr_of("import gymnasium as gym; gym.make('HalfCheetah-v5')")
    assert envs.MUJOCO_DROPPED_WARNING in direct  # MuJoCo does print it, so the check below can fail
    ours = _stderr_of(
        "from neuroplastic import envs; envs.make_env('HalfCheetah-v4', 0); envs.make_env('HalfCheetah-v5', 1)"
    )
    assert "settotalmass" not in ours


def test_other_mujoco_warnings_still_print_and_the_handler_is_restored(capsys):
    before = mujoco.get_mju_user_warning()
    try:
        for handler_before in (None, print):
            mujoco.set_mju_user_warning(handler_before)
            with envs._mujoco_compiler_warning_dropped(True):
                handler = mujoco.get_mju_user_warning()
                handler(envs.MUJOCO_DROPPED_WARNING + " and will be removed")
                handler("Nan, Inf or huge value in QACC at DOF 0")
            assert mujoco.get_mju_user_warning() is handler_before
            out = capsys.readouterr()
            if handler_before is None:  # printed as MuJoCo prints it
                assert (out.out, out.err) == ("", "WARNING: Nan, Inf or huge value in QACC at DOF 0\n\n")
            else:  # passed on to the handler that was set
                assert (out.out, out.err) == ("Nan, Inf or huge value in QACC at DOF 0\n", "")
    finally:
        mujoco.set_mju_user_warning(before)
