#!/usr/bin/env bash
# Makes the images berth's tests and demo need, when they are absent.
# No registry is reachable where berth is developed, so nothing is pulled:
#   busybox:berth-test    from Debian's busybox-static, through `docker import`
#   debian:bookworm-slim  from `debootstrap --variant=minbase bookworm`
# Usage: scripts/test-images.sh [busybox|debian|all]   (default: all)
set -euo pipefail

want=${1:-all}

need() {
	local tool=$1 pkg=$2
	command -v "$tool" >/dev/null 2>&1 && return 0
	echo "installing $pkg (for $tool)" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

make_busybox() {
	local tag=busybox:berth-test
	have_image "$tag" && return 0
	need busybox busybox-static
	local bb; bb=$(command -v busybox)
	local dir; dir=$(mktemp -d)
	trap 'rm -rf "$dir"' RETURN
	mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp" "$dir/root" "$dir/proc" "$dir/sys" "$dir/dev"
	chmod 1777 "$dir/tmp"
	cp "$bb" "$dir/bin/busybox"
	for applet in $("$bb" --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$dir/etc/passwd"
	printf 'root:x:0:\n' >"$dir/etc/group"
	tar -C "$dir" -c . | docker import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$tag" >/dev/null
	echo "made $tag" >&2
}

make_debian() {
	local tag=debian:bookworm-slim
	have_image "$tag" && return 0
	need debootstrap debootstrap
	local dir; dir=$(mktemp -d)
	trap 'rm -rf "$dir"' RETURN
	echo "debootstrap bookworm into a temporary dir (about a minute)" >&2
	debootstrap --variant=minbase bookworm "$dir" >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; rm -f "$dir.log"; return 1; }
	rm -f "$dir.log"
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
	tar -C "$dir" -c . | docker import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' - "$tag" >/dev/null
	echo "made $tag" >&2
}

case $want in
busybox) make_busybox ;;
debian) make_debian ;;
all) make_busybox; make_debian ;;
*) echo "usage: $0 [busybox|debian|all]" >&2; exit 2 ;;
esac
