#!/usr/bin/env bash
# Installs the peers the benchmark compares photonic against (rsync, OpenSSH, Syncthing) from
# Debian packages; idempotent, and runs `apt-get update` only when something is missing.
set -euo pipefail

packages=(rsync openssh-server openssh-client syncthing)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [[ $status != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  # --no-install-recommends: xauth, ncurses-term and friends are not needed on a bench box.
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --fsync arrived in rsync 3.2.4; older rsync cannot give the guarantees photonic gives.
# sed reads all input: `head` would close the pipe early and pipefail would report SIGPIPE.
version=$(rsync --version | sed -n '1s/^rsync *version *\([0-9.]*\).*/\1/p')
if ! printf '%s\n%s\n' "3.2.4" "$version" | sort -V -C; then
  echo "rsync $version is older than 3.2.4 and has no --fsync" >&2
  exit 1
fi
echo "peers ready: rsync $version, $(ssh -V 2>&1 | cut -d, -f1), $(syncthing --version | cut -d' ' -f2)"
