#!/usr/bin/env bash
# GUI smoke test: starts the real studio binary under Xvfb with a copy of the
# demo dataset, waits for its window, takes a screenshot and fails when the
# window never appears, the app dies, or the screenshot is blank.
#
#   scripts/gui-smoke.sh [path/to/lorastudio]
#
# The screenshot and the app's log are kept in artifacts/ (not in git).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:-$root/build/lorastudio}")
out=${ARTIFACTS:-$root/artifacts}
shot=$out/gui-smoke.png
log=$out/gui-smoke.log
# The demo's photos give tens of thousands of colours; a blank frame has
# a handful and a screen of text a few hundred.
min_colours=${MIN_COLOURS:-5000}

name=gui-smoke
# shellcheck source=gui-lib.sh
source "$root/scripts/gui-lib.sh"
start_app

# title prints the studio window's title, empty while there is none.
title() {
	if command -v xwininfo >/dev/null && command -v xprop >/dev/null; then
		local id
		for id in $(LC_ALL=C xwininfo -root -tree 2>/dev/null | awk '/LoRA Studio/ {print $1}'); do
			printf '%b\n' "$(LC_ALL=C xprop -id "$id" _NET_WM_NAME 2>/dev/null | sed -n 's/^_NET_WM_NAME(UTF8_STRING) = "\(.*\)"$/\1/p')"
			return
		done
	elif [[ $(import -window root -colors 256 -format %k info: 2>/dev/null || echo 0) -gt 2 ]]; then
		# Without x11-utils a mapped window shows up as a non-black frame.
		echo "LoRA Studio"
	fi
}

wait_for() {
	local what=$1 test=$2
	for _ in $(seq 300); do
		alive "while waiting for $what"
		eval "$test" && return 0
		sleep 0.1
	done
	fail "no $what after 30 s (window title: '$(title)')"
}

wait_for "LoRA Studio window" '[[ -n $(title) ]]'
# The title starts with "Opening" until the dataset is scanned.
wait_for "open dataset" '[[ -n $(title) && $(title) != Opening* ]]'
echo "gui-smoke: window '$(title)'"

# Let the thumbnails fill in before the picture.
sleep "${SETTLE_SECONDS:-4}"
alive "after opening the dataset"
take_screenshot
check_log
echo "gui-smoke: OK"
