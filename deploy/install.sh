#!/bin/sh
# Install one dtriad host on Debian (12 or later), as root:
#   Redis and Redis Sentinel from Debian's packages, dtriad from its package
#   into /opt/dtriad, then 'dtriad host install': the host's dtriad.toml
#   (mode 0600) and the systemd units of the parts it runs, enabled and started.
#
#   usage: deploy/install.sh HOST.toml [PACKAGE]
#     HOST.toml  the host's configuration (see README "Deploying on AWS")
#     PACKAGE    what pip installs (default: dtriad; a wheel, a path or a git URL)
#
# Running it twice changes nothing: packages already there are left alone,
# files are rewritten only when they differ, and only changed units restart.
set -eu

config=${1:?usage: install.sh HOST.toml [PACKAGE]}
package=${2:-${DTRIAD_PACKAGE:-dtriad}}
venv=/opt/dtriad

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (it installs packages and units)" >&2; exit 1; }
[ -r "$config" ] || { echo "install.sh: cannot read $config" >&2; exit 1; }

missing=""
for pkg in redis-server redis-sentinel python3-venv; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$package"
ln -sf "$venv/bin/dtriad" /usr/local/bin/dtriad

exec "$venv/bin/dtriad" host install --config "$config"
