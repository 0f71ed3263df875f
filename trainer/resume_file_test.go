package trainer

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"lorastudio/nn"
	"lorastudio/sd"
)

// TestSavedLoRAFile checks a trained file for each target option: kohya's
// key set and shapes, alpha, fp16 by default, a header a safetensors reader
// (and A1111's "{" check) accepts, and the ss_* metadata.
func TestSavedLoRAFile(t *testing.T) {
	data := demoImages(t, 1, 1, "cat", "dog")
	for _, targets := range []sd.LoRATargets{sd.LoRACrossAttention, sd.LoRAAttention, sd.LoRAKohyaFull} {
		t.Run(string(targets), func(t *testing.T) {
			cfg := demoJob(t, data, 2)
			cfg.Targets = targets
			cfg.SavePrecision = "fp16"
			cfg.NetworkDim, cfg.NetworkAlpha = 4, 2
			events := drain(t, startRun(t, cfg))
			path := lastSaved(events).Path
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			n := binary.LittleEndian.Uint64(raw)
			if !strings.HasPrefix(string(raw[8:8+n]), `{"`) {
				t.Errorf("header starts %q", raw[8:12])
			}
			f, err := nn.OpenSafetensors(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()

			layers, err := sd.LoRALayoutOf(sd.TinyConfig()).Layers(targets, false)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, l := range layers {
				k := l.KohyaName()
				want = append(want, k+".alpha", k+".lora_down.weight", k+".lora_up.weight")
				for part, shape := range map[string][]int{
					".lora_down.weight": {4, l.In},
					".lora_up.weight":   {l.Out, 4},
					".alpha":            {},
				} {
					if l.Conv && part != ".alpha" {
						shape = append(shape, 1, 1)
					}
					dtype, got, ok := f.Info(k + part)
					if !ok || dtype != "F16" || !slices.Equal(got, shape) {
						t.Errorf("%s%s: %s %v, want F16 %v", k, part, dtype, got, shape)
					}
				}
				a, err := f.Float32(k + ".alpha")
				if err != nil || a.Data[0] != 2 {
					t.Errorf("%s.alpha = %v (%v), want 2", k, a, err)
				}
			}
			slices.Sort(want)
			if got := f.Names(); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
				t.Errorf("%d keys, want %d (%v...)", len(got), len(want), want[:3])
			}

			meta := f.Metadata()
			for key, value := range map[string]string{
				"ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "2.0",
				"ss_base_model_version": "sd_v1", "ss_output_name": "demo_lora", "ss_sd_model_name": "demo",
				"ss_steps": "2", "ss_epoch": "1", "ss_max_train_steps": "2", "ss_num_train_images": "2",
				"ss_learning_rate": "0.001", "ss_lr_scheduler": "constant", "ss_optimizer": "torch.optim.adamw.AdamW",
				"ss_resolution": "(64, 64)", "ss_enable_bucket": "False", "ss_seed": "42", "ss_clip_skip": "1",
				"ss_v2": "False", "modelspec.architecture": "stable-diffusion-v1/lora", "modelspec.sai_model_spec": "1.0.1",
			} {
				if meta[key] != value {
					t.Errorf("%s = %q, want %q", key, meta[key], value)
				}
			}
			if !strings.Contains(meta["ss_network_args"], string(targets)) {
				t.Errorf("ss_network_args %q does not name %s", meta["ss_network_args"], targets)
			}
			for _, key := range []string{"ss_tag_frequency", "ss_dataset_dirs", "ss_network_args"} {
				var v map[string]any
				if err := json.Unmarshal([]byte(meta[key]), &v); err != nil {
					t.Errorf("%s = %q: %v", key, meta[key], err)
				}
			}
			for _, key := range []string{"ss_training_started_at", "ss_training_finished_at", "ss_session_id"} {
				if _, err := strconv.ParseFloat(meta[key], 64); err != nil {
					t.Errorf("%s = %q: %v", key, meta[key], err)
				}
			}
			hash, err := sd.SafetensorsDataHash(path)
			if err != nil || meta["sshs_model_hash"] != hash {
				t.Errorf("sshs_model_hash %q, data hash %q (%v)", meta["sshs_model_hash"], hash, err)
			}
		})
	}
}

// TestContinueFromNetworkWeights starts a run from an existing LoRA file
// (network_weights): the adapters start as the file's, and a file of
// another rank is refused with both ranks named.
func TestContinueFromNetworkWeights(t *testing.T) {
	data := demoImages(t, 1, 1, "cat")
	cfg := demoJob(t, data, 2)
	first := lastSaved(drain(t, startRun(t, cfg))).Path
	want := finalWeights(t, first)

	cfg.NetworkWeights = first
	cfg.OutputDir = t.TempDir()
	j, err := prepare(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.loadModel(); err != nil {
		t.Fatal(err)
	}
	if err := j.setupNetwork(); err != nil {
		t.Fatal(err)
	}
	for name, tensor := range j.net.Tensors() {
		if !slices.Equal(tensor.Data, want[name]) {
			t.Fatalf("%s does not start as the file's", name)
		}
	}

	cfg.NetworkDim = 4
	j, err = prepare(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.loadModel(); err != nil {
		t.Fatal(err)
	}
	if err := j.setupNetwork(); err == nil || !strings.Contains(err.Error(), "rank 8") || !strings.Contains(err.Error(), "network_dim 4") {
		t.Errorf("rank mismatch: %v", err)
	}
}
