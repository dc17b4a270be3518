#!/usr/bin/env bash
# Rebuilds the small checked-in Rust binaries the parser tests read (no std, no libc: a few
# KB each, with their own DWARF). The tests need neither this script nor a compiler.
set -euo pipefail
cd "$(dirname "$0")"
common=(--edition 2021 -C panic=abort -C debuginfo=2 -C link-arg=-nostartfiles
        -C link-arg=-static -C relocation-model=static)
rustc "${common[@]}" -C opt-level=0 -C dwarf-version=4 -o tiny-O0-dwarf4 tiny.rs
rustc "${common[@]}" -C opt-level=1 -C dwarf-version=4 -o tiny-O1-dwarf4 tiny.rs
rustc "${common[@]}" -C opt-level=1 -C dwarf-version=5 -o tiny-O1-dwarf5 tiny.rs
for exe in tiny-O0-dwarf4 tiny-O1-dwarf4 tiny-O1-dwarf5; do
    status=0; "./$exe" || status=$?
    [ "$status" = 48 ] || { echo "$exe exited $status, not 48"; exit 1; }
done
