#!/usr/bin/env bash
# Puts the built extension into this package: copies dist/task0.so (.dylib on
# macOS, .dll on Windows) to prebuilds/<platform>-<arch>/, where
# <platform>-<arch> is Node's process.platform and process.arch, the folder
# getLoadablePath() looks in. prebuilds/ is not in git: each machine that
# builds the package adds its own platform, and `npm pack` takes every
# platform folder present.
#
#   bash npm/build.sh              after `make loadable`
#   bash npm/build.sh PATH/task0.so   another build of the extension
#   npm run build                  the same, from npm/
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

platform="$(node -p 'process.platform + "-" + process.arch')"
case "$platform" in
  darwin-*) suffix=dylib ;;
  win32-*) suffix=dll ;;
  *) suffix=so ;;
esac

src="${1:-$here/../dist/task0.$suffix}"
if [ ! -f "$src" ]; then
  echo "npm/build.sh: $src is missing; run make loadable first" >&2
  exit 2
fi

dest="$here/prebuilds/$platform"
mkdir -p "$dest"
# Copy then rename, as make loadable does: a process that has the old file
# loaded keeps its mapping.
cp "$src" "$dest/.task0.$suffix.tmp"
mv -f "$dest/.task0.$suffix.tmp" "$dest/task0.$suffix"
echo "npm/build.sh: $dest/task0.$suffix"
