# Config → plan: validation, expansion of experiments into runs (deduplicated by run id) and the helper
# functions the rules use. No lambdas in rules: every input/param function lives here.
import copy
import math
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from neuroplastic import locks
from neuroplastic.figures import is_table, suffixes
from neuroplastic.experiments import WorkflowConfigError, plan_from_dict
from neuroplastic.overlay import resolve_includes

BUILD_SCRIPT = str(Path(workflow.basedir) / "containers" / "build.sh")
SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"


def include_base_dir():
    """`include:` is relative to the config file that declares it (the last --configfile that has one)."""
    for path in reversed([Path(p) for p in workflow.configfiles]):
        if path.is_file() and re.search(r"(?m)^include\s*:", path.read_text()):
            return path.resolve().parent
    return Path.cwd()


# Own validation first: an overlay (`include: paper.yaml` + overrides) is merged into the full config it
# includes; then every problem is reported with its key path, and every run of every experiment is resolved
# (unknown method/env/agent or run key → error naming the experiment) before any job starts.
try:
    _full_config = copy.deepcopy(resolve_includes(config, include_base_dir(), source="workflow config"))
    PLAN = plan_from_dict(_full_config, source="workflow config", schema_path=SCHEMA)
except WorkflowConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_full_config)  # the rules and the report read the merged config
validate(config, str(SCHEMA))  # fills the schema defaults into `config` (report captions read it)

NAME = PLAN.name


RESULTS_LOCK = []  # the lock's open descriptor: held until this process exits


def lock_results_dir():
    """One DAG per results directory: the Snakemake process that schedules the jobs holds `results/dag.lock` while
    it runs. Called from the Snakefile's `onstart`, which only that process runs, and not in a dry run; --nolock
    turns it off. Snakemake's own lock sits in the working directory and refuses only a DAG whose files overlap
    (see neuroplastic.locks)."""
    if not workflow.is_main_process or not workflow.execution_settings.lock:
        return
    try:
        fd = locks.acquire(
            Path("results") / "dag.lock",
            f"results directory {Path('results').resolve()}",
            "another Snakemake DAG is running on it. Wait for it to finish (or stop it), or give this DAG its own "
            "working directory with --directory",
        )
    except locks.LockHeldError as err:
        raise WorkflowError(str(err)) from None
    RESULTS_LOCK.append(fd)


FIGURES = PLAN.config["figures"]
# The figure kinds and their outputs come from the registry (neuroplastic.figures); no kind is named here.
TABLE_NAMES = [f for f, spec in FIGURES.items() if is_table(spec["kind"])]
FIGURE_NAMES = [f for f, spec in FIGURES.items() if not is_table(spec["kind"])]
EXPERIMENTS = list(PLAN.config["experiments"])
CONTAINER = PLAN.config["container"]

# Host jobs call the interpreter that runs Snakemake (no PATH assumptions); container jobs the image's command.
NEUROPLASTIC = f"{shlex.quote(sys.executable)} -m neuroplastic.cli"


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


wildcard_constraints:
    run_id="[0-9a-f]{12}",
    experiment=_alternatives(EXPERIMENTS),


def run_config_text(wildcards):
    return PLAN.run_config_text(wildcards.run_id)


def workflow_plan_text(wildcards):
    return PLAN.plan_text()


def figure_spec_text(wildcards):
    return PLAN.figure_spec_text(wildcards.figure)


def run_done(run_id):
    return f"results/runs/{run_id}/done"


def run_dir(wildcards):
    return f"results/runs/{wildcards.run_id}"


def experiment_done_files(wildcards):
    return [run_done(r) for r in PLAN.experiment_run_ids(wildcards.experiment)]


def aggregate_files(experiment):
    base = f"results/aggregate/{NAME}/{experiment}"
    return {
        "curves": f"{base}/curves.parquet",
        "curves_csv": f"{base}/curves.csv",
        "final": f"{base}/final.parquet",
        "final_csv": f"{base}/final.csv",
    }


def figure_aggregate_inputs(wildcards):
    files = []
    for exp in PLAN.figure_experiments(wildcards.figure):
        agg = aggregate_files(exp)
        files += [agg["curves"], agg["final"]]
    return files


