package trainer

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"lorastudio/dataset"
)

// The expected strings are what CPython 3 prints for repr(float).
func TestPyFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{1e-4, "0.0001"},
		{1e-5, "1e-05"},
		{5e-5, "5e-05"},
		{3e-7, "3e-07"},
		{0.00012, "0.00012"},
		{0.1, "0.1"},
		{0.3, "0.3"},
		{2.0 / 3, "0.6666666666666666"},
		{1, "1.0"},
		{16, "16.0"},
		{100, "100.0"},
		{123.456, "123.456"},
		{1234567.0, "1234567.0"},
		{1700000000.123456, "1700000000.123456"},
		{1234567890123456.0, "1234567890123456.0"},
		{1e16, "1e+16"},
		{1.5e16, "1.5e+16"},
		{12345678901234567.0, "1.2345678901234568e+16"},
		{1e22, "1e+22"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{5e-324, "5e-324"},
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{-2.5e-5, "-2.5e-05"},
		{-0.05, "-0.05"},
		{math.NaN(), "nan"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
	}
	for _, tt := range tests {
		if got := pyFloat(tt.in); got != tt.want {
			t.Errorf("pyFloat(%g) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPyJSON(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, "null"},
		{pyObject{{"b", 1}, {"a", []int{512, 768}}}, `{"b": 1, "a": [512, 768]}`},
		{map[string]int{"10": 1, "2": 2, "0": 3}, `{"0": 3, "2": 2, "10": 1}`},
		{map[string]any{"b": true, "a": nil, "c": 0.5}, `{"a": null, "b": true, "c": 0.5}`},
		{"é😀\"\\\n\t\x01\x7f<&>", `"\u00e9\ud83d\ude00\"\\\n\t\u0001\u007f<&>"`},
		{[]float64{1, 1e-5, math.NaN(), math.Inf(-1)}, `[1.0, 1e-05, NaN, -Infinity]`},
		{pyObject{}, `{}`},
	}
	for _, tt := range tests {
		if got := pyJSON(tt.in); got != tt.want {
			t.Errorf("pyJSON(%#v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestMetadata(t *testing.T) {
	c := Defaults()
	c.PretrainedModel = "/models/v1-5-pruned-emaonly.safetensors"
	c.OutputName = "sks_dog"
	c.NetworkDim, c.NetworkAlpha = 16, 8
	c.Seed = 1234
	c.ShuffleCaption = true
	c.MinSNRGamma = 5
	c.OptimizerArgs = []string{"weight_decay=0.1", "betas=0.9,0.99"}
	unet := 1e-4
	c.UNetLR = &unet
	opts, _ := c.BucketOptions()
	b, err := dataset.PlanBuckets([]dataset.BucketItem{
		{W: 512, H: 512, Repeats: 10}, {W: 512, H: 512, Repeats: 10}, {W: 576, H: 448, Repeats: 10},
	}, opts, 1)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(&c, b)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1700000000, 500000000)
	m := Metadata(&c, RunInfo{
		SessionID:       4294967295,
		StartedAt:       start,
		ModelSHA256:     "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
		ModelLegacyHash: "e1441589",
		Plan:            plan,
		Buckets:         b,
		DatasetDirs:     map[string]map[string]int{"10_sks dog": {"n_repeats": 10, "img_count": 3}},
		TagFrequency:    map[string]map[string]int{"10_sks dog": {"sks dog": 3, "grass": 1, "café": 2}},
	})
	want := map[string]string{
		"ss_session_id":            "4294967295",
		"ss_training_started_at":   "1700000000.5",
		"ss_output_name":           "sks_dog",
		"ss_learning_rate":         "0.0001",
		"ss_unet_lr":               "0.0001",
		"ss_text_encoder_lr":       "None",
		"ss_network_module":        "networks.lora",
		"ss_network_dim":           "16",
		"ss_network_alpha":         "8.0",
		"ss_network_args":          `{"targets": "cross_attention"}`,
		"ss_base_model_version":    "sd_v1",
		"ss_v2":                    "False",
		"ss_lr_scheduler":          "cosine",
		"ss_lr_warmup_steps":       "0.1",
		"ss_optimizer":             "torch.optim.adamw.AdamW(weight_decay=0.1,betas=(0.9, 0.99))",
		"ss_num_train_images":      "30",
		"ss_num_batches_per_epoch": "30",
		"ss_num_epochs":            "1",
		"ss_max_train_steps":       "30",
		"ss_resolution":            "(512, 512)",
		"ss_enable_bucket":         "True",
		"ss_bucket_no_upscale":     "True",
		"ss_shuffle_caption":       "True",
		"ss_keep_tokens":           "0",
		"ss_clip_skip":             "1",
		"ss_noise_offset":          "None",
		"ss_min_snr_gamma":         "5.0",
		"ss_seed":                  "1234",
		"ss_max_grad_norm":         "1.0",
		"ss_cache_latents":         "True",
		"ss_mixed_precision":       "no",
		"ss_sd_model_name":         "v1-5-pruned-emaonly.safetensors",
		"ss_sd_model_hash":         "e1441589",
		"ss_new_sd_model_hash":     "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
		"ss_dataset_dirs":          `{"10_sks dog": {"n_repeats": 10, "img_count": 3}}`,
		"ss_tag_frequency":         `{"10_sks dog": {"caf\u00e9": 2, "grass": 1, "sks dog": 3}}`,
		"ss_bucket_info":           `{"buckets": {"0": {"resolution": [512, 512], "count": 20}, "1": {"resolution": [576, 448], "count": 10}}, "mean_img_ar_error": 0.0}`,
		"ss_batch_size_per_device": "1",
		"ss_total_batch_size":      "1",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	for _, k := range []string{"ss_tag_frequency", "ss_dataset_dirs", "ss_bucket_info", "ss_network_args"} {
		if !json.Valid([]byte(m[k])) {
			t.Errorf("%s is not JSON: %s", k, m[k])
		}
	}

	saved := SaveMetadata(m, &c, 2, 60, time.Date(2024, 5, 1, 12, 34, 56, 789000000, time.Local))
	for k, v := range map[string]string{
		"ss_epoch":                  "2",
		"ss_steps":                  "60",
		"modelspec.sai_model_spec":  "1.0.1",
		"modelspec.architecture":    "stable-diffusion-v1/lora",
		"modelspec.implementation":  "diffusers",
		"modelspec.title":           "sks_dog",
		"modelspec.resolution":      "512x512",
		"modelspec.date":            "2024-05-01T12:34:56",
		"modelspec.prediction_type": "epsilon",
		"ss_output_name":            "sks_dog",
	} {
		if saved[k] != v {
			t.Errorf("%s = %q, want %q", k, saved[k], v)
		}
	}
	if _, ok := m["ss_epoch"]; ok {
		t.Error("SaveMetadata changed its input")
	}

	// Text-encoder training, no buckets, an explicit warmup count.
	c.NetworkTrainUNetOnly = false
	te := 1e-4
	c.TextEncoderLR = &te
	c.EnableBucket = false
	c.LRWarmup = Warmup{Steps: 5}
	c.NoiseOffset = 0.05
	c.PretrainedModel = DemoModel
	opts, _ = c.BucketOptions()
	b, _ = dataset.PlanBuckets([]dataset.BucketItem{{W: 512, H: 512, Repeats: 1}}, opts, 1)
	m = Metadata(&c, RunInfo{Buckets: b})
	for k, v := range map[string]string{
		"ss_text_encoder_lr": "0.0001",
		"ss_bucket_info":     "null",
		"ss_enable_bucket":   "False",
		"ss_lr_warmup_steps": "5",
		"ss_noise_offset":    "0.05",
		"ss_sd_model_name":   "demo",
		"ss_tag_frequency":   "{}",
	} {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if _, ok := m["ss_sd_model_hash"]; ok {
		t.Error("ss_sd_model_hash without a model file")
	}
}
