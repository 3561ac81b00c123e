#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests marked `browser`).
#
# Playwright drives it through executable_path=/usr/bin/chromium; its own browser
# downloads are not used. Idempotent: does nothing when Chromium is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: already installed ($(dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo "not from apt"))"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

echo "chromium: installing Debian's chromium package"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
# Not `chromium --version`: Debian's launcher script runs its /dev/shm check first, which
# prints a shell error where /dev/shm is mounted twice (some containers).
echo "chromium: installed $(dpkg-query -W -f='${Version}' chromium)"