def figure_outputs(figure):
    return [f"paper_figures/{NAME}/{figure}{ext}" for ext in suffixes(FIGURES[figure]["kind"])]


def all_outputs():
    files = [f"paper_figures/{NAME}/MANIFEST.json", f"results/tensorboard/{NAME}"]
    for exp in EXPERIMENTS:
        files += list(aggregate_files(exp).values())
    return files


def rendered_files():
    return [f for fig in FIGURES for f in figure_outputs(fig)]


# ---- training resources (max over the experiments that declare a run; runtime grows with each retry) ----
def train_threads(wildcards):
    return PLAN.train[wildcards.run_id]["threads"]


def train_mem_mb(wildcards, attempt):
    return PLAN.train[wildcards.run_id]["mem_mb"]


def train_runtime(wildcards, attempt):
    return PLAN.train[wildcards.run_id]["runtime"] * attempt


def train_gpu(wildcards):
    """GPUs of the run's job. A packed group (cluster) shares them: a string is taken once per group, not summed."""
    gpu = PLAN.train[wildcards.run_id]["gpu"]
    return str(gpu) if gpu and train_group(wildcards) and not workflow.local_exec else gpu


# ---- packing: k runs per GPU (`train.runs_per_gpu`) ----
# Cluster: the runs of one resource class form Snakemake job groups of k (one sbatch job each); every run stays
# its own job inside the group, with its own run directory, checkpoints, `done` and retry. Local execution (a GPU
# workstation) ignores groups: there the `gpu_slots` resource lets k jobs per GPU run at once, and each job pins
# itself to the least loaded GPU (neuroplastic.gpu_slots).
def _train_class(run_id):
    t = PLAN.train[run_id]
    key = "-".join(f"{k}{t[k]}" for k in ("device", "gpu", "threads", "mem_mb", "runtime", "runs_per_gpu"))
    safe_key = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    return f"train-{safe_key}"


PACK_SIZES = {_train_class(r): t["runs_per_gpu"] for r, t in PLAN.train.items() if t["runs_per_gpu"] > 1}


def _request_pack_sizes():
    """Ask Snakemake to merge k disconnected train jobs of a class into one group job (= --group-components).

    Snakemake installs the command line's group settings after this file is parsed, so this runs while the DAG
    is built (from `train_group`); group sizes given on the command line win."""
    settings = workflow.group_settings
    given = dict(settings.group_components)
    if any(g not in given for g in PACK_SIZES):
        settings.group_components = {**PACK_SIZES, **given}


# A GPU run takes SLOT_UNITS // k units of the `gpu_slots` pool (gpus × SLOT_UNITS), so runs with different k share
# the pool exactly (k = 4 runs take 2 of 8 units each, k = 8 runs 1).
SLOT_UNITS = math.lcm(*(t["runs_per_gpu"] for t in PLAN.train.values() if t["gpu"]), 1)
WORKSTATION_GPUS = PLAN.config["train"]["gpus"]
if workflow.local_exec and "gpu_slots" not in workflow.global_resources:
    workflow.register_resource("gpu_slots", WORKSTATION_GPUS * SLOT_UNITS)


def train_group(wildcards):
    rid = wildcards.run_id
    if PLAN.train[rid]["runs_per_gpu"] == 1:
        return None
    _request_pack_sizes()
    return _train_class(rid)


def gpu_slots_of(resources):
    return SLOT_UNITS // resources["runs_per_gpu"] if resources["gpu"] else 0


def train_gpu_slots(wildcards):
    return gpu_slots_of(PLAN.train[wildcards.run_id])


# ---- container ----
def container_digest_file():
    return f"results/container/{CONTAINER['engine']}-{CONTAINER['tag']}.digest"


def container_inputs(wildcards):
    """The image (its digest file, and the .sif for apptainer) is an input of every training job when enabled."""
    if not CONTAINER["enabled"]:
        return {}
    files = {"digest": container_digest_file()}
    if CONTAINER["engine"] == "apptainer":
        files["sif"] = CONTAINER["sif"]
    return files


def container_build_args(wildcards):
    args = []
    if CONTAINER["base_image"]:
        args += ["--base-image", shlex.quote(CONTAINER["base_image"])]
    if CONTAINER["engine"] == "apptainer":
        args += ["--sif", shlex.quote(CONTAINER["sif"])]
    if CONTAINER["build_args"]:
        args.append(CONTAINER["build_args"])
    return " ".join(args)


