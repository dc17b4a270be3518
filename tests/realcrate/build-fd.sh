#!/bin/bash
# Builds fd (Debian's fd-find source package) in release with full debug info, offline, against
# the crates Debian ships as librust-*-dev packages in /usr/share/cargo/registry: a real Rust
# program nobody here wrote, for tests/realcrate. Idempotent: once built, a second run finds
# every crate in place (no apt) and lets cargo find nothing to do.
#
#   tests/realcrate/build-fd.sh [OUT_DIR]     (root the first time: it installs packages)
#
# Leaves OUT_DIR/fd (the binary, symbols kept) and OUT_DIR/fd.version (source package version,
# cargo version). OUT_DIR defaults to tests/realcrate/build.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
mkdir -p "$out"
out=$(cd "$out" && pwd)
package=rust-fd-find
sources_file=/etc/apt/sources.list.d/pytest-uprobe-deb-src.sources

as_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "build-fd.sh: $* needs root; run as root (sudo make realcrate)" >&2
        exit 1
    fi
    "$@"
}

has_deb_src() {
    [ -n "$(apt-cache showsrc "$package" 2>/dev/null | head -1)" ]
}

# 1. The source package, unpacked once (apt-get source applies Debian's patches).
source_dir=$(ls -d "$out"/rust-fd-find-*/ 2>/dev/null | head -1 || true)
if [ -z "$source_dir" ] || [ ! -f "$source_dir/.pytest-uprobe-prepared" ]; then
    if ! has_deb_src; then
        # Debian 12 images list binary packages only: add the matching source lines.
        echo "build-fd.sh: enabling Debian source packages in $sources_file"
        as_root tee "$sources_file" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        as_root apt-get update -qq
    fi
    command -v dpkg-source >/dev/null || as_root apt-get install -y -qq dpkg-dev >/dev/null
    rm -rf "$out"/rust-fd-find-*/
    (cd "$out" && apt-get source -qq "$package" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
    source_dir=$(ls -d "$out"/rust-fd-find-*/ | head -1)
    # Debian builds without the tests, whose dev-dependencies it does not package; cargo
    # resolves them all the same, so drop them. Cargo.lock pins crates.io versions that the
    # Debian registry does not hold: cargo makes a new one from what is there.
    awk '/^\[/ { skip = ($0 ~ /^\[dev-dependencies/) } !skip' "$source_dir/Cargo.toml" \
        >"$source_dir/Cargo.toml.new"
    mv "$source_dir/Cargo.toml.new" "$source_dir/Cargo.toml"
    rm -f "$source_dir/Cargo.lock"
    touch "$source_dir/.pytest-uprobe-prepared"
fi

# 2. Its build dependencies: the librust-*-dev crates only. `apt-get build-dep` would also
# install Debian's own rustc and cargo (1.63) into /usr/bin, where they could shadow the
# toolchain the rest of the suite builds with; the crates alone depend on neither.
cargo_offline=(--offline
    --config 'source.crates-io.replace-with="debian"'
    --config 'source.debian.directory="/usr/share/cargo/registry"')
if ! (cd "$source_dir" && cargo generate-lockfile "${cargo_offline[@]}" >/dev/null 2>&1); then
    crates=$(sed -n '/^Build-Depends:/,/^[A-Z][A-Za-z-]*:/p' "$source_dir/debian/control" |
        grep -o 'librust-[a-z0-9.+-]*-dev' | sort -u)
    echo "build-fd.sh: installing the crates $package builds with:" $crates
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $crates >/dev/null
fi

# 3. Release, full debug info, symbols kept; crates from Debian's registry only, offline.
start=$(date +%s)
(
    cd "$source_dir"
    CARGO_PROFILE_RELEASE_DEBUG=true CARGO_PROFILE_RELEASE_STRIP=false \
        CARGO_TARGET_DIR="$out/target" \
        cargo build --release "${cargo_offline[@]}" >"$out/cargo.log" 2>&1 || { cat "$out/cargo.log" >&2; exit 1; }
)  # fd's own warnings (rustc is newer than its code) stay in cargo.log
install -C -m 755 "$out/target/release/fd" "$out/fd"
version=$(dpkg-parsechangelog -l "$source_dir/debian/changelog" -S Version)
printf '%s %s\n%s\n' "$package" "$version" "$(cargo --version)" >"$out/fd.version"
echo "build-fd.sh: $out/fd ($package $version) ready after $(($(date +%s) - start)) s of cargo"
