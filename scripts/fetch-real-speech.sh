#!/usr/bin/env bash
# Fetch the real human speech that the turn-taking benchmarks are judged on
# (benchmarks/real_speech_set.py; README, "Turn-taking"): two registry packages, never a
# model hub.
#
#   - Debian's asterisk-core-sounds-en-wav and asterisk-core-sounds-en: about 570 telephone
#     prompts read by Allison Smith (8 kHz), with their transcripts; CC-BY-SA-3.0.
#   - PyPI's pocketsphinx 5.1.1 source distribution: its test data holds five LibriVox
#     recordings of Sense and Sensibility (16 kHz read speech, public domain) with word
#     alignments; the package is BSD-2-Clause.
#
# Unpacks what the benchmarks use into .cache/real-speech/ (or $REAL_SPEECH_DIR). Safe to run
# again: a folder whose marker is present is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST="${REAL_SPEECH_DIR:-.cache/real-speech}"
MARKER="$DEST/.fetched-v1"
POCKETSPHINX_SDIST="pocketsphinx-5.1.1.tar.gz"
POCKETSPHINX_SHA256="675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
DEBIAN_PACKAGES=(asterisk-core-sounds-en asterisk-core-sounds-en-wav)

[ -f "$MARKER" ] && exit 0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$DEST"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to run: $*" >&2; exit 1
    fi
}

# -- Debian: the telephone prompts (downloaded, not installed) ----------------------------
if ! apt-cache show "${DEBIAN_PACKAGES[1]}" >/dev/null 2>&1; then
    as_root apt-get update -q
fi
(cd "$work" && apt-get download -q "${DEBIAN_PACKAGES[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/debian"; done
prompts="$work/debian/usr/share/asterisk/sounds/en_US_f_Allison"
docs="$work/debian/usr/share/doc/asterisk-core-sounds-en"
[ -d "$prompts" ] || { echo "no prompts in ${DEBIAN_PACKAGES[*]}" >&2; exit 1; }
rm -rf "$DEST/asterisk"
mkdir -p "$DEST/asterisk"
cp "$prompts"/*.wav "$DEST/asterisk/"
zcat "$docs/core-sounds-en.txt.gz" > "$DEST/asterisk/core-sounds-en.txt"
cp "$docs/copyright" "$DEST/asterisk/copyright"
dpkg-deb -f "$work"/asterisk-core-sounds-en-wav_*.deb Version > "$DEST/asterisk/VERSION"

# -- PyPI: pocketsphinx's sdist, for its LibriVox test recordings -------------------------
# The sdist is read as an archive, never built (pip download would build its metadata).
url="$(python3 - "$POCKETSPHINX_SDIST" <<'EOF'
import json, sys, urllib.request
name = sys.argv[1]
with urllib.request.urlopen("https://pypi.org/pypi/pocketsphinx/json", timeout=60) as r:
    files = json.load(r)["releases"]["5.1.1"]
print(next(f["url"] for f in files if f["filename"] == name))
EOF
)"
python3 - "$url" "$work/$POCKETSPHINX_SDIST" <<'EOF'
import sys, urllib.request
urllib.request.urlretrieve(sys.argv[1], sys.argv[2])
EOF
echo "$POCKETSPHINX_SHA256  $work/$POCKETSPHINX_SDIST" | sha256sum -c --quiet
tar -xzf "$work/$POCKETSPHINX_SDIST" -C "$work" \
    pocketsphinx-5.1.1/test/data/librivox pocketsphinx-5.1.1/LICENSE
rm -rf "$DEST/librivox"
mkdir -p "$DEST/librivox"
cp "$work"/pocketsphinx-5.1.1/test/data/librivox/*.{wav,json,txt} "$DEST/librivox/"
cp "$work/pocketsphinx-5.1.1/LICENSE" "$DEST/librivox/pocketsphinx-LICENSE"
touch "$MARKER"
echo "real speech in $DEST: $(ls "$DEST/asterisk" | grep -c '\.wav$') prompts, $(ls "$DEST/librivox" | grep -c '\.wav$') LibriVox recordings"
