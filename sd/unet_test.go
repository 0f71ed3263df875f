package sd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"lorastudio/nn"
)

// loadTestUNet loads the UNet of a checkpoint in testdata through the
// checkpoint loader.
func loadTestUNet(t testing.TB, name string) *UNet {
	t.Helper()
	c, err := OpenParts(filepath.Join("testdata", name), PartUNet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := LoadUNet(c.UNet, c.Config.UNet)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func tinyUNet(t testing.TB) *UNet { return loadTestUNet(t, "tiny_diffusers") }

func sd15likeUNet(t testing.TB) *UNet {
	return loadTestUNet(t, "sd15like_unet_ldm.fp16.safetensors")
}

type unetInputs struct {
	latents, ctx *nn.Tensor
	timesteps    []float32
}

func goldenInputs(t testing.TB, f *nn.File) unetInputs {
	t.Helper()
	var in unetInputs
	var err error
	if in.latents, err = f.Float32("latents"); err != nil {
		t.Fatal(err)
	}
	if in.ctx, err = f.Float32("encoder_hidden_states"); err != nil {
		t.Fatal(err)
	}
	ts, _, err := f.Int64("timesteps")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range ts {
		in.timesteps = append(in.timesteps, float32(v))
	}
	return in
}

func golden(t testing.TB, f *nn.File, name string) *nn.Tensor {
	t.Helper()
	g, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

func TestUNetConfigFromShapes(t *testing.T) {
	c, err := OpenParts(filepath.Join("testdata", "tiny_diffusers"), PartUNet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := UNetConfigFromShapes(c.UNet.Shape)
	if err != nil {
		t.Fatal(err)
	}
	want := UNetConfig{InChannels: 4, OutChannels: 4, Channels: []int{32, 64}, Attention: []bool{true, false},
		LayersPerBlock: 2, TransformerDepth: 1, ContextDim: 32, Heads: 8}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("config %+v, want %+v", cfg, want)
	}
	if _, err := UNetConfigFromShapes(func(string) ([]int, bool) { return nil, false }); err == nil {
		t.Error("empty file: no error")
	}
	sd2 := func(name string) ([]int, bool) {
		if name == "down_blocks.0.attentions.0.proj_in.weight" {
			return []int{32, 32}, true
		}
		return c.UNet.Shape(name)
	}
	if _, err := UNetConfigFromShapes(sd2); err == nil || !strings.Contains(err.Error(), "proj_in") {
		t.Errorf("linear proj_in: error %v", err)
	}
}

func TestUNetMatchesDiffusers(t *testing.T) {
	g := fixture(t, "golden_unet.safetensors")
	in := goldenInputs(t, g)
	for _, tc := range []struct {
		name string
		load func(testing.TB) *UNet
		want string
	}{
		{"tiny diffusers folder", tinyUNet, "out_tiny"},
		{"tiny single file", func(t testing.TB) *UNet { return loadTestUNet(t, "tiny_sd1_ldm.safetensors") }, "out_tiny"},
		{"tiny single file fp16", func(t testing.TB) *UNet { return loadTestUNet(t, "tiny_sd1_ldm.fp16.safetensors") }, "out_tiny"},
		{"sd15like fp16", sd15likeUNet, "out_sd15like"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.load(t)
			want := golden(t, g, tc.want)
			got, err := u.Forward(in.latents, in.timesteps, in.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !nn.SameShape(got.Shape, want.Shape) {
				t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
			}
			d := maxAbsDiff(got.Data, want.Data)
			t.Logf("max|diff| %.3g", d)
			if d > 1e-4 {
				t.Errorf("max|diff| %.3g > 1e-4", d)
			}
			// The training forward computes the same function.
			tr, err := u.ForwardTrain(in.latents, in.timesteps, in.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(tr.Data, want.Data); d > 1e-4 {
				t.Errorf("ForwardTrain max|diff| %.3g > 1e-4", d)
			}
		})
	}
}

func TestUNetTransformerNames(t *testing.T) {
	u, err := NewUNet(SD15UNetConfig())
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]bool{}
	if err := u.Linears(func(name string, l *Linear) error {
		if strings.HasSuffix(name, ".attn2.to_q") {
			blocks[strings.TrimSuffix(name, ".attn2.to_q")] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 16 {
		t.Errorf("%d transformer blocks, want 16", len(blocks))
	}
	for _, name := range []string{
		"down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q",
		"down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k",
		"mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0",
		"up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v",
		"up_blocks.1.attentions.0.proj_in",
	} {
		if u.Linear(name) == nil {
			t.Errorf("no Linear %s", name)
		}
	}
	if l := u.Linear("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"); l != nil && (l.In != 768 || l.Out != 320) {
		t.Errorf("attn2.to_k is %dx%d", l.In, l.Out)
	}
	if u.Linear("up_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q") != nil {
		t.Error("up_blocks.0 has no transformers in SD 1.x")
	}
}

func TestUNetRejectsBadInputs(t *testing.T) {
	u := tinyUNet(t)
	ts := []float32{1, 2}
	ctx := nn.New(2, 77, 32)
	for _, tc := range []struct {
		name    string
		latents *nn.Tensor
		ts      []float32
		ctx     *nn.Tensor
	}{
		{"nil latents", nil, ts, ctx},
		{"3 channels", nn.New(2, 3, 16, 16), ts, ctx},
		{"odd size", nn.New(2, 4, 15, 16), ts, ctx},
		{"timesteps", nn.New(2, 4, 16, 16), ts[:1], ctx},
		{"context width", nn.New(2, 4, 16, 16), ts, nn.New(2, 77, 16)},
		{"context batch", nn.New(2, 4, 16, 16), ts, nn.New(1, 77, 32)},
	} {
		if _, err := u.Forward(tc.latents, tc.ts, tc.ctx); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := u.Backward(nn.New(2, 4, 16, 16), false); err == nil {
		t.Error("Backward before ForwardTrain: no error")
	}
}

// attachTestLoRA attaches a kohya LoRA file's adapters (trainable,
// multiplier 1) to the UNet and returns them by kohya name.
func attachTestLoRA(t testing.TB, u *UNet, name string) map[string]*Adapter {
	t.Helper()
	f, err := ReadLoRAFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := LoRALayout{UNet: u.Config}.Layers(LoRAKohyaFull, false)
	if err != nil {
		t.Fatal(err)
	}
	net, err := f.Network(layers)
	if err != nil {
		t.Fatal(err)
	}
	adapters, err := net.Attach(u, nil, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Adapter{}
	for i, m := range net.Modules {
		out[m.KohyaName()] = adapters[i]
	}
	return out
}

func TestUNetLoRAGradients(t *testing.T) {
	u := tinyUNet(t)
	g := fixture(t, "golden_lora.safetensors")
	adapters := attachTestLoRA(t, u, "lora_tiny_kohya.safetensors")
	if len(adapters) != 24 {
		t.Fatalf("%d adapters attached, want 24", len(adapters))
	}
	in := goldenInputs(t, g)
	target := golden(t, g, "target")

	out, err := u.ForwardTrain(in.latents, in.timesteps, in.ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := maxAbsDiff(out.Data, golden(t, g, "out_with_lora").Data)
	t.Logf("out_with_lora max|diff| %.3g", d)
	if d > 1e-4 {
		t.Errorf("out_with_lora max|diff| %.3g > 1e-4", d)
	}
	loss := nn.MSE(out.Data, target.Data)
	if want := golden(t, g, "loss").Data[0]; math.Abs(float64(loss-want)) > 1e-4*math.Abs(float64(want)) {
		t.Errorf("loss %v, want %v", loss, want)
	}
	dout := nn.New(out.Shape...)
	nn.MSEBackward(dout.Data, out.Data, target.Data, 1)
	if _, err := u.Backward(dout, false); err != nil {
		t.Fatal(err)
	}
	n, worst := 0, 0.0
	defer func() { t.Logf("worst relative gradient error %.3g", worst) }()
	for k, a := range adapters {
		for _, p := range []struct {
			name string
			got  *nn.Tensor
		}{{k + ".lora_down.weight.grad", a.GradDown}, {k + ".lora_up.weight.grad", a.GradUp}} {
			want := golden(t, g, p.name)
			d, scale := maxAbsDiff(p.got.Data, want.Data), maxAbs(want.Data)
			worst = max(worst, d/scale)
			if d > 1e-4*scale {
				t.Errorf("%s: max|diff| %.3g, relative %.3g > 1e-4", p.name, d, d/scale)
			}
			n++
		}
	}
	if n != 48 {
		t.Errorf("%d gradients checked, want 48", n)
	}

	// The inference forward with the same adapters gives the same output.
	inf, err := u.Forward(in.latents, in.timesteps, in.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(inf.Data, out.Data); d > 1e-5 {
		t.Errorf("Forward vs ForwardTrain with LoRA: %.3g", d)
	}
}

func maxAbs(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

// Calls at other sizes in between (buckets, previews) reuse pooled buffers
// and must not change the result.
func TestUNetInterleavedSizes(t *testing.T) {
	u := tinyUNet(t)
	g := fixture(t, "golden_unet.safetensors")
	in := goldenInputs(t, g)
	want := golden(t, g, "out_tiny")
	rng := rand.New(rand.NewPCG(1, 1))
	for _, size := range [][2]int{{32, 8}, {8, 8}, {16, 24}} {
		if _, err := u.ForwardTrain(randTensor(rng, 1, 1, 4, size[0], size[1]), []float32{10}, randTensor(rng, 1, 1, 77, 32)); err != nil {
			t.Fatal(err)
		}
		got, err := u.Forward(in.latents, in.timesteps, in.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(got.Data, want.Data); d > 1e-4 {
			t.Errorf("after a %v call: max|diff| %.3g", size, d)
		}
	}
}

func TestUNetReleaseMemory(t *testing.T) {
	u := tinyUNet(t)
	g := fixture(t, "golden_unet.safetensors")
	in := goldenInputs(t, g)
	if _, err := u.ForwardTrain(in.latents, in.timesteps, in.ctx); err != nil {
		t.Fatal(err)
	}
	u.ReleaseMemory()
	if _, err := u.Backward(nn.New(in.latents.Shape...), false); err == nil {
		t.Error("Backward after ReleaseMemory: no error")
	}
	got, err := u.Forward(in.latents, in.timesteps, in.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got.Data, golden(t, g, "out_tiny").Data); d > 1e-4 {
		t.Errorf("after ReleaseMemory: max|diff| %.3g", d)
	}
}
