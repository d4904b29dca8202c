# Entry point of the workflow: experiments → runs (deduplicated by run id) → tidy tables → statistics → every
# figure and table of paper_figures/<name>/.
#   snakemake --profile workflow/profiles/local --configfile config/smoke.yaml     # tiny budgets, CPU
#   snakemake -n --configfile config/paper.yaml                                   # the full paper grid
# Without --configfile the smoke config is used. The config is validated (workflow/schemas/config.schema.yaml)
# and every run is resolved before any job starts. See config/README.md and workflow/profiles/README.md.
from snakemake.utils import min_version

min_version("9.19")  # profile.yaml profiles


# Without --configfile, the smoke config (a second configfile would be merged into the first, key by key).
if not config:

    configfile: f"{workflow.basedir}/config/smoke.yaml"


report: "workflow/report/workflow.rst"


_image = config.get("container") or {}


# Every step's software is the project image (containers/Dockerfile, built by rule container_image). Training
# jobs enter it themselves when `container.enabled` is true; do not add --sdm apptainer (Snakemake would try to
# pull this image before the DAG has built it). Without a container the steps use the current environment.
container: f"docker://{_image.get('image', 'neuroplastic')}:{_image.get('tag', 'latest')}"


include: "workflow/rules/common.smk"
include: "workflow/rules/container.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"


# One DAG at a time on a results directory (a second one is refused; see lock_results_dir in common.smk).
onstart:
    lock_results_dir()


rule all:
    default_target: True
    input:
        all_outputs(),
