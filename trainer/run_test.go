package trainer

import (
	"fmt"
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
