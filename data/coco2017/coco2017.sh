#!/usr/bin/env bash
# Download COCO 2017 images and panoptic annotations into this folder:
#
#   data/coco2017/
#     train2017/000000000009.jpg ...           (118,287 images, 18 GB)
#     val2017/000000000139.jpg ...             (5,000 images, 1 GB)
#     annotations/panoptic_train2017.json
#     annotations/panoptic_train2017/000000000009.png ...
#     annotations/panoptic_val2017.json
#     annotations/panoptic_val2017/000000000139.png ...
#
# Usage: bash data/coco2017/coco2017.sh [--no-val] [--keep-zips]
# Re-running skips finished parts. Needs curl or wget, and unzip.
# COCO_BASE_URL overrides the download server (e.g. a local mirror).
set -euo pipefail

BASE_URL="${COCO_BASE_URL:-http://images.cocodataset.org}"
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

unpack() {  # unpack ZIP DEST_DIR
  unzip -q -o "$1" -d "$2"
  if [ "$KEEP_ZIPS" -eq 0 ]; then rm -f "$1"; fi
}

splits=(train2017)
if [ "$WITH_VAL" -eq 1 ]; then splits+=(val2017); fi

# images
for split in "${splits[@]}"; do
  if [ -f "$split/.done" ]; then
    echo "$split: already there"; continue
  fi
  echo "$split: downloading images"
  fetch "$BASE_URL/zips/$split.zip" "$split.zip"
  unpack "$split.zip" .
  touch "$split/.done"
done

# panoptic annotations: one zip with the JSONs and one inner zip of PNGs
# per split (annotations/panoptic_<split>.zip -> panoptic_<split>/*.png)
mkdir -p annotations
if [ ! -f annotations/panoptic_train2017.json ]; then
  echo "panoptic annotations: downloading"
  fetch "$BASE_URL/annotations/panoptic_annotations_trainval2017.zip" \
    panoptic_annotations_trainval2017.zip
  unpack panoptic_annotations_trainval2017.zip .
fi
for split in train2017 val2017; do
  inner="annotations/panoptic_$split.zip"
  if [ -f "$inner" ] && [ ! -f "annotations/panoptic_$split/.done" ]; then
    echo "panoptic_$split: unpacking PNGs"
    unzip -q -o "$inner" -d annotations
    touch "annotations/panoptic_$split/.done"
    if [ "$KEEP_ZIPS" -eq 0 ]; then rm -f "$inner"; fi
  fi
done

echo "COCO 2017 ready in $(pwd)"
for split in "${splits[@]}"; do
  echo "  $split: $(find "$split" -name '*.jpg' | wc -l) images," \
    "$(find "annotations/panoptic_$split" -name '*.png' 2>/dev/null | wc -l) panoptic PNGs"
done
