#!/usr/bin/env bash
# Make a Debian 12 base image locally, for machines that cannot pull from Docker Hub (CI here):
# debootstrap a minimal bookworm root file system and `podman import` it.
#
#   containers/local-base.sh [--image localhost/debian-bookworm:min] [--cache DIR] [--mirror URL]
#   containers/build.sh --engine podman --base-image localhost/debian-bookworm:min ...
#
# Does nothing when the image already exists. The root file system is cached as a tarball under --cache
# (default /var/tmp/neuroplastic-base), so a machine that lost its podman storage re-imports in seconds.
# The mirror defaults to the first Debian mirror in the host's apt sources (plain HTTP works behind the TLS
# proxy of these machines), else http://deb.debian.org/debian. Needs root, debootstrap and podman.
set -euo pipefail

IMAGE=localhost/debian-bookworm:min
CACHE=/var/tmp/neuroplastic-base
MIRROR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --image) IMAGE=${2:?}; shift 2 ;;
        --cache) CACHE=${2:?}; shift 2 ;;
        --mirror) MIRROR=${2:?}; shift 2 ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "containers/local-base.sh: error: unknown option '$1'" >&2; exit 2 ;;
    esac
done

if podman image exists "$IMAGE"; then
    echo "containers/local-base.sh: $IMAGE already exists" >&2
    exit 0
fi

host_mirror() {
    # deb822 (`URIs: http://.../debian`) and one-line (`deb http://.../debian bookworm main`) sources.
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2> /dev/null \
        | grep -v '^\s*#' | grep -o -E '(https?|ftp)://[^ ]*/debian/?( |$)' | grep -v security | head -1 | tr -d ' '
}
[ -n "$MIRROR" ] || MIRROR=$(host_mirror || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian

mkdir -p "$CACHE"
TARBALL="$CACHE/bookworm-minbase.tar"
if [ ! -s "$TARBALL" ]; then
    ROOTFS=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$ROOTFS"' EXIT
    echo "containers/local-base.sh: debootstrap bookworm from $MIRROR" >&2
    debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
fi
podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" > /dev/null
echo "containers/local-base.sh: imported $IMAGE" >&2
