# One job = one run = one `neuroplastic train` call. A run's id is the hash of its resolved config, so a run
# that several experiments declare is trained once. Only `done` is an output: the run directory's other files
# and the checkpoints (results/ckpt/<id>, not an output) survive a failed or killed job, and the retry resumes.


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
        "{params.command} > {log} 2>&1"
