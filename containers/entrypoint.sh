#!/bin/sh
# Entrypoint of the neuroplastic image.
#   <image> neuroplastic train cfg.yaml --out run   runs the command as given
#   <image> train cfg.yaml --out run                the same: a bare subcommand is passed to `neuroplastic`
#   <image> --help                                  options go to `neuroplastic` too
#   <image> bash                                    any other command runs unchanged
set -e
if [ "$#" -eq 0 ]; then
    set -- neuroplastic --help
fi
case "$1" in
    -*|train|resume|validate|schema) set -- neuroplastic "$@" ;;
esac
# Under `docker run -u <uid>` the uid may have no home; MuJoCo, matplotlib and torch want a writable one.
if [ ! -w "${HOME:-/nonexistent}" ]; then
    export HOME=/tmp
fi
exec "$@"
