#!/usr/bin/env bash
# The README's test command (CI runs it too, through .ci/run): installs the
# programs the tests drive when they are missing, then vets and runs every
# test with the race detector. The tests drive real clients
# (proxy/clients_test.go): Scrapy, headless Chromium and curl (Debian
# packages); Crawlee, Puppeteer and Playwright on node (npm packages, in
# proxy/testdata/clients/node); and they start redis-server processes of
# their own (Debian's redis-server).
# Usage: bash testdata/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

client_packages=(python3-scrapy chromium curl redis-server wrk) # wrk: the benchmark in proxy/testdata/bench, run by hand
missing=()
for pkg in "${client_packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$pkg")
	fi
done
# Node and npm run Crawlee (testdata/clients/node): any install of them
# will do, Debian's or another (NodeSource's nodejs conflicts with Debian's
# npm package, so the programs are checked, not the packages).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	missing+=(nodejs npm)
fi
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

# The node clients, as package-lock.json pins them.
npm ci --prefix proxy/testdata/clients/node --no-audit --no-fund --loglevel=error

go version
go vet ./...
go test -race -count=1 -timeout 12m ./...