def container_image_tag(wildcards):
    return shlex.quote(f"{CONTAINER['image']}:{CONTAINER['tag']}")


def container_outputs():
    files = {"digest": container_digest_file()}
    if CONTAINER["engine"] == "apptainer":
        files["sif"] = CONTAINER["sif"]
    return files


def _in_container(args, input):
    """`neuroplastic <args>` on the host, or inside the image (`apptainer exec --nv`, `docker run --gpus all`)."""
    if not CONTAINER["enabled"]:
        return f"{NEUROPLASTIC} {args}"
    # The image records its own git SHA (build arg) and MUJOCO_GL; the job adds the digest it was started from.
    digest = f'"$(cat {shlex.quote(input.digest)})"'
    extra = CONTAINER["run_args"]
    if CONTAINER["engine"] == "apptainer":
        gpus = "--nv " if CONTAINER["gpus"] else ""
        return (
            f'apptainer exec {gpus}--bind "$PWD" --pwd "$PWD" --env NEUROPLASTIC_CONTAINER_DIGEST={digest} '
            f"{extra} {shlex.quote(input.sif)} neuroplastic {args}"
        )
    gpus = "--gpus all " if CONTAINER["gpus"] else ""
    return (
        f'{CONTAINER["engine"]} run --rm {gpus}--user "$(id -u):$(id -g)" -v "$PWD":"$PWD" -w "$PWD" '
        f"-e NEUROPLASTIC_CONTAINER_DIGEST={digest} {extra} {digest} neuroplastic {args}"
    )


def _execution_args(resources, threads, slots):
    args = f"--threads {threads} --device {shlex.quote(resources['device'])} --compile {resources['compile']} --quiet"
    if workflow.local_exec and slots and WORKSTATION_GPUS > 1:
        args += f" --gpus {WORKSTATION_GPUS} --gpu-weight {slots} --gpu-slot-dir results/gpu-slots"
    return args


def train_command(wildcards, input, threads):
    """`neuroplastic train` of one run, on the host or in the image."""
    resources = PLAN.train[wildcards.run_id]
    args = f"train {shlex.quote(input.config)} --out {run_dir(wildcards)} "
    return _in_container(args + _execution_args(resources, threads, train_gpu_slots(wildcards)), input)


# ---- batches: k short runs per job and process (`train.runs_per_job`) ----
# A batch job's outputs are its runs' `done` files, so the DAG sees the same runs as with one job per run; rule
# `train` takes only the runs that are not batched.
TRAIN_BATCHES = PLAN.train_batches()
_BATCHED = {r for ids in TRAIN_BATCHES.values() for r in ids}
UNBATCHED_RUN_ID = _alternatives(sorted(set(PLAN.train) - _BATCHED)) if _BATCHED else "[0-9a-f]{12}"


def batch_resources(batch):
    """The train resources of a batch (one resource class), with runtime for all its runs."""
    ids = TRAIN_BATCHES[batch]
    return {**PLAN.train[ids[0]], "runtime": PLAN.train[ids[0]]["runtime"] * len(ids)}


def batch_config_files(batch):
    return [f"results/configs/{r}.json" for r in TRAIN_BATCHES[batch]]


def batch_done_files(batch):
    return [run_done(r) for r in TRAIN_BATCHES[batch]]


def batch_runtime(batch):
    def runtime(wildcards, attempt):
        return batch_resources(batch)["runtime"] * attempt

    return runtime


def batch_gpu_slots(batch):
    return gpu_slots_of(batch_resources(batch))


def batch_train_command(batch):
    """`neuroplastic train-batch` of the batch's runs (each logs to results/logs/train/<run id>.log)."""

    def command(wildcards, input, threads):
        ids = " ".join(TRAIN_BATCHES[batch])
        args = f"train-batch {ids} --configs results/configs --runs results/runs --logs results/logs/train "
        return _in_container(args + _execution_args(batch_resources(batch), threads, batch_gpu_slots(batch)), input)

    return command


def output_dir(wildcards, output):
    return os.path.dirname(output[0])
