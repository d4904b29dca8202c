#!/usr/bin/env bash
# Build the neuroplastic image with docker, podman or apptainer and write its digest (sha256:...) to a file.
#
#   containers/build.sh --engine docker|podman|apptainer --tag TAG --digest-file FILE
#                       [--base-image IMG] [--sif PATH] [--target STAGE] [--torch-index-url URL]
#                       [--ca-cert FILE] [--wheels DIR] [--build-arg K=V ...] [-- EXTRA ENGINE ARGS...]
#
# docker/podman: builds containers/Dockerfile (context: the repository root) as TAG; the digest is the image
#   id (sha256 of the image config), which is what `docker run`/`podman run` resolve TAG to locally.
# apptainer: builds a .sif. With docker or podman on the machine the OCI image is built first (as TAG) and
#   converted (`apptainer build x.sif docker-archive://img.tar`), so both engines run the identical recipe;
#   without them, containers/neuroplastic.def is built directly. The .sif goes to --sif PATH (default: TAG if
#   it ends in .sif, else results/container/neuroplastic.sif); the digest is the sha256 of the .sif file.
#
# --ca-cert FILE  (podman/apptainer-via-podman) mounts a CA bundle into the build and points pip at it, for
#                 networks behind a TLS-intercepting proxy. Not kept in the image.
# --wheels DIR    (podman) mounts DIR as an extra pip find-links directory (e.g. a local torch wheel).
# Unknown options, and everything after `--`, are passed to the engine's build command unchanged.
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
die() {
    echo "containers/build.sh: error: $*" >&2
    exit 2
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINE="" TAG="" DIGEST_FILE="" BASE_IMAGE="" SIF="" TARGET="" TORCH_INDEX_URL="" CA_CERT="" WHEELS=""
BUILD_ARGS=()
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --engine) ENGINE=${2:?--engine needs a value}; shift 2 ;;
        --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
        --digest-file) DIGEST_FILE=${2:?--digest-file needs a value}; shift 2 ;;
        --base-image) BASE_IMAGE=${2:?--base-image needs a value}; shift 2 ;;
        --sif) SIF=${2:?--sif needs a value}; shift 2 ;;
        --target) TARGET=${2:?--target needs a value}; shift 2 ;;
        --torch-index-url) TORCH_INDEX_URL=${2:?--torch-index-url needs a value}; shift 2 ;;
        --ca-cert) CA_CERT=${2:?--ca-cert needs a value}; shift 2 ;;
        --wheels) WHEELS=${2:?--wheels needs a value}; shift 2 ;;
        --build-arg) BUILD_ARGS+=("${2:?--build-arg needs K=V}"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; EXTRA+=("$@"); break ;;
        *) EXTRA+=("$1"); shift ;;
    esac
done

case "$ENGINE" in
    docker | podman | apptainer) ;;
    "") die "--engine is required (docker, podman or apptainer)" ;;
    *) die "--engine '$ENGINE' is not one of docker, podman, apptainer" ;;
esac
[ -n "$TAG" ] || die "--tag is required"
[ -n "$DIGEST_FILE" ] || die "--digest-file is required"
if [ -n "$CA_CERT" ] && [ ! -r "$CA_CERT" ]; then die "--ca-cert '$CA_CERT' is not a readable file"; fi
if [ -n "$WHEELS" ] && [ ! -d "$WHEELS" ]; then die "--wheels '$WHEELS' is not a directory"; fi

need() { command -v "$1" > /dev/null || die "--engine $ENGINE needs '$1', which is not on PATH"; }

GIT_SHA=$(git -C "$REPO" rev-parse HEAD 2> /dev/null || echo unknown)
if [ "$GIT_SHA" != unknown ] && [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2> /dev/null)" ]; then
    GIT_SHA="$GIT_SHA-dirty"
fi

