# Build the image with the engine the config names and record its digest. The build itself is
# containers/build.sh; training jobs take the digest file (and the .sif) as inputs when container.enabled.


rule container_image:
    output:
        **container_outputs(),
    log:
        f"results/logs/container/{CONTAINER['engine']}-{CONTAINER['tag']}.log",
    params:
        engine=CONTAINER["engine"],
        tag=container_image_tag,
        extra=container_build_args,
        script=BUILD_SCRIPT,
    localrule: True
    shell:
        "{params.script} --engine {params.engine} --tag {params.tag} --digest-file {output.digest} "
        "{params.extra} > {log} 2>&1"
