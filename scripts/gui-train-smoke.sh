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

name=gui-train-smoke
# shellcheck source=gui-lib.sh
source "$root/scripts/gui-lib.sh"
LORASTUDIO_DEMO_TRAIN=$steps start_app

# The demo LoRA goes to demo/model beside demo/img (kohya's layout).
lora=$work/demo/model/demo_lora.safetensors
samples=$work/demo/model/sample
for _ in $(seq 1800); do
	alive "while training"
	[[ -d $samples ]] && compgen -G "$samples/*.png" >/dev/null && break
	sleep 0.1
done
compgen -G "$samples/*.png" >/dev/null || fail "no sample image after 180 s"
# Let a few more steps and the chart's redraw land before the picture.
sleep "${SETTLE_SECONDS:-3}"
take_screenshot

for _ in $(seq 1800); do
	[[ -s $lora ]] && break
	alive "before saving the LoRA"
	sleep 0.1
done
[[ -s $lora ]] || fail "no LoRA at $lora after training $steps steps"
check_log
echo "gui-train-smoke: trained $steps steps: $lora ($(stat -c %s "$lora") bytes)"
echo "gui-train-smoke: OK"
