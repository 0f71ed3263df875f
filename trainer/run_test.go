package trainer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunEvents trains the demo model a few steps and checks the events
// arrive in order: Planned, model loading, latent and text caching, one
// Step per optimizer step, the final Saved, Finished, then the channel
// closes.
func TestRunEvents(t *testing.T) {
	data := demoImages(t, 2, 2, "cat", "dog")
	cfg := demoJob(t, data, 5)
	r := startRun(t, cfg)
	events := drain(t, r)
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range events {
		k := fmt.Sprintf("%T", e)
		k = strings.TrimPrefix(k, "trainer.")
		if c, ok := e.(Caching); ok {
			k += "(" + c.What + ")"
		}
		if len(kinds) == 0 || kinds[len(kinds)-1] != k {
			kinds = append(kinds, k)
		}
	}
	want := "Planned Caching(model) Caching(latents) Caching(text) Step Saved Finished"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	p := events[0].(Planned)
	if p.Images != 4 || p.ImageRepeats != 8 || p.TotalSteps != 5 || p.StepsPerEpoch != 8 || p.Epochs != 1 {
		t.Errorf("plan %+v", p)
	}
	ss := steps(events)
	for i, s := range ss {
		if s.Step != i+1 || s.TotalSteps != 5 || s.Epoch != 1 || s.LR != 1e-3 || s.Loss <= 0 {
			t.Errorf("step event %d: %+v", i, s)
		}
	}
	fin := events[len(events)-1].(Finished)
	if fin.Stopped || fin.Step != 5 || !strings.HasSuffix(fin.Path, "demo_lora.safetensors") {
		t.Errorf("finished %+v", fin)
	}
	for _, e := range events {
		t.Logf("%T %+v", e, e)
	}
}

