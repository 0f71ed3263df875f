package trainer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"lorastudio/nn"
)

// resumeJob exercises everything a resume must restore: two buckets with a
// short last batch, gradient accumulation, shuffled captions with dropout
// (drawn from the random stream), the text encoder's adapters, noise
// offset, min-SNR, a warmup-cosine schedule and epoch saves.
func resumeJob(t *testing.T, data string) Config {
	cfg := demoJob(t, data, 0)
	cfg.MaxTrainSteps = 0
	cfg.MaxTrainEpochs = 3
	cfg.EnableBucket = true
	cfg.Resolution = "128,64"
	cfg.MinBucketReso = 64
	cfg.MaxBucketReso = 128
	cfg.BucketNoUpscale = false
	cfg.TrainBatchSize = 2
	cfg.GradientAccumulationSteps = 2
	cfg.ShuffleCaption = true
	cfg.KeepTokens = 1
	cfg.CaptionDropoutRate = 0.2
	cfg.NoiseOffset = 0.05
	cfg.MinSNRGamma = 5
	cfg.LRScheduler = "cosine"
	cfg.LRWarmup = Warmup{Steps: 2}
	cfg.SaveEveryNEpochs = 1
	cfg.NetworkTrainUNetOnly = false
	return cfg
}

// wideImages adds two 3:1 copies of the demo cat photos to data, so the
// run has a second bucket.
func wideImages(t *testing.T, data string) {
	t.Helper()
	dir := filepath.Join(data, "1_wide cat")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, _ := filepath.Glob(filepath.Join(data, "*_cat", "*.jpg"))
	for i, p := range src[:2] {
		writeWide(t, p, filepath.Join(dir, fmt.Sprintf("wide_%d.png", i)))
	}
}

func finalMetadata(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := nn.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return f.Metadata()
}

func finalWeights(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := nn.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, n := range f.Names() {
		x, err := f.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = x.Data
	}
	return out
}

func lastSaved(events []Event) Saved {
	var s Saved
	for _, e := range events {
		if v, ok := e.(Saved); ok {
			s = v
		}
	}
	return s
}

// compareContinuation checks that the steps of a continued run, and its
// final weights, equal the uninterrupted run's bit for bit.
func compareContinuation(t *testing.T, full []Event, resumed []Event, from int) {
	t.Helper()
	p := resumed[0].(Planned)
	if !p.Resumed || p.StartStep != from {
		t.Fatalf("continued run planned %+v, want a resume from step %d", p, from)
	}
	want, got := steps(full)[from:], steps(resumed)
	if len(got) != len(want) {
		t.Fatalf("continued run made %d steps, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Step != w.Step || g.Epoch != w.Epoch || math.Float64bits(g.Loss) != math.Float64bits(w.Loss) ||
			math.Float64bits(g.AvgLoss) != math.Float64bits(w.AvgLoss) || g.LR != w.LR {
			t.Errorf("step %d: continued %+v, uninterrupted %+v", w.Step, g, w)
		}
	}
	a, b := finalWeights(t, lastSaved(full).Path), finalWeights(t, lastSaved(resumed).Path)
	if len(a) != len(b) {
		t.Fatalf("%d tensors, want %d", len(b), len(a))
	}
	for name, x := range a {
		y := b[name]
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				t.Fatalf("%s[%d] = %v after the resume, %v uninterrupted", name, i, y[i], x[i])
			}
		}
	}
}

// TestResumeAfterStop stops a run mid-epoch, continues it from its resume
// state and gets the uninterrupted run's losses and final weights exactly.
func TestResumeAfterStop(t *testing.T) {
	data := demoImages(t, 2, 2, "cat", "dog")
	wideImages(t, data)
	cfg := resumeJob(t, data)
	full := drain(t, startRun(t, cfg))
	total := full[0].(Planned).TotalSteps
	if fin, ok := full[len(full)-1].(Finished); !ok || fin.Step != total {
		t.Fatalf("uninterrupted run ended with %+v", full[len(full)-1])
	}
	if len(full[0].(Planned).Buckets) != 2 {
		t.Fatalf("buckets %+v, want two", full[0].(Planned).Buckets)
	}

	cfg.OutputDir = filepath.Join(t.TempDir(), "out")
	r := startRun(t, cfg)
	var first []Event
	for e := range r.Events() {
		first = append(first, e)
		if s, ok := e.(Step); ok && s.Step == 4 {
			r.Stop()
		}
	}
	fin := first[len(first)-1].(Finished)
	if !fin.Stopped || fin.Step >= total || fin.Step < 4 {
		t.Fatalf("stopped run ended with %+v", fin)
	}
	saved := lastSaved(first)
	if saved.StatePath == "" || saved.Step != fin.Step || fin.Path != saved.Path {
		t.Fatalf("stop saved %+v, finished %+v", saved, fin)
	}
	broken := filepath.Join(cfg.OutputDir, "broken"+stateExt)
	if err := os.WriteFile(broken, []byte("not a state"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := FindUnfinished(cfg.OutputDir)
	if err == nil || !strings.Contains(err.Error(), broken) {
		t.Errorf("FindUnfinished error %v, want one naming %s", err, broken)
	}
	if len(list) != 1 || list[0].Step != fin.Step || list[0].TotalSteps != total || list[0].OutputName != cfg.OutputName {
		t.Fatalf("FindUnfinished: %+v", list)
	}
	if _, err := Continue(context.Background(), broken); err == nil || !strings.Contains(err.Error(), broken) {
		t.Errorf("Continue from a broken state: %v", err)
	}

	r2, err := Continue(context.Background(), saved.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	resumed := drain(t, r2)
	if err := r2.Wait(); err != nil {
		t.Fatal(err)
	}
	compareContinuation(t, full, resumed, fin.Step)
	if _, err := os.Stat(saved.StatePath); !os.IsNotExist(err) {
		t.Errorf("the finished run left its resume state: %v", err)
	}
}

// TestResumeAfterKill runs training in a child process, kills it with
// SIGKILL right after its first epoch save, and continues from the state
// that save left: the result equals an uninterrupted run's.
func TestResumeAfterKill(t *testing.T) {
	if os.Getenv("LORASTUDIO_TRAIN_CHILD") != "" {
		trainChild(t)
		return
	}
	data := demoImages(t, 2, 2, "cat", "dog")
	wideImages(t, data)
	cfg := resumeJob(t, data)
	full := drain(t, startRun(t, cfg))

	cfg.OutputDir = filepath.Join(t.TempDir(), "out")
	job := filepath.Join(t.TempDir(), "job.json")
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(job, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestResumeAfterKill$")
	cmd.Env = append(os.Environ(), "LORASTUDIO_TRAIN_CHILD="+job)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	state := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "saved state "); ok {
			state = s
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	_ = cmd.Wait()
	if state == "" {
		t.Fatal("the child saved no resume state")
	}
	st, err := readState(state)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Continue(context.Background(), state)
	if err != nil {
		t.Fatal(err)
	}
	resumed := drain(t, r)
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	compareContinuation(t, full, resumed, st.Step)
}

// trainChild is the killed process of TestResumeAfterKill.
func trainChild(t *testing.T) {
	raw, err := os.ReadFile(os.Getenv("LORASTUDIO_TRAIN_CHILD"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, cfg)
	for e := range r.Events() {
		if s, ok := e.(Saved); ok && s.StatePath != "" {
			fmt.Printf("saved state %s\n", s.StatePath)
		}
	}
}
