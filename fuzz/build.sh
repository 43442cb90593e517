#!/usr/bin/env bash
# Builds .build/fuzz/glimpse-fuzz: the Glimpse library sources and every harness in fuzz/Harnesses,
# compiled as one module with libFuzzer + AddressSanitizer (coverage on Swift and the C shims; the system
# libjpeg/libpng are not instrumented). Run from anywhere; usage: fuzz/build.sh [OUTDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/.build/fuzz}"
mkdir -p "$out/modules/CImageCodecs" "$out/obj"
cd "$root"

pc_cflags="$(pkg-config --cflags libjpeg libpng openblas)"
pc_libs="$(pkg-config --libs libjpeg libpng openblas)"

# The C shims, instrumented (fuzzer-no-link: coverage without a second main) and under UBSan too
# (its handlers are part of the AddressSanitizer runtime swiftc links).
objects=()
for c in Sources/CImageCodecs/*.c; do
    o="$out/obj/$(basename "${c%.c}").o"
    clang -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined $pc_cflags -ISources/CImageCodecs/include -c "$c" -o "$o"
    objects+=("$o")
done
# SwiftPM writes this module map for a C target; swiftc needs it spelled out.
cat > "$out/modules/CImageCodecs/module.modulemap" <<MAP
module CImageCodecs {
    header "$root/Sources/CImageCodecs/include/image_codecs.h"
    export *
}
MAP

# Library sources (never the git-ignored stub of unmerged work) + harnesses, one module named Glimpse.
mapfile -t sources < <(find Sources/Glimpse fuzz/Harnesses -name '*.swift' ! -name '_Stub*' | sort)
swiftc -module-name Glimpse -parse-as-library -O -g -sanitize=fuzzer,address \
    -ISources/COpenBLAS -ISources/CLibJPEG -ISources/CLibPNG -I"$out/modules/CImageCodecs" \
    $(for f in $pc_cflags; do printf -- '-Xcc %s ' "$f"; done) \
    "${sources[@]}" "${objects[@]}" $pc_libs -o "$out/glimpse-fuzz" 2> >(grep -v 'ld.gold: warning' >&2)
echo "built $out/glimpse-fuzz"
