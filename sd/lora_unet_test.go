package sd

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"lorastudio/nn"
)

// TestLoRAOnTinyUNet applies the reference kohya LoRA to the tiny UNet, once
// injected (adapters) and once merged into the weights after a save and a
// reload, and compares both with diffusers' output.
func TestLoRAOnTinyUNet(t *testing.T) {
	g := fixture(t, "golden_lora.safetensors")
	in := goldenInputs(t, g)
	want := golden(t, g, "out_with_lora")
	all, _ := tinyLoRALayout().AllLayers()

	f, err := ReadLoRAFile("testdata/lora_tiny_kohya.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.Network(all)
	if err != nil {
		t.Fatal(err)
	}
	u := tinyUNet(t)
	adapters, err := n.Attach(u, nil, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(adapters) != 24 {
		t.Fatalf("%d adapters, want 24", len(adapters))
	}
	out, err := u.Forward(in.latents, in.timesteps, in.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(out.Data, want.Data); d > 1e-4 {
		t.Errorf("injected LoRA: max|diff| %.3g vs diffusers", d)
	}

	// Save (float32) and merge the reloaded file at several multipliers;
	// each must match the injected LoRA at that multiplier.
	path := filepath.Join(t.TempDir(), "again.safetensors")
	if err := n.Save(path, "F32", map[string]string{"ss_network_dim": "4"}); err != nil {
		t.Fatal(err)
	}
	f2, err := ReadLoRAFile(path)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := f2.Network(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, mult := range []float32{1, 0.7, -0.5} {
		u.DetachAll()
		if _, err := n.Attach(u, nil, mult, false); err != nil {
			t.Fatal(err)
		}
		injected, err := u.Forward(in.latents, in.timesteps, in.ctx)
		if err != nil {
			t.Fatal(err)
		}
		merged := tinyUNet(t)
		if err := saved.MergeInto(merged, nil, mult); err != nil {
			t.Fatal(err)
		}
		got, err := merged.Forward(in.latents, in.timesteps, in.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(got.Data, injected.Data); d > 1e-4 {
			t.Errorf("multiplier %v: merged vs injected max|diff| %.3g", mult, d)
		}
		if mult == 1 {
			if d := maxAbsDiff(got.Data, want.Data); d > 1e-4 {
				t.Errorf("merged LoRA: max|diff| %.3g vs diffusers", d)
			}
		}
	}
}

// TestLoRAOnDemoModel checks the layer lists against a real module tree
// (every adaptable Linear of the UNet transformers and the text encoder is
// listed, and nothing else), and that a kohya_full + text-encoder LoRA
// attached at a multiplier gives the same outputs as merged into the
// weights.
func TestLoRAOnDemoModel(t *testing.T) {
	cfg := TinyConfig()
	a, err := NewRandomModel(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRandomModel(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := LoRALayoutOf(cfg).AllLayers()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, l := range layers {
		listed[l.KohyaName()] = true
	}
	count := 0
	_ = a.UNet.Linears(func(name string, _ *Linear) error {
		count++
		if !listed[kohyaName("lora_unet", name)] {
			t.Errorf("UNet layer %s is not in AllLayers", name)
		}
		return nil
	})
	_ = a.Text.Linears(func(name string, _ *Linear) error {
		count++
		if !listed[kohyaName("lora_te", name)] {
			t.Errorf("text encoder layer %s is not in AllLayers", name)
		}
		return nil
	})
	if count != len(layers) {
		t.Errorf("the model has %d adaptable layers, AllLayers lists %d", count, len(layers))
	}

	n, err := NewLoRANetwork(layers, 4, 2, 11)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	for _, m := range n.Modules {
		for i := range m.Up.Data {
			m.Up.Data[i] = float32(rng.NormFloat64()) * 0.05
		}
	}
	if _, err := n.Attach(a.UNet, nil, 1, false); err == nil {
		t.Error("text-encoder LoRA attached without a text encoder")
	}
	a.UNet.DetachAll()
	const mult = 0.8
	if _, err := n.Attach(a.UNet, a.Text, mult, false); err != nil {
		t.Fatal(err)
	}
	if err := n.MergeInto(b.UNet, b.Text, mult); err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 2*77)
	for i := range ids {
		ids[i] = 49407
	}
	copy(ids, []int{49406, 320, 1125, 539, 320, 2368})
	copy(ids[77:], []int{49406, 1929, 267, 12066})
	ctxA, err := a.Text.Forward(ids, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctxB, err := b.Text.Forward(ids, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(ctxA.Data, ctxB.Data); d > 1e-4 {
		t.Errorf("text encoder: attached vs merged max|diff| %.3g", d)
	}
	x := nn.New(2, 4, 16, 24)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	outA, err := a.UNet.Forward(x, []float32{10, 700}, ctxA)
	if err != nil {
		t.Fatal(err)
	}
	outB, err := b.UNet.Forward(x, []float32{10, 700}, ctxB)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(outA.Data, outB.Data); d > 1e-4 {
		t.Errorf("UNet: attached vs merged max|diff| %.3g", d)
	}
}
