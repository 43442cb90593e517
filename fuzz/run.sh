#!/usr/bin/env bash
# Runs one harness: fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
# Targets: jpeg png exif safetensors pytorch config bpe resume. The corpus grows in .build/fuzz/corpus/TARGET
# (kept between runs); seeds come from the test fixtures and Tests/GlimpseTests/Fixtures/regressions.
# A crash leaves its input in .build/fuzz/artifacts/TARGET/ and makes this script fail.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="$1"; seconds="${2:-60}"; shift 2 || shift $#
work="${FUZZ_WORK:-$root/.build/fuzz}"
fx="$root/Tests/GlimpseTests/Fixtures"
seeds="$work/seeds/$target"; corpus="$work/corpus/$target"; artifacts="$work/artifacts/$target"
rm -rf "$seeds"; mkdir -p "$seeds" "$corpus" "$artifacts"
copy() { for f in "$@"; do [ -f "$f" ] && cp "$f" "$seeds/$(echo "${f#$fx/}" | tr / _)"; done; return 0; }
shopt -s nullglob
flags=()
case "$target" in
  jpeg) copy "$fx"/images/*.jpg ;;
  png) copy "$fx"/images/*.png "$fx"/models/images/*.png ;;
  exif)
    copy "$fx"/images/*orientation*.jpg "$fx"/images/jpeg_exif_without_orientation.jpg
    # The bare Exif blocks (TIFF header onwards) of those files, for EXIFOrientation.fromEXIF.
    command -v python3 >/dev/null || echo "(no python3: exif seeds are the JPEG files only)"
    command -v python3 >/dev/null && for f in "$fx"/images/*orientation*.jpg; do
      python3 - "$f" "$seeds/tiff_$(basename "$f").bin" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
i = data.find(b"Exif\x00\x00")
if i >= 0:
    n = int.from_bytes(data[i - 2:i], "big") - 2
    open(sys.argv[2], "wb").write(data[i + 6:i + n])
PY
    done ;;
  safetensors)
    copy "$fx"/safetensors/*.safetensors
    flags+=(-dict="$root/fuzz/json.dict" -max_len=16384) ;;
  pytorch)
    copy "$fx"/pytorch/*.bin "$fx"/pytorch/hostile/*.bin
    flags+=(-max_len=400000) ;;
  config)
    copy "$fx"/models/*/config.json "$fx"/models/*/preprocessor_config.json "$fx"/models/*/generation_config.json
    flags+=(-dict="$root/fuzz/json.dict") ;;
  bpe)
    for d in "$fx"/models/vit_gpt2_* "$fx"/tokenizers/gpt2-vocab-merges; do
      [ -f "$d/vocab.json" ] && { cat "$d/vocab.json"; printf '\0'; cat "$d/merges.txt"; } > "$seeds/$(basename "$d").bin"
    done
    flags+=(-dict="$root/fuzz/json.dict") ;;
  resume) copy "$root"/fuzz/seeds/resume/*; flags+=(-dict="$root/fuzz/json.dict") ;;
  *) echo "unknown target '$target' (jpeg png exif safetensors pytorch config bpe resume)" >&2; exit 2 ;;
esac
copy "$fx"/regressions/"$target"-*
echo "fuzz $target: ${seconds}s, $(ls "$seeds" | wc -l) seeds, corpus $(ls "$corpus" | wc -l) files"
GLIMPSE_FUZZ_TARGET="$target" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" \
  "$work/glimpse-fuzz" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
  -artifact_prefix="$artifacts/" "${flags[@]}" "$@" "$corpus" "$seeds"
