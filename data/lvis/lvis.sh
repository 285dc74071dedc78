#!/usr/bin/env bash
# Download the LVIS v1 annotations into this folder:
#
#   data/lvis/lvis_v1_train.json   (1.27 M instances on COCO train2017 images)
#   data/lvis/lvis_v1_val.json     (on COCO train2017 + val2017 images)
#
# LVIS has no images of its own: LVISDataset finds each image through its
# coco_url (.../train2017/000000391895.jpg -> data/coco2017/train2017/...),
# so run data/coco2017/coco2017.sh as well.
#
# Usage: bash data/lvis/lvis.sh [--no-val] [--keep-zips]
# Re-running skips finished parts. Needs curl or wget, and unzip.
# LVIS_BASE_URL overrides the download server (e.g. a local mirror).
set -euo pipefail

BASE_URL="${LVIS_BASE_URL:-https://dl.fbaipublicfiles.com/LVIS}"
WITH_VAL=1
KEEP_ZIPS=0
for arg in "$@"; do
  case "$arg" in
    --no-val) WITH_VAL=0 ;;
    --keep-zips) KEEP_ZIPS=1 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")"

fetch() {  # fetch URL FILE: resumable download
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 -C - -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -c -O "$2" "$1"
  else
    echo "need curl or wget" >&2; exit 1
  fi
}

splits=(train)
if [ "$WITH_VAL" -eq 1 ]; then splits+=(val); fi

for split in "${splits[@]}"; do
  json="lvis_v1_$split.json"
  if [ -f "$json" ]; then
    echo "$json: already there"; continue
  fi
  echo "$json: downloading"
  fetch "$BASE_URL/$json.zip" "$json.zip"
  unzip -q -o "$json.zip" -d .
  if [ "$KEEP_ZIPS" -eq 0 ]; then rm -f "$json.zip"; fi
done

echo "LVIS v1 ready in $(pwd): ${splits[*]}"
if [ ! -d ../coco2017/train2017 ]; then
  echo "note: COCO images missing, run data/coco2017/coco2017.sh" >&2
fi