# Build the OCI image with docker or podman; prints nothing, leaves the image id in $IMAGE_ID.
build_oci() {
    local tool=$1
    local args=(build -f "$REPO/containers/Dockerfile" -t "$TAG" --build-arg "GIT_SHA=$GIT_SHA")
    [ -n "$BASE_IMAGE" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
    [ -n "$TORCH_INDEX_URL" ] && args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
    [ -n "$TARGET" ] && args+=(--target "$TARGET")
    if [ -n "$CA_CERT" ] || [ -n "$WHEELS" ]; then
        # docker build has no bind mounts; these two exist for podman/buildah.
        [ "$tool" = podman ] || die "--ca-cert/--wheels need podman (docker build cannot mount host files)"
        [ -n "$CA_CERT" ] && args+=(-v "$(realpath "$CA_CERT"):/host-ca.crt:ro" --build-arg PIP_CERT=/host-ca.crt)
        [ -n "$WHEELS" ] && args+=(-v "$(realpath "$WHEELS"):/wheels:ro" --build-arg PIP_FIND_LINKS=/wheels)
    fi
    if [ "$tool" = podman ]; then
        # chroot isolation builds without user namespaces or a container runtime (works in unprivileged
        # CI containers); override with PODMAN_ISOLATION=oci where the full runtime is available.
        args+=(--isolation "${PODMAN_ISOLATION:-chroot}")
    fi
    for a in "${BUILD_ARGS[@]}"; do args+=(--build-arg "$a"); done
    local iidfile
    iidfile=$(mktemp)
    args+=(--iidfile "$iidfile" "${EXTRA[@]}" "$REPO")
    echo "+ $tool ${args[*]}" >&2
    "$tool" "${args[@]}" >&2
    IMAGE_ID=$(tr -d '[:space:]' < "$iidfile")
    rm -f "$iidfile"
    case "$IMAGE_ID" in
        sha256:*) ;;
        "") die "$tool build wrote no image id" ;;
        *) IMAGE_ID="sha256:$IMAGE_ID" ;;
    esac
}

write_digest() {
    mkdir -p "$(dirname "$DIGEST_FILE")"
    local tmp="$DIGEST_FILE.tmp.$$"
    printf '%s\n' "$1" > "$tmp"
    mv "$tmp" "$DIGEST_FILE"
    echo "containers/build.sh: $ENGINE image $2, digest $1 -> $DIGEST_FILE" >&2
}

case "$ENGINE" in
    docker | podman)
        need "$ENGINE"
        build_oci "$ENGINE"
        write_digest "$IMAGE_ID" "$TAG"
        ;;
    apptainer)
        need apptainer
        if [ -z "$SIF" ]; then
            case "$TAG" in
                *.sif) SIF=$TAG ;;
                *) SIF=results/container/neuroplastic.sif ;;
            esac
        fi
        mkdir -p "$(dirname "$SIF")"
        SIF=$(realpath -m "$SIF")
        oci_tool=""
        for t in podman docker; do
            if [ -z "${APPTAINER_FROM_DEF:-}" ] && command -v "$t" > /dev/null; then oci_tool=$t && break; fi
        done
        if [ -n "$oci_tool" ]; then
            # Same recipe as docker/podman: build the OCI image, save it, convert it.
            case "$TAG" in *.sif) TAG=localhost/neuroplastic:apptainer-build ;; esac
            build_oci "$oci_tool"
            archive=$(mktemp --suffix=.tar)
            trap 'rm -f "$archive"' EXIT
            rm -f "$archive"
            if [ "$oci_tool" = podman ]; then
                podman save --format docker-archive -o "$archive" "$TAG" >&2
            else
                docker save -o "$archive" "$TAG" >&2
            fi
            apptainer build --force "$SIF" "docker-archive://$archive" >&2
        else
            # No OCI engine: build from the Apptainer definition (same steps as the Dockerfile).
            def_args=(--build-arg "GIT_SHA=$GIT_SHA")
            [ -n "$BASE_IMAGE" ] && def_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
            [ -n "$TORCH_INDEX_URL" ] && def_args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
            for a in "${BUILD_ARGS[@]}"; do def_args+=(--build-arg "$a"); done
            [ -z "$CA_CERT$WHEELS" ] || die "--ca-cert/--wheels are not supported when building from the .def"
            (cd "$REPO" && apptainer build --force "${def_args[@]}" "${EXTRA[@]}" "$SIF" containers/neuroplastic.def) >&2
        fi
        write_digest "sha256:$(sha256sum "$SIF" | cut -d' ' -f1)" "$SIF"
        ;;
esac
