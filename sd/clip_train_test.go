package sd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"

	"lorastudio/nn"
)

// teFixture is the tiny fixture model's text encoder and UNet with a
// trainable text-encoder LoRA (rank 4, alpha 2) whose up matrices are
// random, so every adapter matrix has a non-zero gradient.
type teFixture struct {
	text *CLIPTextModel
	unet *UNet
	net  *LoRANetwork
	ids  []int // 2 prompts of 16 tokens
}

func newTEFixture(t testing.TB) *teFixture {
	t.Helper()
	c := openCheckpoint(t, "testdata/tiny_sd1_ldm.safetensors", AllParts)
	text, err := LoadCLIPTextModel(c.TextEncoder, c.Config.CLIP)
	if err != nil {
		t.Fatal(err)
	}
	u, err := LoadUNet(c.UNet, c.Config.UNet)
	if err != nil {
		t.Fatal(err)
	}
	all, err := LoRALayoutOf(c.Config).Layers(LoRACrossAttention, true)
	if err != nil {
		t.Fatal(err)
	}
	var layers []LoRALayer
	for _, l := range all {
		if l.TextEncoder {
			layers = append(layers, l)
		}
	}
	if len(layers) != 6*c.Config.CLIP.Layers {
		t.Fatalf("%d text-encoder layers, want %d", len(layers), 6*c.Config.CLIP.Layers)
	}
	net, err := NewLoRANetwork(layers, 4, 2, 7)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range net.Modules {
		for i := range m.Up.Data {
			m.Up.Data[i] = float32(rng.NormFloat64() * 0.3)
		}
	}
	if _, err := net.Attach(u, text, 1, true); err != nil {
		t.Fatal(err)
	}
	g := fixture(t, "golden_clip.safetensors")
	full := fixtureInts(t, g, "input_ids") // [2, 77]
	ids := append(append([]int{}, full[:16]...), full[77:77+16]...)
	return &teFixture{text: text, unet: u, net: net, ids: ids}
}

func teRandomTensor(rng *rand.Rand, shape ...int) *nn.Tensor {
	x := nn.New(shape...)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	return x
}

// teDot is sum(a*b) accumulated in float64.
func teDot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestCLIPForwardTrainMatchesForward(t *testing.T) {
	f := newTEFixture(t)
	g := fixture(t, "golden_clip.safetensors")
	ids := fixtureInts(t, g, "input_ids")
	for _, withLoRA := range []bool{false, true} {
		for skip := 1; skip <= 2; skip++ {
			t.Run(fmt.Sprintf("lora=%v/clip_skip=%d", withLoRA, skip), func(t *testing.T) {
				mult := float32(0)
				if withLoRA {
					mult = 1
				}
				setMultiplier(f.text, mult)
				want, err := f.text.Forward(ids, 2, skip)
				if err != nil {
					t.Fatal(err)
				}
				got, err := f.text.ForwardTrain(ids, 2, skip)
				if err != nil {
					t.Fatal(err)
				}
				checkClose(t, "ForwardTrain", got, want, 1e-6)
				if !withLoRA {
					name := map[int]string{1: "last_hidden_state", 2: "penultimate_final_ln"}[skip]
					checkClose(t, name, got, fixtureTensor(t, g, name), 1e-4)
				}
			})
		}
	}
	setMultiplier(f.text, 1)
}

func setMultiplier(m *CLIPTextModel, mult float32) {
	_ = m.Linears(func(_ string, l *Linear) error {
		for _, a := range l.Adapters {
			a.Multiplier = mult
		}
		return nil
	})
}

