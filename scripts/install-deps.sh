#!/usr/bin/env bash
# Installs the Debian packages Canopy builds and tests with, and only those that
# are missing: a second run costs one dpkg-query.
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config
    libboost1.81-dev nlohmann-json3-dev libfmt-dev libcli11-dev
    libpcre2-dev libssl-dev
    googletest libgtest-dev libgmock-dev
    python3 python3-dev python3-pytest python3-websockets python3-flask python3-django
    python3-venv
    ruby ruby-dev ruby-rack ruby-sinatra
    procps curl clang-format
    json-schema-test-suite openssl
)

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    sudo=sudo
else
    sudo=
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
