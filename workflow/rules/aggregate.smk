# Declared runs of one experiment → tidy tables. Reads only the runs the experiment table lists; a run without
# `done` or with a truncated/corrupt log is an error naming it (never averaged over fewer seeds).


rule experiment_table:
    output:
        f"results/tables/{NAME}/{{experiment}}.json",
    log:
        f"results/logs/tables/{NAME}/{{experiment}}.log",
    params:
        text=experiment_table_text,
    localrule: True
    run:
        write_text_output(output, log, params.text)


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