// TestRunControls pauses, saves, resumes and stops a run and checks each
// control is acknowledged and acts between steps.
func TestRunControls(t *testing.T) {
	data := demoImages(t, 5, 2, "cat")
	cfg := demoJob(t, data, 40)
	r := startRun(t, cfg)
	var events []Event
	var pausedAt int
	for e := range r.Events() {
		events = append(events, e)
		switch e := e.(type) {
		case Step:
			if e.Step == 2 {
				r.Pause()
			}
		case Paused:
			pausedAt = e.Step
			r.SaveNow()
			r.Resume()
		case Resumed:
			r.Stop()
			r.Stop() // repeated and late controls are harmless
			r.Pause()
		}
	}
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	var saves []Saved
	var resumed *Resumed
	for _, e := range events {
		switch e := e.(type) {
		case Saved:
			saves = append(saves, e)
		case Resumed:
			resumed = &e
		}
	}
	fin := events[len(events)-1].(Finished)
	switch {
	case pausedAt < 2:
		t.Fatalf("paused at step %d, want after step 2", pausedAt)
	case resumed == nil || resumed.Step != pausedAt:
		t.Fatalf("resumed %+v after pausing at %d", resumed, pausedAt)
	case len(saves) < 1 || saves[0].Step != pausedAt || saves[0].Final || saves[0].StatePath == "":
		t.Fatalf("saves %+v", saves)
	case !fin.Stopped || fin.Step >= 40:
		t.Fatalf("finished %+v", fin)
	}
	if want := fmt.Sprintf("demo_lora-step%08d.safetensors", pausedAt); filepath.Base(saves[0].Path) != want {
		t.Errorf("save-now wrote %s, want %s", saves[0].Path, want)
	}
	// Stop saves what was trained since, under the step's name.
	last := saves[len(saves)-1]
	if fin.Path != last.Path || last.Step != fin.Step {
		t.Errorf("stop saved %+v, finished %+v", last, fin)
	}
	for _, s := range saves {
		if _, err := os.Stat(s.Path); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(last.StatePath); err != nil {
		t.Errorf("a stopped run keeps its resume state: %v", err)
	}
}

// TestCancelStopsAndSaves cancels the context of a run: it stops as Stop
// does.
func TestCancelStopsAndSaves(t *testing.T) {
	data := demoImages(t, 5, 2, "cat")
	cfg := demoJob(t, data, 40)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var fin Finished
	for e := range r.Events() {
		if s, ok := e.(Step); ok && s.Step == 3 {
			cancel()
		}
		if f, ok := e.(Finished); ok {
			fin = f
		}
	}
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	if !fin.Stopped || fin.Step < 3 || fin.Path == "" {
		t.Fatalf("finished %+v", fin)
	}
	if _, err := os.Stat(statePath(&cfg)); err != nil {
		t.Errorf("no resume state after the cancel: %v", err)
	}
}

// TestNaNLossFails poisons an adapter while the run is paused: the next
// step's loss is NaN, the run fails with a message that says so, and the
// save made before is kept as the last good one.
func TestNaNLossFails(t *testing.T) {
	data := demoImages(t, 5, 2, "cat")
	cfg := demoJob(t, data, 20)
	j, err := prepare(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := launch(context.Background(), j)
	var good string
	var failed *Failed
	for e := range r.Events() {
		switch e := e.(type) {
		case Step:
			if e.Step == 3 {
				r.SaveNow()
				r.Pause()
			}
		case Saved:
			good = e.Path
		case Paused:
			// The run waits for Resume: its adapters can be touched.
			j.net.Modules[0].Up.Data[0] = float32(math.NaN())
			r.Resume()
		case Failed:
			failed = &e
		}
	}
	if failed == nil {
		t.Fatal("no Failed event")
	}
	if err := r.Wait(); err == nil || err != failed.Err {
		t.Errorf("Wait returned %v, the event %v", err, failed.Err)
	}
	msg := failed.Err.Error()
	if !strings.Contains(msg, "NaN") || !strings.Contains(msg, "learning rate") || !strings.Contains(msg, good) {
		t.Errorf("message %q should name the NaN, the learning rate and the kept save %s", msg, good)
	}
	if failed.LastSave != good {
		t.Errorf("last save %q, want %q", failed.LastSave, good)
	}
	for name, v := range finalWeights(t, good) {
		for _, x := range v {
			if math.IsNaN(float64(x)) {
				t.Fatalf("the kept save has NaN in %s", name)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.OutputDir, "demo_lora.safetensors")); !os.IsNotExist(err) {
		t.Errorf("a failed run wrote a final LoRA: %v", err)
	}
}

// TestStartValidatesBeforeWork: each bad setting is reported by Start,
// naming its key, and nothing is written.
func TestStartValidatesBeforeWork(t *testing.T) {
	data := demoImages(t, 2, 1, "cat")
	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "10_nothing"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, "10_nothing", "broken.png"), []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	prompts := filepath.Join(t.TempDir(), "prompts.txt")
	if err := os.WriteFile(prompts, []byte("# nothing but a comment\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, key string
		edit      func(c *Config)
	}{
		{"rank 0", "network_dim", func(c *Config) { c.NetworkDim = 0 }},
		{"negative learning rate", "learning_rate", func(c *Config) { c.LearningRate = -1e-4 }},
		{"negative unet lr", "unet_lr", func(c *Config) { lr := -1.0; c.UNetLR = &lr }},
		{"missing model", "pretrained_model_name_or_path", func(c *Config) { c.PretrainedModel = filepath.Join(empty, "nope.safetensors") }},
		{"not a model", "pretrained_model_name_or_path", func(c *Config) { c.PretrainedModel = prompts }},
		{"no images", "train_data_dir", func(c *Config) { c.TrainDataDir = t.TempDir() }},
		{"only broken images", "train_data_dir", func(c *Config) { c.TrainDataDir = empty }},
		{"text encoder training at rate 0", "text_encoder_lr", func(c *Config) { zero := 0.0; c.NetworkTrainUNetOnly, c.TextEncoderLR = false, &zero }},
		{"bucket sizes", "min_bucket_reso", func(c *Config) { c.EnableBucket, c.MinBucketReso = true, 128 }},
		{"empty prompts file", "sample_prompts", func(c *Config) { c.SamplePrompts = prompts }},
		{"missing network weights", "network_weights", func(c *Config) { c.NetworkWeights = filepath.Join(empty, "x.safetensors") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := demoJob(t, data, 3)
			tc.edit(&cfg)
			r, err := Start(context.Background(), cfg)
			if err == nil {
				drain(t, r)
				t.Fatal("Start accepted it")
			}
			var v ValidationErrors
			if !errors.As(err, &v) || v.Field(tc.key) == "" {
				t.Fatalf("error %v does not flag %s", err, tc.key)
			}
			t.Logf("%s: %s", tc.key, v.Field(tc.key))
			if _, err := os.Stat(cfg.OutputDir); !os.IsNotExist(err) {
				t.Errorf("output folder exists after a refused start: %v", err)
			}
		})
	}
}

// TestTextEncoderTraining trains the text encoder's adapters too, with
// clip skip 2: the layers in use learn at the text-encoder rate, the
// skipped last layer's adapters stay as initialised, and the file holds
// kohya's lora_te_ modules.
func TestTextEncoderTraining(t *testing.T) {
	data := demoImages(t, 2, 1, "cat", "dog")
	cfg := demoJob(t, data, 4)
	te := 5e-3
	cfg.NetworkTrainUNetOnly, cfg.TextEncoderLR, cfg.ClipSkip = false, &te, 2
	events := drain(t, startRun(t, cfg))
	for _, s := range steps(events) {
		if s.TextLR != te || s.LR != 1e-3 {
			t.Errorf("step %d: rates %v (UNet) and %v (text), want 1e-3 and %v", s.Step, s.LR, s.TextLR, te)
		}
	}
	if c := lastCaching(events, "text"); c.Total != 0 {
		t.Errorf("captions were cached (%+v) while the text encoder trains", c)
	}
	w := finalWeights(t, lastSaved(events).Path)
	nonzero := func(name string) bool {
		v, ok := w[name]
		if !ok {
			t.Fatalf("no %s in the file", name)
		}
		for _, x := range v {
			if x != 0 {
				return true
			}
		}
		return false
	}
	for _, part := range []string{"self_attn_q_proj", "self_attn_out_proj", "mlp_fc1", "mlp_fc2"} {
		if !nonzero("lora_te_text_model_encoder_layers_0_" + part + ".lora_up.weight") {
			t.Errorf("layer 0 %s did not train", part)
		}
		if nonzero("lora_te_text_model_encoder_layers_1_" + part + ".lora_up.weight") {
			t.Errorf("layer 1 %s, left out by clip skip 2, changed", part)
		}
	}
	if !nonzero("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight") {
		t.Error("the UNet adapters did not train")
	}
	meta := finalMetadata(t, lastSaved(events).Path)
	if meta["ss_text_encoder_lr"] != "0.005" || meta["ss_clip_skip"] != "2" {
		t.Errorf("ss_text_encoder_lr %q, ss_clip_skip %q", meta["ss_text_encoder_lr"], meta["ss_clip_skip"])
	}
}
