package sd

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"lorastudio/nn"
)

// Denoiser is one UNet evaluation: the noise predicted in latents x
// [B, 4, h, w] at timestep t (fractional for Euler samplers) under the text
// conditioning cond [B, tokens, dim]. Samplers only see this function, so
// they work with any UNet, with or without LoRA.
type Denoiser func(x *nn.Tensor, t float32, cond *nn.Tensor) (*nn.Tensor, error)

// Guidance wraps d with classifier-free guidance: the unconditional and the
// conditional predictions run as one batch of 2B (uncond first) and combine
// as eps_u + scale (eps_c - eps_u). uncond is [B, tokens, dim] or
// [1, tokens, dim] (shared by the batch), usually the empty prompt's
// conditioning. A scale of 1 skips the unconditional pass.
func Guidance(d Denoiser, uncond *nn.Tensor, scale float32) Denoiser {
	if scale == 1 {
		return d
	}
	return func(x *nn.Tensor, t float32, cond *nn.Tensor) (*nn.Tensor, error) {
		b := x.Shape[0]
		if len(cond.Shape) != 3 || cond.Shape[0] != b {
			return nil, fmt.Errorf("guidance: conditioning %v for latents %v", cond.Shape, x.Shape)
		}
		if len(uncond.Shape) != 3 || uncond.Shape[1] != cond.Shape[1] || uncond.Shape[2] != cond.Shape[2] ||
			(uncond.Shape[0] != 1 && uncond.Shape[0] != b) {
			return nil, fmt.Errorf("guidance: unconditional %v does not match conditioning %v", uncond.Shape, cond.Shape)
		}
		xx := nn.New(append([]int{2 * b}, x.Shape[1:]...)...)
		copy(xx.Data, x.Data)
		copy(xx.Data[len(x.Data):], x.Data)
		cc := nn.New(2*b, cond.Shape[1], cond.Shape[2])
		per := cond.Shape[1] * cond.Shape[2]
		for i := range b {
			copy(cc.Data[i*per:(i+1)*per], uncond.Data[(i%uncond.Shape[0])*per:])
		}
		copy(cc.Data[b*per:], cond.Data)
		out, err := d(xx, t, cc)
		if err != nil {
			return nil, err
		}
		if out.Numel() != xx.Numel() {
			return nil, fmt.Errorf("guidance: denoiser returned %v for input %v", out.Shape, xx.Shape)
		}
		eps := nn.New(x.Shape...)
		n := x.Numel()
		CFG(eps.Data, out.Data[:n], out.Data[n:], scale)
		return eps, nil
	}
}

// CFG writes dst = uncond + scale (cond - uncond).
func CFG(dst, uncond, cond []float32, scale float32) {
	for i := range dst {
		dst[i] = uncond[i] + scale*(cond[i]-uncond[i])
	}
}

// Sampler is one reverse-diffusion method with a fixed number of steps.
// Step i feeds the UNet ScaleInput(x, i) at Timesteps()[i] and turns its noise
// prediction into the latents for step i+1.
type Sampler interface {
	Timesteps() []float32
	// InitNoiseSigma scales N(0, 1) noise to the first step's noise level.
	InitNoiseSigma() float32
	ScaleInput(x *nn.Tensor, i int) *nn.Tensor
	Step(x, eps *nn.Tensor, i int, rng *rand.Rand) *nn.Tensor
}

// SamplerNames lists the methods NewSampler knows, in kohya's spelling.
var SamplerNames = []string{"euler_a", "euler", "ddim"}

// NewSampler returns the named sampler ("ddim", "euler", "euler_a"; the
// "k_" prefixes of kohya's sample prompts are accepted) with steps steps
// over schedule s, configured as diffusers' SD 1.5 schedulers.
func NewSampler(name string, steps int, s *Schedule) (Sampler, error) {
	if steps < 1 || steps > TrainTimesteps {
		return nil, fmt.Errorf("sampler %s: %d steps, want 1 to %d", name, steps, TrainTimesteps)
	}
	switch strings.TrimPrefix(strings.ToLower(name), "k_") {
	case "ddim":
		if steps == TrainTimesteps {
			// steps_offset 1 would put the first step at t=1000, past the schedule.
			return nil, fmt.Errorf("sampler ddim: at most %d steps", TrainTimesteps-1)
		}
		return NewDDIM(s, steps), nil
	case "euler":
		return NewEuler(s, steps, false), nil
	case "euler_a", "euler_ancestral":
		return NewEuler(s, steps, true), nil
	}
	return nil, fmt.Errorf("unknown sampler %q (supported: %s)", name, strings.Join(SamplerNames, ", "))
}

// Sample runs sampler from N(0, 1) noise to clean latents, calling d once per
// step with cond. rng draws the ancestral noise of euler_a. progress, when
// not nil, is called after every step. Cancelling ctx stops between steps.
func Sample(ctx context.Context, sampler Sampler, noise *nn.Tensor, d Denoiser, cond *nn.Tensor, rng *rand.Rand, progress func(step, total int)) (*nn.Tensor, error) {
	if rng == nil {
		return nil, fmt.Errorf("sample: nil random source")
	}
	x := noise.Clone()
	nn.Scale(x.Data, sampler.InitNoiseSigma())
	ts := sampler.Timesteps()
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		eps, err := d(sampler.ScaleInput(x, i), t, cond)
		if err != nil {
			return nil, fmt.Errorf("sample step %d/%d (t=%g): %w", i+1, len(ts), t, err)
		}
		if !nn.SameShape(eps.Shape, x.Shape) {
			return nil, fmt.Errorf("sample step %d/%d: denoiser returned %v for latents %v", i+1, len(ts), eps.Shape, x.Shape)
		}
		x = sampler.Step(x, eps, i, rng)
		if progress != nil {
			progress(i+1, len(ts))
		}
	}
	return x, nil
}