// The adapter gradients of Backward against central finite differences of
// loss = sum(output * r), for the last layer and for clip skip 2 (where the
// second layer is unused and its adapters get zero gradients).
func TestCLIPLoRAGradientsFiniteDifferences(t *testing.T) {
	f := newTEFixture(t)
	rng := rand.New(rand.NewPCG(3, 4))
	r := teRandomTensor(rng, 2, 16, f.text.Config.Width)
	for skip := 1; skip <= 2; skip++ {
		t.Run(fmt.Sprintf("clip_skip=%d", skip), func(t *testing.T) {
			loss := func() float64 {
				out, err := f.text.Forward(f.ids, 2, skip)
				if err != nil {
					t.Fatal(err)
				}
				return teDot(out.Data, r.Data)
			}
			if _, err := f.text.ForwardTrain(f.ids, 2, skip); err != nil {
				t.Fatal(err)
			}
			if err := f.text.Backward(r); err != nil {
				t.Fatal(err)
			}
			used := f.text.Config.Layers - skip + 1
			if got, want := len(f.text.SkippedAdapters(skip)), 6*(skip-1); got != want {
				t.Errorf("%d skipped adapters, want %d", got, want)
			}
			worst := 0.0
			defer func() { t.Logf("worst error relative to the gradient scale: %.2g", worst) }()
			for _, m := range f.net.Modules {
				a := moduleAdapter(t, f.text, m)
				var layer int
				fmt.Sscanf(m.Module, "text_model.encoder.layers.%d.", &layer)
				for _, p := range []struct {
					name    string
					w, grad *nn.Tensor
				}{{"down", m.Down, a.GradDown}, {"up", m.Up, a.GradUp}} {
					what := m.KohyaName() + "." + p.name
					if p.grad == nil {
						t.Fatalf("%s: no gradient", what)
					}
					if layer >= used {
						if s := maxAbs(p.grad.Data); s != 0 {
							t.Errorf("%s: layer unused under clip skip %d, gradient max %g, want 0", what, skip, s)
						}
						continue
					}
					scale := maxAbs(p.grad.Data)
					if scale == 0 {
						t.Fatalf("%s: zero gradient", what)
					}
					for range 4 {
						i := rng.IntN(len(p.w.Data))
						const eps = 1e-2
						orig := p.w.Data[i]
						p.w.Data[i] = orig + eps
						lp := loss()
						p.w.Data[i] = orig - eps
						lm := loss()
						p.w.Data[i] = orig
						fd := (lp - lm) / (2 * eps)
						d := math.Abs(fd - float64(p.grad.Data[i]))
						worst = max(worst, d/scale)
						if d > 2e-3*scale+1e-4 {
							t.Errorf("%s[%d]: backward %g, finite differences %g (gradient scale %g)", what, i, p.grad.Data[i], fd, scale)
						}
					}
				}
			}
		})
	}
}

// moduleAdapter finds the adapter attached for a network module.
func moduleAdapter(t *testing.T, m *CLIPTextModel, mod *LoRAModule) *Adapter {
	t.Helper()
	var found *Adapter
	_ = m.Linears(func(name string, l *Linear) error {
		for _, a := range l.Adapters {
			if a.Down == mod.Down {
				found = a
			}
		}
		return nil
	})
	if found == nil {
		t.Fatalf("no adapter for %s", mod.KohyaName())
	}
	return found
}

