#!/usr/bin/env bash
# The README's test command (CI runs it too, through .ci/run): installs the
# programs the tests drive when they are missing, then vets and runs every
# test with the race detector. The tests drive real clients
# (proxy/clients_test.go): Scrapy, headless Chromium and curl, and start
# redis-server processes of their own, all from Debian packages.
# Usage: bash testdata/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

client_packages=(python3-scrapy chromium curl redis-server)
missing=()
for pkg in "${client_packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$pkg")
	fi
done
if ((${#missing[@]})); then
	echo "installing the test clients: ${missing[*]}"
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update
	"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

go version
go vet ./...
go test -race -count=1 -timeout 12m ./...
