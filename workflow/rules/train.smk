# One job = one run = one `neuroplastic train` call (or, with `train.runs_per_job: k`, k runs = one
# `neuroplastic train-batch` call). A run's id is the hash of its resolved config, so a run
# that several experiments declare is trained once. Only `done` is an output: the run directory's other files
# and the checkpoints (results/ckpt/<id>, not an output) survive a failed or killed job, and the retry resumes.
# The shell `exec`s the trainer: a SIGTERM sent to the job's processes (SLURM's time limit, preemption, the
# profile's --signal) then reaches a trainer whose parent is Snakemake, not a shell that would die first and make
# the job end before the trainer's checkpoint is written.


rule run_config:
    output:
        "results/configs/{run_id}.json",
    log:
        "results/logs/configs/{run_id}.log",
    params:
        text=run_config_text,
    localrule: True
    shell:
        "printf '%s' {params.text:q} > {output} 2> {log}"


rule train:
    input:
        unpack(container_inputs),
        config="results/configs/{run_id}.json",
    output:
        done="results/runs/{run_id}/done",
    log:
        "results/logs/train/{run_id}.log",
    wildcard_constraints:
        run_id=UNBATCHED_RUN_ID,
    benchmark:
        "results/benchmarks/train/{run_id}.tsv"
    threads: train_threads
    group:
        train_group
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        gpu=train_gpu,
        gpu_slots=train_gpu_slots,
    params:
        command=train_command,
    shell:
        "exec {params.command} > {log} 2>&1"


# `train.runs_per_job: k`: k runs of one resource class per job, trained one after another by one process.
for _batch in TRAIN_BATCHES:

    rule:
        name:
            _batch
        input:
            unpack(container_inputs),
            configs=batch_config_files(_batch),
        output:
            batch_done_files(_batch),
        log:
            f"results/logs/train/{_batch}.log",
        benchmark:
            f"results/benchmarks/train/{_batch}.tsv"
        threads: batch_resources(_batch)["threads"]
        resources:
            mem_mb=batch_resources(_batch)["mem_mb"],
            runtime=batch_runtime(_batch),
            gpu=batch_resources(_batch)["gpu"],
            gpu_slots=batch_gpu_slots(_batch),
        params:
            command=batch_train_command(_batch),
        shell:
            "exec {params.command} > {log} 2>&1"
