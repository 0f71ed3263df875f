package sd

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gorgonia.org/gorgonia"

	"lorastudio/internal/benchmetrics"
	"lorastudio/nn"
)

// The benchmarks run the full-size SD 1.5 UNet with random weights. Run one
// benchmark per process to read its own peak resident memory (VmHWM is the
// process's high-water mark), e.g.
//
//	OPENBLAS_CORETYPE=SkylakeX go test ./sd -run '^$' -bench 'UNetForward64/batch1' -benchtime 2x

var sd15 = sync.OnceValues(func() (*UNet, error) {
	return LoadUNet(newRandSource(1), SD15UNetConfig())
})

func benchUNet(b *testing.B) *UNet {
	u, err := sd15()
	if err != nil {
		b.Fatal(err)
	}
	u.DetachAll()
	return u
}

// peakRSS reports the process's peak resident set in GiB, when known.
func peakRSS(b *testing.B) {
	if peak := benchmetrics.PeakRSS(); peak > 0 {
		b.ReportMetric(float64(peak)/(1<<30), "peakGB")
	}
}

func benchInputs(batch, size int) (*nn.Tensor, []float32, *nn.Tensor) {
	rng := rand.New(rand.NewPCG(3, 3))
	ts := make([]float32, batch)
	for i := range ts {
		ts[i] = float32(100 + 400*i)
	}
	return randTensor(rng, 1, batch, 4, size, size), ts, randTensor(rng, 1, batch, 77, 768)
}

func BenchmarkUNetForward64(b *testing.B) {
	for _, batch := range []int{1, 2} {
		b.Run("batch"+strconv.Itoa(batch), func(b *testing.B) {
			u := benchUNet(b)
			x, ts, ctx := benchInputs(batch, 64)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := benchmetrics.CPUTime()
			for range b.N {
				y, err := u.Forward(x, ts, ctx)
				if err != nil {
					b.Fatal(err)
				}
				u.scratch.Release(y)
			}
			b.StopTimer()
			b.ReportMetric((benchmetrics.CPUTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
			peakRSS(b)
		})
	}
}

// attachCrossAttention attaches trainable rank-r adapters to attn2's
// q/k/v/out of every transformer block, as the default training does.
func attachCrossAttention(b *testing.B, u *UNet, rank int) {
	rng := rand.New(rand.NewPCG(4, 4))
	if err := u.Linears(func(name string, l *Linear) error {
		if !strings.Contains(name, ".attn2.") {
			return nil
		}
		return l.Attach(&Adapter{Down: randTensor(rng, 0.05, rank, l.In), Up: randTensor(rng, 0.05, l.Out, rank),
			Scale: 1 / float32(rank), Multiplier: 1, Trainable: true})
	}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkUNetTrainStep is one LoRA training step's UNet work: forward
// keeping activations, MSE, and the input-gradient backward that yields the
// rank-8 cross-attention adapters' gradients.
func BenchmarkUNetTrainStep(b *testing.B) {
	for _, size := range []int{64, 32} {
		b.Run(strconv.Itoa(size*8)+"px", func(b *testing.B) {
			u := benchUNet(b)
			attachCrossAttention(b, u, 8)
			defer u.DetachAll()
			x, ts, ctx := benchInputs(1, size)
			target := randTensor(rand.New(rand.NewPCG(5, 5)), 1, x.Shape...)
			dy := nn.New(x.Shape...)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := benchmetrics.CPUTime()
			for range b.N {
				y, err := u.ForwardTrain(x, ts, ctx)
				if err != nil {
					b.Fatal(err)
				}
				nn.MSEBackward(dy.Data, y.Data, target.Data, 1)
				if _, err := u.Backward(dy, false); err != nil {
					b.Fatal(err)
				}
				u.scratch.Release(y)
			}
			b.StopTimer()
			b.ReportMetric((benchmetrics.CPUTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
			peakRSS(b)
		})
	}
}

// BenchmarkUNetGraphTrainStep is BenchmarkUNetTrainStep through a gorgonia
// graph of the UNet's nodes, with gorgonia computing the MSE and its
// gradient, the way the trainer runs a step.
func BenchmarkUNetGraphTrainStep(b *testing.B) {
	for _, size := range []int{64, 32} {
		b.Run(strconv.Itoa(size*8)+"px", func(b *testing.B) {
			u := benchUNet(b)
			attachCrossAttention(b, u, 8)
			defer u.DetachAll()
			x, ts, ctx := benchInputs(1, size)
			target := randTensor(rand.New(rand.NewPCG(5, 5)), 1, x.Shape...)
			g := gorgonia.NewGraph()
			ug, err := u.Graph(constNode(g, "latents", x), constNode(g, "timesteps", nn.FromData(ts, len(ts))), constNode(g, "context", ctx))
			if err != nil {
				b.Fatal(err)
			}
			diff := gorgonia.Must(gorgonia.Sub(ug.Output, constNode(g, "target", target)))
			loss := gorgonia.Must(gorgonia.Mean(gorgonia.Must(gorgonia.Square(diff))))
			if _, err := gorgonia.Grad(loss, ug.Params...); err != nil {
				b.Fatal(err)
			}
			vm := gorgonia.NewTapeMachine(g)
			defer vm.Close()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := benchmetrics.CPUTime()
			for range b.N {
				if err := vm.RunAll(); err != nil {
					b.Fatal(err)
				}
				vm.Reset()
			}
			b.StopTimer()
			b.ReportMetric((benchmetrics.CPUTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
			peakRSS(b)
		})
	}
}
