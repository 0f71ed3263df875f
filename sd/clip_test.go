package sd

import (
	"testing"

	"lorastudio/internal/benchmetrics"
	"lorastudio/nn"
)

func openCheckpoint(t testing.TB, path string, need Parts) *Checkpoint {
	t.Helper()
	c, err := OpenParts(path, need)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkpointFixtures are the tiny fixture model in every layout and dtype.
var checkpointFixtures = []struct{ name, path string }{
	{"single-file fp32", "testdata/tiny_sd1_ldm.safetensors"},
	{"single-file fp16", "testdata/tiny_sd1_ldm.fp16.safetensors"},
	{"diffusers folder", "testdata/tiny_diffusers"},
}

func TestCLIPMatchesTransformers(t *testing.T) {
	g := fixture(t, "golden_clip.safetensors")
	ids64 := fixtureInts(t, g, "input_ids")
	for _, fx := range checkpointFixtures {
		t.Run(fx.name, func(t *testing.T) {
			c := openCheckpoint(t, fx.path, AllParts)
			cfg := c.Config.CLIP
			if cfg != (CLIPConfig{VocabSize: 1024, Positions: 77, Width: 32, Layers: 2, Heads: 4, MLP: 128}) {
				t.Fatalf("detected config %+v", cfg)
			}
			m, err := LoadCLIPTextModel(c.TextEncoder, cfg)
			if err != nil {
				t.Fatal(err)
			}
			last, err := m.Forward(ids64, 2, 1)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "last_hidden_state", last, fixtureTensor(t, g, "last_hidden_state"), 1e-4)
			skip2, err := m.Forward(ids64, 2, 2)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "clip skip 2", skip2, fixtureTensor(t, g, "penultimate_final_ln"), 1e-4)
		})
	}
}

func TestCLIPForwardErrors(t *testing.T) {
	m, err := LoadCLIPTextModel(RandomWeights(1), TinyCLIPConfig())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 77)
	for _, tc := range []struct {
		name      string
		ids       []int
		batch, cs int
	}{
		{"empty", nil, 1, 1},
		{"batch does not divide", ids[:76], 3, 1},
		{"too long", make([]int, 78), 1, 1},
		{"negative id", append([]int{-1}, ids[1:]...), 1, 1},
		{"id past vocabulary", append([]int{VocabSize}, ids[1:]...), 1, 1},
		{"clip skip 0", ids, 1, 0},
		{"clip skip past layers", ids, 1, 3},
	} {
		if _, err := m.Forward(tc.ids, tc.batch, tc.cs); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	out, err := m.Forward(ids[:10], 1, 2)
	if err != nil || !nn.SameShape(out.Shape, []int{1, 10, 32}) {
		t.Errorf("short sequence: %v %v", out, err)
	}
}

func TestCLIPLinearNames(t *testing.T) {
	m, err := NewCLIPTextModel(SD15CLIPConfig())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	m.Linears(func(name string, l *Linear) error { names = append(names, name); return nil })
	if len(names) != 72 || names[0] != "text_model.encoder.layers.0.self_attn.q_proj" || names[71] != "text_model.encoder.layers.11.mlp.fc2" {
		t.Errorf("%d linears, first %q last %q", len(names), names[0], names[len(names)-1])
	}
}

// BenchmarkCLIPEncode encodes one prompt with the full-size (ViT-L/14)
// text encoder, random weights.
func BenchmarkCLIPEncode(b *testing.B) {
	m, err := LoadCLIPTextModel(RandomWeights(1), SD15CLIPConfig())
	if err != nil {
		b.Fatal(err)
	}
	tok := tokenizer(b)
	prompt := "a photo of sks dog sitting on a beach at sunset, highly detailed, masterpiece"
	defer reportCPUTime(b)()
	for b.Loop() {
		if _, err := m.Forward(tok.Encode(prompt), 1, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPUTime adds the process CPU time per operation (user+sys) to a
// benchmark, a figure that stays meaningful on a machine busy with other
// work, where wall time does not. Call as defer reportCPUTime(b)() right
// before the loop.
func reportCPUTime(b *testing.B) func() {
	start := benchmetrics.CPUTime()
	return func() {
		b.ReportMetric((benchmetrics.CPUTime()-start).Seconds()/float64(b.N), "cpu-s/op")
	}
}
