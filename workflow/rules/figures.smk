# Aggregated tables → figure data (rliable statistics, seeded) → PDF+PNG figures and CSV+Markdown+LaTeX tables
# in paper_figures/<name>/, plus MANIFEST.json with the sha256 of every file. Rendering is deterministic.


wildcard_constraints:
    figure=_alternatives(list(FIGURES)),


rule figure_spec:
    output:
        f"results/figspecs/{NAME}/{{figure}}.json",
    log:
        f"results/logs/figspecs/{NAME}/{{figure}}.log",
    params:
        text=figure_spec_text,
    localrule: True
    shell:
        "printf '%s' {params.text:q} > {output} 2> {log}"


rule figure_data:
    input:
        spec=f"results/figspecs/{NAME}/{{figure}}.json",
        aggregates=figure_aggregate_inputs,
    output:
        f"results/figdata/{NAME}/{{figure}}.csv",
    log:
        f"results/logs/figures/{NAME}/{{figure}}.data.log",
    params:
        aggregates=f"results/aggregate/{NAME}",
        neuroplastic=NEUROPLASTIC,
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{params.neuroplastic} figures data --spec {input.spec} --aggregates {params.aggregates} "
        "--out {output} > {log} 2>&1"


rule render_figure:
    input:
        spec=f"results/figspecs/{NAME}/{{figure}}.json",
        data=f"results/figdata/{NAME}/{{figure}}.csv",
    output:
        pdf=f"paper_figures/{NAME}/{{figure}}.pdf",
        png=report(
            f"paper_figures/{NAME}/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
    log:
        f"results/logs/figures/{NAME}/{{figure}}.render.log",
    wildcard_constraints:
        figure=_alternatives(FIGURE_NAMES),
    params:
        prefix=f"paper_figures/{NAME}/{{figure}}",
        neuroplastic=NEUROPLASTIC,
    localrule: True
    shell:
        "{params.neuroplastic} figures render --spec {input.spec} --data {input.data} --out {params.prefix} "
        "> {log} 2>&1"


rule render_table:
    input:
        spec=f"results/figspecs/{NAME}/{{figure}}.json",
        data=f"results/figdata/{NAME}/{{figure}}.csv",
    output:
        csv=report(
            f"paper_figures/{NAME}/{{figure}}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{figure}", "format": "csv"},
        ),
        md=f"paper_figures/{NAME}/{{figure}}.md",
        tex=f"paper_figures/{NAME}/{{figure}}.tex",
    log:
        f"results/logs/figures/{NAME}/{{figure}}.render.log",
    wildcard_constraints:
        figure=_alternatives(TABLE_NAMES),
    params:
        prefix=f"paper_figures/{NAME}/{{figure}}",
        neuroplastic=NEUROPLASTIC,
    localrule: True
    shell:
        "{params.neuroplastic} figures render --spec {input.spec} --data {input.data} --out {params.prefix} "
        "> {log} 2>&1"


rule figures_manifest:
    input:
        rendered_files(),
    output:
        f"paper_figures/{NAME}/MANIFEST.json",
    log:
        f"results/logs/figures/{NAME}/MANIFEST.log",
    params:
        directory=output_dir,
        neuroplastic=NEUROPLASTIC,
    localrule: True
    shell:
        "{params.neuroplastic} figures manifest {params.directory} {input} > {log} 2>&1"
