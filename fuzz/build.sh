#!/usr/bin/env bash
# Builds .build/fuzz/glimpse-fuzz: the Glimpse library sources and every harness in fuzz/Harnesses,
# compiled as one module with libFuzzer + AddressSanitizer (coverage on Swift and the C shims; the system
# libjpeg/libpng are not instrumented). Run from anywhere; usage: fuzz/build.sh [OUTDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/.build/fuzz}"
mkdir -p "$out/modules/CImageCodecs" "$out/modules/CGlimpseKernels" "$out/modules/CGlimpseDNNL" "$out/obj"
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
# The matrix-product kernels, with the flags Package.swift gives them (per-function target attributes
# choose the ISA; -ffp-contract=off keeps every path's reduction order identical).
for c in Sources/CGlimpseKernels/*.c; do
    o="$out/obj/kernels_$(basename "${c%.c}").o"
    clang -O3 -ffp-contract=off -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
        -ISources/CGlimpseKernels/include -c "$c" -o "$o"
    objects+=("$o")
done
for c in Sources/CGlimpseDNNL/*.c; do
    o="$out/obj/dnnl_$(basename "${c%.c}").o"
    clang -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
        -ISources/CGlimpseDNNL/include -ISources/CGlimpseKernels/include -c "$c" -o "$o"
    objects+=("$o")
done
# SwiftPM writes these module maps for C targets; swiftc needs them spelled out.
cat > "$out/modules/CImageCodecs/module.modulemap" <<MAP
module CImageCodecs {
    header "$root/Sources/CImageCodecs/include/image_codecs.h"
    export *
}
MAP
cat > "$out/modules/CGlimpseKernels/module.modulemap" <<MAP
module CGlimpseKernels {
    header "$root/Sources/CGlimpseKernels/include/glimpse_kernels.h"
    export *
}
MAP
cat > "$out/modules/CGlimpseDNNL/module.modulemap" <<MAP
module CGlimpseDNNL {
    header "$root/Sources/CGlimpseDNNL/include/glimpse_dnnl.h"
    export *
}
MAP

# Library sources (never the git-ignored stub of unmerged work) + harnesses, one module named Glimpse.
mapfile -t sources < <(find Sources/Glimpse fuzz/Harnesses -name '*.swift' ! -name '_Stub*' | sort)
swiftc -module-name Glimpse -parse-as-library -O -g -sanitize=fuzzer,address \
    -ISources/COpenBLAS -ISources/CLibJPEG -ISources/CLibPNG -I"$out/modules/CImageCodecs" -I"$out/modules/CGlimpseKernels" -I"$out/modules/CGlimpseDNNL" -ISources/CDNNL \
    $(for f in $pc_cflags; do printf -- '-Xcc %s ' "$f"; done) \
    "${sources[@]}" "${objects[@]}" $pc_libs -ldnnl -ldl -o "$out/glimpse-fuzz" 2> >(grep -v 'ld.gold: warning' >&2)
echo "built $out/glimpse-fuzz"
