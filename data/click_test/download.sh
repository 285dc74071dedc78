#!/usr/bin/env bash
# Download the click-test sets into data/click_test/ (re-runnable).
#   bash data/click_test/download.sh [grabcut] [berkeley] [davis] [sbd]   (default: all)
# GrabCut, Berkeley and DAVIS: the f-BRS / RITM releases (RITM layout).
# SBD: the Berkeley semantic-contours benchmark (val split used).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
FBRS=${FBRS_MIRROR:-https://github.com/saic-vul/fbrs_interactive_segmentation/releases/download/v1.0}
SBD_URL=${SBD_URL:-http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz}
SETS=("$@")
[ "${#SETS[@]}" -gt 0 ] || SETS=(grabcut berkeley davis sbd)

fetch() {  # URL OUT
    if command -v curl >/dev/null 2>&1; then curl -fL --retry 3 -o "$2" "$1"
    else wget -O "$2" "$1"; fi
}

cd "$HERE"
for set in "${SETS[@]}"; do
    case "$set" in
        grabcut|berkeley|davis)
            name=$(case "$set" in grabcut) echo GrabCut;; berkeley) echo Berkeley;; davis) echo DAVIS;; esac)
            if [ -d "$name" ]; then echo "$name: already there"; continue; fi
            fetch "$FBRS/$name.zip" "$name.zip"
            unzip -q "$name.zip" && rm "$name.zip" ;;
        sbd)
            if [ -d SBD/dataset ]; then echo "SBD: already there"; continue; fi
            fetch "$SBD_URL" benchmark.tgz
            mkdir -p SBD && tar -xzf benchmark.tgz -C SBD --strip-components=1 && rm benchmark.tgz ;;
        *) echo "unknown set: $set (grabcut, berkeley, davis, sbd)" >&2; exit 2 ;;
    esac
done
echo "done: $(ls "$HERE")"
