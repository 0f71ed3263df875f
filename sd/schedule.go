package sd

import (
	"fmt"
	"math"
	"math/rand/v2"

	"lorastudio/nn"
)

// SD 1.x noise schedule constants (diffusers' scaled_linear DDPM schedule).
const (
	TrainTimesteps = 1000
	BetaStart      = 0.00085
	BetaEnd        = 0.012
	// LatentScale maps VAE latents to the unit-variance space the UNet was
	// trained in (first_stage_model.scale_factor).
	LatentScale = 0.18215
)

// Schedule is the DDPM forward process SD 1.x was trained with: betas and
// their cumulative alpha products, computed in float32 exactly as diffusers
// does so timesteps map to the same noise levels.
type Schedule struct {
	Betas         []float32
	AlphasCumprod []float32
}

// NewSchedule returns SD 1.x's 1000-step scaled-linear schedule:
// beta = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2, abar = cumprod(1-beta).
// The values are bit-identical to diffusers' on PyTorch's CPU kernels.
func NewSchedule() *Schedule {
	n := TrainTimesteps
	s := &Schedule{Betas: torchLinspace(float32(math.Sqrt(BetaStart)), float32(math.Sqrt(BetaEnd)), n), AlphasCumprod: make([]float32, n)}
	prod := 1.0 // torch.cumprod accumulates float32 in double
	for i, v := range s.Betas {
		s.Betas[i] = v * v
		prod *= float64(1 - s.Betas[i])
		s.AlphasCumprod[i] = float32(prod)
	}
	return s
}

// torchLinspace is torch.linspace in float32 as its AVX2 CPU kernel computes
// it: the first half counts up from start and the second half down from end;
// each 8-lane vector starts at a fused multiply-add and its lanes add j*step;
// elements past the last pair of vectors take the scalar (fused) formula.
func torchLinspace(start, end float32, n int) []float32 {
	const lanes = 8
	step := (end - start) / float32(n-1)
	at := func(i int) float32 {
		if i < n/2 {
			return float32(math.FMA(float64(step), float64(i), float64(start)))
		}
		return float32(math.FMA(-float64(step), float64(n-1-i), float64(end)))
	}
	out := make([]float32, n)
	i := 0
	for ; i+2*lanes <= n; i += lanes {
		base := at(i)
		for j := range lanes {
			out[i+j] = base + float32(step*float32(j))
		}
	}
	for ; i < n; i++ {
		out[i] = at(i)
	}
	return out
}

// AddNoise returns x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise for a batch:
// x0 and noise are [B, ...] and timesteps holds one t in [0, 999] per sample.
func (s *Schedule) AddNoise(x0, noise *nn.Tensor, timesteps []int) (*nn.Tensor, error) {
	if !nn.SameShape(x0.Shape, noise.Shape) {
		return nil, fmt.Errorf("add noise: sample %v and noise %v differ", x0.Shape, noise.Shape)
	}
	if len(x0.Shape) == 0 || x0.Shape[0] != len(timesteps) {
		return nil, fmt.Errorf("add noise: %d timesteps for sample %v", len(timesteps), x0.Shape)
	}
	out := nn.New(x0.Shape...)
	per := x0.Numel() / len(timesteps)
	for b, t := range timesteps {
		if t < 0 || t >= len(s.AlphasCumprod) {
			return nil, fmt.Errorf("add noise: timestep %d outside [0, %d)", t, len(s.AlphasCumprod))
		}
		a := float32(math.Sqrt(float64(s.AlphasCumprod[t])))
		c := float32(math.Sqrt(float64(1 - s.AlphasCumprod[t])))
		lo, hi := b*per, (b+1)*per
		xs, ns, os := x0.Data[lo:hi], noise.Data[lo:hi], out.Data[lo:hi]
		for i := range os {
			os[i] = a*xs[i] + c*ns[i]
		}
	}
	return out, nil
}

// SNR is the signal-to-noise ratio abar_t / (1 - abar_t) at timestep t, the
// quantity min-SNR loss weighting clips.
func (s *Schedule) SNR(t int) float64 {
	a := float64(s.AlphasCumprod[t])
	return a / (1 - a)
}

// sigmas are the noise levels sqrt((1 - abar_t) / abar_t) of the
// variance-exploding view that Euler samplers work in, one per timestep.
func (s *Schedule) sigmas() []float32 {
	out := make([]float32, len(s.AlphasCumprod))
	for i, a := range s.AlphasCumprod {
		out[i] = float32(math.Sqrt(float64((1 - a) / a)))
	}
	return out
}

// Noise returns a tensor of independent N(0, 1) samples drawn from rng, the
// starting latents of a sampler and the noise of a training step.
func Noise(rng *rand.Rand, shape ...int) *nn.Tensor {
	t := nn.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}