func TestCLIPBackwardErrors(t *testing.T) {
	m, err := LoadCLIPTextModel(RandomWeights(1), TinyCLIPConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(nn.New(1, 4, 32)); err == nil {
		t.Error("Backward before ForwardTrain: no error")
	}
	if _, err := m.ForwardTrain([]int{1, 2, 3, 4}, 1, 3); err == nil {
		t.Error("clip skip 3 on 2 layers: no error")
	}
	if _, err := m.ForwardTrain([]int{1, 2, 3, 4}, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(nn.New(1, 5, 32)); err == nil {
		t.Error("gradient of the wrong shape: no error")
	}
	if err := m.Backward(nn.New(1, 4, 32)); err != nil {
		t.Errorf("Backward without adapters: %v", err)
	}
	m.ReleaseMemory()
	if err := m.Backward(nn.New(1, 4, 32)); err == nil {
		t.Error("Backward after ReleaseMemory: no error")
	}
}

// tensorGrad reads a parameter node's gradient.
func tensorGrad(t *testing.T, n *gorgonia.Node) []float32 {
	t.Helper()
	gv, err := n.Grad()
	if err != nil {
		t.Fatal(err)
	}
	return gv.Data().([]float32)
}

func idsTensor(ids []int, batch int) *nn.Tensor {
	x := nn.New(batch, len(ids)/batch)
	for i, id := range ids {
		x.Data[i] = float32(id)
	}
	return x
}

// gradSnapshot copies every text-encoder adapter gradient by kohya name.
func gradSnapshot(t *testing.T, f *teFixture) map[string][2][]float32 {
	t.Helper()
	out := map[string][2][]float32{}
	for _, m := range f.net.Modules {
		a := moduleAdapter(t, f.text, m)
		out[m.KohyaName()] = [2][]float32{append([]float32{}, a.GradDown.Data...), append([]float32{}, a.GradUp.Data...)}
	}
	return out
}

// The text encoder as gorgonia nodes chained into the UNet's context, with
// cross-attention adapters on the UNet as well: the graph's loss and every
// LoRA gradient equal the direct path (CLIP ForwardTrain, UNet ForwardTrain
// and Backward with the context gradient, CLIP Backward).
func TestCLIPGraphIntoUNet(t *testing.T) {
	f := newTEFixture(t)
	rng := rand.New(rand.NewPCG(5, 6))
	ulayers, err := LoRALayout{UNet: f.unet.Config}.Layers(LoRACrossAttention, false)
	if err != nil {
		t.Fatal(err)
	}
	unet, err := NewLoRANetwork(ulayers, 4, 4, 9)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range unet.Modules {
		for i := range m.Up.Data {
			m.Up.Data[i] = float32(rng.NormFloat64() * 0.1)
		}
	}
	uadapters, err := unet.Attach(f.unet, nil, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.unet.DetachAll()
	latents := teRandomTensor(rng, 2, 4, 8, 8)
	target := teRandomTensor(rng, 2, 4, 8, 8)
	timesteps := []float32{20, 700}
	for skip := 1; skip <= 2; skip++ {
		t.Run(fmt.Sprintf("clip_skip=%d", skip), func(t *testing.T) {
			ctx, err := f.text.ForwardTrain(f.ids, 2, skip)
			if err != nil {
				t.Fatal(err)
			}
			pred, err := f.unet.ForwardTrain(latents, timesteps, ctx)
			if err != nil {
				t.Fatal(err)
			}
			n := float64(len(pred.Data))
			var wantLoss float64
			dpred := nn.New(pred.Shape...)
			for i, p := range pred.Data {
				d := float64(p - target.Data[i])
				wantLoss += d * d / n
				dpred.Data[i] = float32(2 * d / n)
			}
			dctx, err := f.unet.Backward(dpred, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.text.Backward(dctx); err != nil {
				t.Fatal(err)
			}
			want := gradSnapshot(t, f)
			for i, a := range uadapters {
				want[unet.Modules[i].KohyaName()] = [2][]float32{append([]float32{}, a.GradDown.Data...), append([]float32{}, a.GradUp.Data...)}
			}

			g := gorgonia.NewGraph()
			cg, err := f.text.Graph(constNode(g, "input_ids", idsTensor(f.ids, 2)), skip)
			if err != nil {
				t.Fatal(err)
			}
			if wantParams := 12 * (f.text.Config.Layers - skip + 1); len(cg.Params) != wantParams {
				t.Fatalf("%d text-encoder graph params, want %d", len(cg.Params), wantParams)
			}
			if wantSkipped := 6 * (skip - 1); len(cg.Skipped) != wantSkipped {
				t.Fatalf("%d skipped adapters, want %d", len(cg.Skipped), wantSkipped)
			}
			ug, err := f.unet.Graph(constNode(g, "latents", latents), constNode(g, "timesteps", nn.FromData(timesteps, 2)), cg.Output)
			if err != nil {
				t.Fatal(err)
			}
			diff := gorgonia.Must(gorgonia.Sub(ug.Output, constNode(g, "target", target)))
			loss := gorgonia.Must(gorgonia.Mean(gorgonia.Must(gorgonia.Square(diff))))
			if _, err := gorgonia.Grad(loss, append(append([]*gorgonia.Node{}, ug.Params...), cg.Params...)...); err != nil {
				t.Fatal(err)
			}
			type param struct {
				kohya string
				nodes []*gorgonia.Node
			}
			var params []param
			for i, a := range cg.Adapters {
				k := kohyaName("lora_te", cg.Names[i])
				if a.Down != moduleByName(f.net, k).Down {
					t.Errorf("%s: graph adapter is not the network's", k)
				}
				params = append(params, param{k, cg.Params[2*i : 2*i+2]})
			}
			for i := range ug.Adapters {
				params = append(params, param{kohyaName("lora_unet", ug.Names[i]), ug.Params[2*i : 2*i+2]})
			}
			vm := gorgonia.NewTapeMachine(g)
			defer vm.Close()
			for run := range 2 { // the second run reuses every buffer
				if err := vm.RunAll(); err != nil {
					t.Fatal(err)
				}
				if got := float64(loss.Value().Data().(float32)); math.Abs(got-wantLoss) > 1e-5*wantLoss {
					t.Errorf("run %d: loss %v, want %v", run, got, wantLoss)
				}
				for _, p := range params {
					for j, node := range p.nodes {
						got, w := tensorGrad(t, node), want[p.kohya][j]
						if d, s := maxAbsDiff(got, w), maxAbs(w); d > 1e-4*s || s == 0 {
							t.Errorf("run %d: %s matrix %d: relative error %.3g (scale %g)", run, p.kohya, j, d/s, s)
						}
					}
				}
				vm.Reset()
			}
		})
	}
}

func moduleByName(n *LoRANetwork, kohya string) *LoRAModule {
	for _, m := range n.Modules {
		if m.KohyaName() == kohya {
			return m
		}
	}
	return nil
}

// With only some adapters trainable, Backward stops early (no attention
// backward under out_proj or MLP-only adapters, nothing below the lowest
// trainable layer); the gradients it writes equal those of a full backward.
func TestCLIPPartialTrainable(t *testing.T) {
	f := newTEFixture(t)
	rng := rand.New(rand.NewPCG(7, 8))
	r := teRandomTensor(rng, 2, 16, f.text.Config.Width)
	setTrainable := func(keep func(kohya string) bool) {
		for _, m := range f.net.Modules {
			moduleAdapter(t, f.text, m).Trainable = keep(m.KohyaName())
		}
	}
	for skip := 1; skip <= 2; skip++ {
		setTrainable(func(string) bool { return true })
		if _, err := f.text.ForwardTrain(f.ids, 2, skip); err != nil {
			t.Fatal(err)
		}
		if err := f.text.Backward(r); err != nil {
			t.Fatal(err)
		}
		want := gradSnapshot(t, f)
		for _, suffix := range []string{"self_attn_out_proj", "mlp_fc2", "mlp_fc1", "self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj"} {
			for layer := range 2 - skip + 1 {
				name := fmt.Sprintf("lora_te_text_model_encoder_layers_%d_%s", layer, suffix)
				if moduleByName(f.net, name) == nil {
					t.Fatalf("no module %s", name)
				}
				t.Run(fmt.Sprintf("clip_skip=%d/%s", skip, name), func(t *testing.T) {
					setTrainable(func(k string) bool { return k == name })
					a := moduleAdapter(t, f.text, moduleByName(f.net, name))
					clear(a.GradDown.Data)
					clear(a.GradUp.Data)
					if _, err := f.text.ForwardTrain(f.ids, 2, skip); err != nil {
						t.Fatal(err)
					}
					if err := f.text.Backward(r); err != nil {
						t.Fatal(err)
					}
					for j, got := range [][]float32{a.GradDown.Data, a.GradUp.Data} {
						w := want[name][j]
						if d, s := maxAbsDiff(got, w), maxAbs(w); d > 1e-5*s || s == 0 {
							t.Errorf("matrix %d: max|diff| %g, scale %g", j, d, s)
						}
					}
				})
			}
		}
	}
	setTrainable(func(string) bool { return true })
}

// BenchmarkCLIPTrainStep is the text encoder's part of a training step with
// text-encoder LoRA (rank 8 on all 72 layers of the full-size ViT-L/14 text
// tower, random weights): ForwardTrain and Backward of one 77-token prompt.
func BenchmarkCLIPTrainStep(b *testing.B) {
	cfg := SD15Config()
	m, err := LoadCLIPTextModel(RandomWeights(1), cfg.CLIP)
	if err != nil {
		b.Fatal(err)
	}
	u, err := NewUNet(cfg.UNet)
	if err != nil {
		b.Fatal(err)
	}
	all, err := LoRALayoutOf(cfg).Layers(LoRACrossAttention, true)
	if err != nil {
		b.Fatal(err)
	}
	var layers []LoRALayer
	for _, l := range all {
		if l.TextEncoder {
			layers = append(layers, l)
		}
	}
	net, err := NewLoRANetwork(layers, 8, 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := net.Attach(u, m, 1, true); err != nil {
		b.Fatal(err)
	}
	ids := tokenizer(b).Encode("a photo of sks dog sitting on a beach at sunset, highly detailed, masterpiece")
	grad := teRandomTensor(rand.New(rand.NewPCG(1, 1)), 1, len(ids), cfg.CLIP.Width)
	defer reportCPUTime(b)()
	for b.Loop() {
		if _, err := m.ForwardTrain(ids, 1, 1); err != nil {
			b.Fatal(err)
		}
		if err := m.Backward(grad); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCLIPGraphErrors(t *testing.T) {
	m, err := LoadCLIPTextModel(RandomWeights(1), TinyCLIPConfig())
	if err != nil {
		t.Fatal(err)
	}
	g := gorgonia.NewGraph()
	if _, err := m.Graph(constNode(g, "ids", nn.New(1, 4)), 3); err == nil {
		t.Error("clip skip 3 on 2 layers: no error")
	}
	if _, err := m.Graph(constNode(g, "ids", nn.New(1, 78)), 1); err == nil {
		t.Error("78 tokens: no error")
	}
	for _, bad := range []float32{1.5, -1, float32(VocabSize)} {
		g := gorgonia.NewGraph()
		ids := nn.FromData([]float32{49406, bad, 49407}, 1, 3)
		if _, err := m.Graph(constNode(g, "ids", ids), 1); err != nil {
			t.Fatal(err)
		}
		vm := gorgonia.NewTapeMachine(g)
		if err := vm.RunAll(); err == nil {
			t.Errorf("token id %v: no error", bad)
		}
		vm.Close()
	}
}
