#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests when it is missing (they skip without it).
# Playwright drives it through executable_path=/usr/bin/chromium; its own browser download is not used.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "setup: installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
        || echo "setup: chromium could not be installed; browser tests will be skipped" >&2
else
    echo "setup: /usr/bin/chromium not found and apt-get not usable; browser tests will be skipped" >&2
fi
exit 0
