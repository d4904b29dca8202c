# Declared runs of one experiment → tidy tables. Reads only the runs the experiment table lists; a run without
# `done` or with a truncated/corrupt log is an error naming it (never averaged over fewer seeds).


rule workflow_plan:
    output:
        f"results/plans/{NAME}.json",
    log:
        f"results/logs/plans/{NAME}.log",
    params:
        text=workflow_plan_text,
    localrule: True
    shell:
        "printf '%s' {params.text:q} > {output} 2> {log}"


# Every experiment's member table, from the plan file (the validated config with its defaults: planning it again
# gives the same runs), in one process: planning costs seconds, so one job per experiment paid it per experiment.
rule experiment_tables:
    input:
        f"results/plans/{NAME}.json",
    output:
        [f"results/tables/{NAME}/{experiment}.json" for experiment in EXPERIMENTS],
    log:
        f"results/logs/tables/{NAME}.log",
    params:
        tables=output_dir,
        schema=str(SCHEMA),
        neuroplastic=NEUROPLASTIC,
    localrule: True
    shell:
        "{params.neuroplastic} plan --configfile {input} --schema {params.schema} --tables-dir {params.tables} "
        "> {log} 2>&1"


rule aggregate:
    input:
        table=f"results/tables/{NAME}/{{experiment}}.json",
        runs=experiment_done_files,
    output:
        curves=f"results/aggregate/{NAME}/{{experiment}}/curves.parquet",
        curves_csv=f"results/aggregate/{NAME}/{{experiment}}/curves.csv",
        final=f"results/aggregate/{NAME}/{{experiment}}/final.parquet",
        final_csv=f"results/aggregate/{NAME}/{{experiment}}/final.csv",
    log:
        f"results/logs/aggregate/{NAME}/{{experiment}}.log",
    params:
        out=f"results/aggregate/{NAME}/{{experiment}}",
        final_fraction=PLAN.config["stats"]["final_fraction"],
        neuroplastic=NEUROPLASTIC,
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{params.neuroplastic} aggregate --table {input.table} --runs results/runs --out {params.out} "
        "--final-fraction {params.final_fraction} > {log} 2>&1"


# Readable names for TensorBoard while the grid trains: results/tensorboard/<name>/<experiment>/<variant>/<env>/
# seed<k> → results/runs/<run_id> (links made before the runs start; TensorBoard picks each run up as it appears).
rule tensorboard_tree:
    input:
        f"results/plans/{NAME}.json",
    output:
        directory(f"results/tensorboard/{NAME}"),
    log:
        f"results/logs/tensorboard/{NAME}.log",
    params:
        schema=str(SCHEMA),
        neuroplastic=NEUROPLASTIC,
    priority: 50
    localrule: True
    shell:
        "{params.neuroplastic} tensorboard --configfile {input} --schema {params.schema} --runs results/runs "
        "--out results/tensorboard > {log} 2>&1"
