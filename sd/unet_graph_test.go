package sd

import (
	"math"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"lorastudio/nn"
)

func constNode(g *gorgonia.ExprGraph, name string, t *nn.Tensor) *gorgonia.Node {
	v := tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(t.Data))
	return gorgonia.NewTensor(g, tensor.Float32, len(t.Shape), gorgonia.WithShape(t.Shape...), gorgonia.WithName(name), gorgonia.WithValue(v))
}

// The golden LoRA gradients through a gorgonia graph of UNet nodes: loss
// and Grad are gorgonia's, the nodes are the UNet's.
func TestUNetGraphLoRAGradients(t *testing.T) {
	u := tinyUNet(t)
	g := fixture(t, "golden_lora.safetensors")
	adapters := attachTestLoRA(t, u, "lora_tiny_kohya.safetensors")
	in := goldenInputs(t, g)
	target := golden(t, g, "target")

	graph := gorgonia.NewGraph()
	ts := nn.FromData(in.timesteps, len(in.timesteps))
	ug, err := u.Graph(constNode(graph, "latents", in.latents), constNode(graph, "timesteps", ts), constNode(graph, "context", in.ctx))
	if err != nil {
		t.Fatal(err)
	}
	if len(ug.Params) != 48 || len(ug.Adapters) != 24 {
		t.Fatalf("%d params for %d adapters, want 48 and 24", len(ug.Params), len(ug.Adapters))
	}
	diff := gorgonia.Must(gorgonia.Sub(ug.Output, constNode(graph, "target", target)))
	loss := gorgonia.Must(gorgonia.Mean(gorgonia.Must(gorgonia.Square(diff))))
	if _, err := gorgonia.Grad(loss, ug.Params...); err != nil {
		t.Fatal(err)
	}
	vm := gorgonia.NewTapeMachine(graph)
	defer vm.Close()
	for run := 0; run < 2; run++ { // a second run reuses every buffer
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		got := loss.Value().Data().(float32)
		if want := golden(t, g, "loss").Data[0]; math.Abs(float64(got-want)) > 1e-4*math.Abs(float64(want)) {
			t.Errorf("run %d: loss %v, want %v", run, got, want)
		}
		byAdapter := map[*Adapter]int{}
		for i, a := range ug.Adapters {
			byAdapter[a] = i
		}
		for k, a := range adapters {
			i := byAdapter[a]
			for j, suffix := range []string{".lora_down.weight.grad", ".lora_up.weight.grad"} {
				gv, err := ug.Params[2*i+j].Grad()
				if err != nil {
					t.Fatal(err)
				}
				got := gv.Data().([]float32)
				want := golden(t, g, k+suffix)
				if d, scale := maxAbsDiff(got, want.Data), maxAbs(want.Data); d > 1e-4*scale {
					t.Errorf("run %d: %s%s relative error %.3g", run, k, suffix, d/scale)
				}
			}
		}
		vm.Reset()
	}
}
