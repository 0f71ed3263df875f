package trainer

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"lorastudio/internal/benchmetrics"
	"lorastudio/nn"
	"lorastudio/sd"
)

// sd15 is the full-size SD 1.5-shaped model with random weights, built
// once per process: UNet, VAE and text encoder, all in memory as a run
// holds them.
var sd15 = sync.OnceValues(func() (*sd.Model, error) {
	return sd.NewRandomModel(sd.SD15Config(), 1)
})

// BenchmarkTrainStep is one optimizer step of the trainer on the full-size
// model: batch 1, rank-8 cross-attention LoRA, latents and text embedding
// cached, gradient clipping and AdamW included. "graph" is the shipped path
// (gorgonia graph of UNet nodes, Grad, TapeMachine); "direct" calls
// UNet.ForwardTrain and Backward for comparison. cpu-s/op divided by the
// core count is the step time on an idle machine; peakGB is the process's
// peak resident memory, so run one sub-benchmark per process:
//
//	OPENBLAS_CORETYPE=SkylakeX go test ./trainer -run '^$' -bench 'TrainStep/512px/graph' -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	for _, px := range []int{512, 256} {
		for _, path := range []string{"graph", "direct"} {
			b.Run(fmt.Sprintf("%dpx/%s", px, path), func(b *testing.B) { benchStep(b, px/8, path == "graph") })
		}
	}
}

func benchStep(b *testing.B, size int, graph bool) {
	m, err := sd15()
	if err != nil {
		b.Fatal(err)
	}
	layers, err := sd.LoRALayoutOf(m.Config).Layers(sd.LoRACrossAttention, false)
	if err != nil {
		b.Fatal(err)
	}
	net, err := sd.NewLoRANetwork(layers, 8, 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	adapters, err := net.Attach(m.UNet, nil, 1, true)
	if err != nil {
		b.Fatal(err)
	}
	defer m.UNet.DetachAll()
	order := map[*sd.Adapter]int{}
	var params, grads [][]float32
	var lrs []float64
	var sizes []int
	for i, a := range adapters {
		order[a] = i
	}
	for _, p := range net.Params() {
		params = append(params, p.Data)
		grads = append(grads, make([]float32, len(p.Data)))
		lrs = append(lrs, 1e-4)
		sizes = append(sizes, len(p.Data))
	}
	opt := NewAdamW(DefaultAdamWOptions(), sizes)
	rng := rand.New(rand.NewPCG(3, 3))
	fill := func(t *nn.Tensor) *nn.Tensor {
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64())
		}
		return t
	}
	x, ctx, noise := fill(nn.New(1, 4, size, size)), fill(nn.New(1, sd.ContextLength, 768)), fill(nn.New(1, 4, size, size))
	ts := []float32{500}

	var step func() error
	if graph {
		g, err := newStepGraph(m, order, false, 1, 1, size, size)
		if err != nil {
			b.Fatal(err)
		}
		copy(g.noisy.Data, x.Data)
		copy(g.context.Data, ctx.Data)
		copy(g.target.Data, noise.Data)
		copy(g.timesteps.Data, ts)
		step = func() error {
			_, err := g.run([]float32{1}, grads, 1)
			return err
		}
	} else {
		dy := nn.New(x.Shape...)
		step = func() error {
			y, err := m.UNet.ForwardTrain(x, ts, ctx)
			if err != nil {
				return err
			}
			nn.MSEBackward(dy.Data, y.Data, noise.Data, 1)
			if _, err := m.UNet.Backward(dy, false); err != nil {
				return err
			}
			for i, a := range adapters {
				copy(grads[2*i], a.GradDown.Data)
				copy(grads[2*i+1], a.GradUp.Data)
			}
			return nil
		}
	}
	optimizerStep := func() {
		for _, g := range grads {
			clear(g)
		}
		if err := step(); err != nil {
			b.Fatal(err)
		}
		ClipGradNorm(grads, 1)
		if err := opt.Update(params, grads, lrs); err != nil {
			b.Fatal(err)
		}
	}
	optimizerStep() // first-step allocations
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	cpu := benchmetrics.CPUTime()
	for range b.N {
		optimizerStep()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric((benchmetrics.CPUTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "allocMB/op")
	b.ReportMetric(float64(benchmetrics.PeakRSS())/(1<<30), "peakGB")
}
