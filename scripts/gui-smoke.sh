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

fail() {
	echo "gui-smoke: FAIL: $*" >&2
	if [[ -s $log ]]; then
		echo "--- app log ($log) ---" >&2
		tail -n 40 "$log" >&2
	fi
	exit 1
}

[[ -x $bin ]] || fail "no binary at $bin (run make build)"
command -v Xvfb >/dev/null || fail "Xvfb is missing (apt-get install xvfb)"
command -v import >/dev/null || fail "ImageMagick import is missing (apt-get install imagemagick)"
[[ -d $root/assets/demo ]] || fail "no demo dataset in $root/assets/demo"

mkdir -p "$out"
rm -f "$shot" "$log"
work=$(mktemp -d)
xvfb_pid=""
app_pid=""
cleanup() {
	[[ -n $app_pid ]] && kill "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null
	[[ -n $xvfb_pid ]] && kill "$xvfb_pid" 2>/dev/null && wait "$xvfb_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# The app writes settings, thumbnails and captions: keep all of it in the
# scratch dir so the test never touches the user's files or the repo.
export LANG=en_US.UTF-8
export XDG_CONFIG_HOME=$work/config XDG_CACHE_HOME=$work/cache
cp -r "$root/assets/demo" "$work/demo"

display=""
for n in $(seq 91 140); do
	if [[ ! -e /tmp/.X11-unix/X$n && ! -e /tmp/.X$n-lock ]]; then
		display=:$n
		break
	fi
done
[[ -n $display ]] || fail "no free X display number"
Xvfb "$display" -screen 0 1400x900x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
export DISPLAY=$display
for _ in $(seq 50); do
	[[ -e /tmp/.X11-unix/X${display#:} ]] && break
	kill -0 "$xvfb_pid" 2>/dev/null || fail "Xvfb did not start: $(cat "$work/xvfb.log")"
	sleep 0.1
done

"$bin" "$work/demo/img" >"$log" 2>&1 &
app_pid=$!

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
		kill -0 "$app_pid" 2>/dev/null || { app_pid=""; fail "the app exited while waiting for $what"; }
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
kill -0 "$app_pid" 2>/dev/null || { app_pid=""; fail "the app exited after opening the dataset"; }

import -window root "$shot" || fail "screenshot failed"
colours=$(convert-im6.q16 "$shot" -format %k info:)
size=$(convert-im6.q16 "$shot" -format '%wx%h' info:)
echo "gui-smoke: screenshot $shot ($size, $colours colours)"
((colours >= min_colours)) || fail "screenshot looks blank: $colours distinct colours (want >= $min_colours)"
if grep -qE '^panic:|fatal error:' "$log"; then
	fail "the app log has a panic"
fi
echo "gui-smoke: OK"
