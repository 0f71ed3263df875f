#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages named as arguments when any is missing,
# and checks that the Go toolchain is new enough.
set -euo pipefail

missing=()
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
	cmd="apt-get update && apt-get install -y ${missing[*]}"
	if [[ $(id -u) -eq 0 ]]; then
		echo "installing: ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		echo "installing with sudo: ${missing[*]}"
		sudo apt-get update -qq
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
	else
		echo "LoRA Studio needs these system packages: ${missing[*]}" >&2
		echo "Install them as root, then run make again:" >&2
		echo "  sudo sh -c '$cmd'" >&2
		exit 1
	fi
fi

if ! command -v go >/dev/null; then
	echo "Go 1.26 or newer is needed: https://go.dev/doc/install (then run make again)" >&2
	exit 1
fi