// DDIM is the deterministic DDIM sampler (eta 0) with diffusers' SD 1.5
// options: "leading" timestep spacing, steps_offset 1, set_alpha_to_one false.
type DDIM struct {
	acp       []float32
	timesteps []int
	ratio     int
}

// NewDDIM spaces steps timesteps as t_k = k*(1000/steps) + 1, descending.
func NewDDIM(s *Schedule, steps int) *DDIM {
	d := &DDIM{acp: s.AlphasCumprod, ratio: TrainTimesteps / steps}
	for k := steps - 1; k >= 0; k-- {
		d.timesteps = append(d.timesteps, k*d.ratio+1)
	}
	return d
}

// Timesteps returns the UNet timesteps, descending.
func (d *DDIM) Timesteps() []float32 {
	out := make([]float32, len(d.timesteps))
	for i, t := range d.timesteps {
		out[i] = float32(t)
	}
	return out
}

// InitNoiseSigma is 1: DDIM works on x_t itself.
func (d *DDIM) InitNoiseSigma() float32 { return 1 }

// ScaleInput returns x unchanged.
func (d *DDIM) ScaleInput(x *nn.Tensor, i int) *nn.Tensor { return x }

// Step predicts x0 = (x - sqrt(1-abar_t) eps) / sqrt(abar_t) and moves to the
// previous timestep along the same noise: x' = sqrt(abar') x0 + sqrt(1-abar') eps.
func (d *DDIM) Step(x, eps *nn.Tensor, i int, _ *rand.Rand) *nn.Tensor {
	t := d.timesteps[i]
	at := float64(d.acp[t])
	aPrev := float64(d.acp[0])
	if p := t - d.ratio; p >= 0 {
		aPrev = float64(d.acp[p])
	}
	sqrtBeta := float32(math.Sqrt(1 - at))
	invSqrtA := float32(1 / math.Sqrt(at))
	sqrtAPrev := float32(math.Sqrt(aPrev))
	dir := float32(math.Sqrt(1 - aPrev))
	out := nn.New(x.Shape...)
	for j, xv := range x.Data {
		e := eps.Data[j]
		x0 := (xv - sqrtBeta*e) * invSqrtA
		out.Data[j] = sqrtAPrev*x0 + dir*e
	}
	return out
}

// Euler is diffusers' EulerDiscreteScheduler (s_churn 0) or, with Ancestral,
// EulerAncestralDiscreteScheduler: sigmas interpolated linearly over
// "linspace"-spaced timesteps, with 0 appended.
type Euler struct {
	Ancestral bool
	timesteps []float32
	sigmas    []float32
}

// NewEuler spaces steps timesteps evenly from 999 to 0.
func NewEuler(s *Schedule, steps int, ancestral bool) *Euler {
	all := s.sigmas()
	e := &Euler{Ancestral: ancestral}
	last := float64(len(all) - 1)
	for i := range steps {
		// numpy.linspace(0, 999, steps, dtype=float32) reversed, then numpy.interp in float64.
		k := steps - 1 - i
		t := 0.0 // numpy.linspace with one value gives the start
		switch {
		case k == steps-1 && steps > 1:
			t = last
		case k > 0:
			t = float64(k) * (last / float64(steps-1))
		}
		t = float64(float32(t))
		lo := int(math.Floor(t))
		sigma := float64(all[lo])
		if lo+1 < len(all) {
			sigma += (t - float64(lo)) * (float64(all[lo+1]) - float64(all[lo]))
		}
		e.timesteps = append(e.timesteps, float32(t))
		e.sigmas = append(e.sigmas, float32(sigma))
	}
	e.sigmas = append(e.sigmas, 0)
	return e
}

// Timesteps returns the (fractional) UNet timesteps, descending.
func (e *Euler) Timesteps() []float32 { return append([]float32(nil), e.timesteps...) }

// Sigmas returns the noise level of every step, then 0.
func (e *Euler) Sigmas() []float32 { return append([]float32(nil), e.sigmas...) }

// InitNoiseSigma is the largest sigma.
func (e *Euler) InitNoiseSigma() float32 { return e.sigmas[0] }

// ScaleInput returns x / sqrt(sigma^2 + 1), the x_t the UNet was trained on.
func (e *Euler) ScaleInput(x *nn.Tensor, i int) *nn.Tensor {
	s := float64(e.sigmas[i])
	out := x.Clone()
	nn.Scale(out.Data, float32(1/math.Sqrt(s*s+1)))
	return out
}

// Step moves from sigma_i to sigma_{i+1} along the predicted noise. The
// ancestral variant steps down to sigma_down and adds fresh noise of
// sigma_up, with sigma_down^2 + sigma_up^2 = sigma_{i+1}^2.
func (e *Euler) Step(x, eps *nn.Tensor, i int, rng *rand.Rand) *nn.Tensor {
	from, to := float64(e.sigmas[i]), float64(e.sigmas[i+1])
	target, up := to, 0.0
	if e.Ancestral {
		up = math.Sqrt(to * to * (from*from - to*to) / (from * from))
		target = math.Sqrt(to*to - up*up)
	}
	dt := float32(target - from)
	out := nn.New(x.Shape...)
	for j, xv := range x.Data {
		// x0 = x - sigma*eps, so the derivative (x - x0)/sigma is eps itself.
		out.Data[j] = xv + eps.Data[j]*dt
	}
	if up > 0 {
		u := float32(up)
		for j := range out.Data {
			out.Data[j] += float32(rng.NormFloat64()) * u
		}
	}
	return out
}
