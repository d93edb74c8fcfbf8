# apt_need.sh — sourced by test.sh and compare.sh: `apt_need pkg...` installs, non-interactively
# and only once per call, the Debian packages that are not installed yet (root, or sudo).
apt_need() {
  local need=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  ((${#need[@]})) || return 0
  echo "$(basename "$0"): installing ${need[*]}" >&2
  local SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
