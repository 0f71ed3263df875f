#!/bin/bash
# bench-run.sh BIN [RESOLUTION] [STEPS]
# Times a whole headless training run on the full-size SD 1.5-shaped model
# with random weights: loading the fp16 diffusers folder, caching latents,
# the steps, and a 512x512 preview (4 Euler a steps) every other step, as a
# user's run would. Prints the run's output and its peak resident memory.
# The model (2.1 GB, written once by `lorastudio bench --write-model`) and
# the job live under build/bench-run.
set -euo pipefail
bin=$(realpath "$1")
res=${2:-256}
steps=${3:-4}
root=$(realpath -m build/bench-run)
model=$root/sd15-random
mkdir -p "$root"
[ -x /usr/bin/time ] || { echo "bench-run needs /usr/bin/time: apt-get install time" >&2; exit 1; }

if [ ! -f "$model/unet/diffusion_pytorch_model.safetensors" ]; then
	"$bin" bench --write-model "$model"
fi

# Four demo photos with their captions, in kohya's <repeats>_<name> layout.
if [ ! -d "$root/data/1_subject" ]; then
	"$bin" train --demo --demo-dir "$root/demo" --demo-steps 1 >/dev/null
	mkdir -p "$root/data/1_subject"
	first=$(find "$root/demo/data" -mindepth 2 -maxdepth 2 -type d | sort | head -1)
	for img in $(find "$first" -maxdepth 1 -name '*.jpg' | sort | head -4); do
		cp "$img" "${img%.*}.txt" "$root/data/1_subject/"
	done
fi

echo "a photo of a dog --w 512 --h 512 --s 4" >"$root/prompts.txt"
cat >"$root/job.toml" <<TOML
pretrained_model_name_or_path = "$model"
train_data_dir = "$root/data"
output_dir = "$root/out"
output_name = "bench_${res}"
resolution = "$res,$res"
# The demo photos are 256 px: let larger runs upscale them to their bucket.
bucket_no_upscale = false
max_train_steps = $steps
sample_prompts = "$root/prompts.txt"
sample_every_n_steps = 2
seed = 1
TOML

rm -rf "$root/out"
/usr/bin/time -f "peak resident memory: %M KiB; wall %e s; CPU %P" \
	"$bin" train --config "$root/job.toml" 2>&1 | tr '\r' '\n' | grep -v '^$' | grep -v 'Fyne error\|Cause:\|At: '
