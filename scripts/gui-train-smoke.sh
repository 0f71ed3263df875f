#!/usr/bin/env bash
# GUI training smoke test: starts the real studio binary under Xvfb with a
# copy of the demo dataset and LORASTUDIO_DEMO_TRAIN set, so it trains the
# demo model a few steps from the Train screen; takes a screenshot of the
# screen while it trains and fails when the window never appears, the app
# dies, the screenshot is blank, or no LoRA file is written.
#
#   scripts/gui-train-smoke.sh [path/to/lorastudio]
#
# The screenshot and the app's log are kept in artifacts/ (not in git).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:-$root/build/lorastudio}")
out=${ARTIFACTS:-$root/artifacts}
shot=$out/gui-train.png
log=$out/gui-train.log
steps=${TRAIN_STEPS:-40}
min_colours=${MIN_COLOURS:-500}

fail() {
	echo "gui-train-smoke: FAIL: $*" >&2
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

# Settings, caches, captions and the trained LoRA stay in the scratch dir.
export LANG=en_US.UTF-8
export XDG_CONFIG_HOME=$work/config XDG_CACHE_HOME=$work/cache
cp -r "$root/assets/demo" "$work/demo"

display=""
for n in $(seq 141 190); do
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

LORASTUDIO_DEMO_TRAIN=$steps "$bin" "$work/demo/img" >"$log" 2>&1 &
app_pid=$!

# The demo LoRA goes to demo/model beside demo/img (kohya's layout).
lora=$work/demo/model/demo_lora.safetensors
samples=$work/demo/model/sample
for _ in $(seq 1800); do
	kill -0 "$app_pid" 2>/dev/null || { app_pid=""; fail "the app exited while training"; }
	[[ -d $samples ]] && compgen -G "$samples/*.png" >/dev/null && break
	sleep 0.1
done
compgen -G "$samples/*.png" >/dev/null || fail "no sample image after 180 s"
# Let a few more steps and the chart's redraw land before the picture.
sleep "${SETTLE_SECONDS:-3}"
import -window root "$shot" || fail "screenshot failed"
colours=$(convert-im6.q16 "$shot" -format %k info:)
size=$(convert-im6.q16 "$shot" -format '%wx%h' info:)
echo "gui-train-smoke: screenshot $shot ($size, $colours colours)"
((colours >= min_colours)) || fail "screenshot looks blank: $colours distinct colours (want >= $min_colours)"

for _ in $(seq 1800); do
	[[ -s $lora ]] && break
	kill -0 "$app_pid" 2>/dev/null || { app_pid=""; fail "the app exited before saving the LoRA"; }
	sleep 0.1
done
[[ -s $lora ]] || fail "no LoRA at $lora after training $steps steps"
if grep -qE '^panic:|fatal error:|DATA RACE' "$log"; then
	fail "the app log has a panic"
fi
echo "gui-train-smoke: trained $steps steps: $lora ($(stat -c %s "$lora") bytes)"
echo "gui-train-smoke: OK"
