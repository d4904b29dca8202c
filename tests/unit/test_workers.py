"""The suite's parallel schedule (tests/conftest.py): modules with shared fixtures run on one worker, the rest one
test at a time, and units go out in collection order."""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import pytest_collection_modifyitems, pytest_xdist_make_scheduler, work_unit


def _config(dist: str) -> SimpleNamespace:
    values = {"dist": dist, "tx": ["2*popen"]}
    return SimpleNamespace(getvalue=values.get, option=SimpleNamespace(loadscopereorder=True))


def test_tests_of_a_module_with_shared_fixtures_form_one_unit():
    dag = "tests/workflow/test_workflow.py::test_tiny_dag_renders_every_figure_with_manifest"
    report = "tests/workflow/test_workflow.py::test_report_contains_every_figure"
    assert work_unit(dag) == work_unit(report) == "tests/workflow/test_workflow.py"
    slurm = "tests/workflow/test_slurm.py::test_smoke_subset_runs_through_slurm"
    assert work_unit(slurm) == "tests/workflow/test_slurm.py" != work_unit(dag)


def test_other_tests_are_units_of_their_own():
    a = "tests/unit/test_td3.py::test_update_matches_reference[0]"
    b = "tests/unit/test_td3.py::test_update_matches_reference[1]"
    assert work_unit(a) == a and work_unit(b) == b


def test_loadgroup_gets_the_module_scheduler_in_collection_order():
    config = _config("loadgroup")
    scheduler = pytest_xdist_make_scheduler(config, log=None)
    assert scheduler._split_scope("tests/smoke/test_faults.py::test_a[x]") == "tests/smoke/test_faults.py"
    assert scheduler._split_scope("tests/unit/test_ne.py::test_b") == "tests/unit/test_ne.py::test_b"
    assert config.option.loadscopereorder is False
    assert pytest_xdist_make_scheduler(_config("load"), log=None) is None


def test_the_one_worker_modules_go_first_longest_first_and_the_rest_keep_their_order():
    ids = [
        "tests/smoke/test_faults.py::test_a",
        "tests/unit/test_ne.py::test_b",
        "tests/workflow/test_workflow.py::test_c",
        "tests/unit/test_td3.py::test_d",
        "tests/workflow/test_slurm.py::test_e",
        "tests/container/test_container.py::test_f",
    ]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    pytest_collection_modifyitems(None, items)
    assert [i.nodeid.split("::")[1] for i in items] == ["test_f", "test_e", "test_c", "test_a", "test_b", "test_d"]
