package sd

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"lorastudio/nn"
)

// fixture opens testdata/name and closes it when the test ends.
func fixture(t testing.TB, name string) *nn.File {
	t.Helper()
	f, err := nn.OpenSafetensors(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func fixtureTensor(t testing.TB, f *nn.File, name string) *nn.Tensor {
	t.Helper()
	x, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func fixtureInts(t testing.TB, f *nn.File, name string) []int {
	t.Helper()
	v, _, err := f.Int64(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

// checkClose fails when got and want differ in shape or by more than tol
// anywhere, reporting the largest difference.
func checkClose(t testing.TB, what string, got, want *nn.Tensor, tol float64) {
	t.Helper()
	if got.Numel() != want.Numel() {
		t.Fatalf("%s: %d values %v, want %d %v", what, got.Numel(), got.Shape, want.Numel(), want.Shape)
	}
	worst, at := 0.0, 0
	for i := range got.Data {
		d := math.Abs(float64(got.Data[i]) - float64(want.Data[i]))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: max|diff| %.3g at %d (got %g, want %g), tolerance %.0e", what, worst, at, got.Data[at], want.Data[at], tol)
	} else {
		t.Logf("%s: max|diff| %.3g", what, worst)
	}
}

func TestScheduleMatchesDiffusers(t *testing.T) {
	f := fixture(t, "golden_scheduler.safetensors")
	s := NewSchedule()
	checkClose(t, "betas", nn.FromData(s.Betas, len(s.Betas)), fixtureTensor(t, f, "ddpm_betas"), 0)
	checkClose(t, "alphas_cumprod", nn.FromData(s.AlphasCumprod, len(s.AlphasCumprod)), fixtureTensor(t, f, "ddpm_alphas_cumprod"), 0)
	for _, c := range []struct {
		t    int
		want float64
	}{{0, 0.99915}, {499, 0.277670}, {999, 0.0046601}} {
		if got := float64(s.AlphasCumprod[c.t]); math.Abs(got-c.want) > 5e-6 {
			t.Errorf("abar_%d = %.7f, want %.7f", c.t, got, c.want)
		}
	}

	x0 := fixtureTensor(t, f, "add_noise_original")
	noise := fixtureTensor(t, f, "add_noise_noise")
	got, err := s.AddNoise(x0, noise, fixtureInts(t, f, "add_noise_timesteps"))
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "add_noise", got, fixtureTensor(t, f, "add_noise_out"), 1e-5)
}

func TestAddNoiseErrors(t *testing.T) {
	s := NewSchedule()
	x := nn.New(2, 4, 2, 2)
	for _, tc := range []struct {
		name  string
		noise *nn.Tensor
		ts    []int
	}{
		{"shape", nn.New(2, 4, 2, 3), []int{1, 2}},
		{"count", nn.New(2, 4, 2, 2), []int{1}},
		{"range", nn.New(2, 4, 2, 2), []int{1, 1000}},
		{"negative", nn.New(2, 4, 2, 2), []int{-1, 0}},
	} {
		if _, err := s.AddNoise(x, tc.noise, tc.ts); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestDDIMMatchesDiffusers(t *testing.T) {
	f := fixture(t, "golden_scheduler.safetensors")
	d := NewDDIM(NewSchedule(), 20)
	want := fixtureInts(t, f, "ddim20_timesteps")
	ts := d.Timesteps()
	if len(ts) != len(want) {
		t.Fatalf("%d timesteps, want %d", len(ts), len(want))
	}
	for i := range ts {
		if int(ts[i]) != want[i] {
			t.Fatalf("timesteps %v, want %v", ts, want)
		}
	}
	x := fixtureTensor(t, f, "step_sample")
	eps := fixtureTensor(t, f, "step_model_output")
	checkClose(t, "ddim step 0", d.Step(x, eps, 0, nil), fixtureTensor(t, f, "ddim20_step0_prev_sample"), 1e-5)
}

func TestEulerMatchesDiffusers(t *testing.T) {
	f := fixture(t, "golden_scheduler.safetensors")
	e := NewEuler(NewSchedule(), 20, false)
	checkClose(t, "euler timesteps", nn.FromData(e.Timesteps(), 20), fixtureTensor(t, f, "euler20_timesteps"), 1e-4)
	checkClose(t, "euler sigmas", nn.FromData(e.Sigmas(), 21), fixtureTensor(t, f, "euler20_sigmas"), 1e-5)
	init := fixtureTensor(t, f, "euler20_init_noise_sigma")
	if d := math.Abs(float64(e.InitNoiseSigma() - init.Data[0])); d > 1e-5 {
		t.Errorf("init noise sigma %g, want %g", e.InitNoiseSigma(), init.Data[0])
	}
	x := fixtureTensor(t, f, "step_sample")
	eps := fixtureTensor(t, f, "step_model_output")
	checkClose(t, "euler scaled input", e.ScaleInput(x, 0), fixtureTensor(t, f, "euler20_step0_scaled_input"), 1e-6)
	checkClose(t, "euler step 0", e.Step(x, eps, 0, nil), fixtureTensor(t, f, "euler20_step0_prev_sample"), 1e-4)
}

func TestEulerAncestralStep(t *testing.T) {
	e := NewEuler(NewSchedule(), 10, true)
	sig := e.Sigmas()
	x := nn.New(1, 4, 8, 8)
	eps := nn.New(1, 4, 8, 8)
	for i := range x.Data {
		x.Data[i] = float32(i%7) - 3
		eps.Data[i] = float32(i%5)/5 - 0.4
	}
	// With zero noise the ancestral step is an Euler step to sigma_down.
	for _, i := range []int{0, 5, 9} {
		from, to := float64(sig[i]), float64(sig[i+1])
		up := math.Sqrt(to * to * (from*from - to*to) / (from * from))
		down := math.Sqrt(to*to - up*up)
		if math.Abs(down*down+up*up-to*to) > 1e-9 {
			t.Fatalf("step %d: sigma_down^2 + sigma_up^2 != sigma_next^2", i)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		got := e.Step(x, eps, i, rng)
		rng = rand.New(rand.NewPCG(1, 2))
		for j := range got.Data {
			want := float64(x.Data[j]) + float64(eps.Data[j])*(down-from) + rng.NormFloat64()*up
			if d := math.Abs(float64(got.Data[j]) - want); d > 1e-4 {
				t.Fatalf("step %d value %d: got %g want %g", i, j, got.Data[j], want)
			}
		}
	}
	// The last step goes to sigma 0 and adds no noise.
	last := e.Step(x, eps, 9, nil)
	for j := range last.Data {
		want := x.Data[j] - eps.Data[j]*sig[9]
		if math.Abs(float64(last.Data[j]-want)) > 1e-5 {
			t.Fatalf("final step value %d: got %g want %g", j, last.Data[j], want)
		}
	}
}

// TestSamplersRecoverSignal runs every sampler with the exact noise
// prediction for a known clean latent; each must land on that latent.
func TestSamplersRecoverSignal(t *testing.T) {
	s := NewSchedule()
	clean := nn.New(1, 4, 4, 6)
	for i := range clean.Data {
		clean.Data[i] = float32(math.Sin(float64(i))) * 0.8
	}
	for _, name := range SamplerNames {
		for _, steps := range []int{1, 7, 20, 50} {
			sampler, err := NewSampler(name, steps, s)
			if err != nil {
				t.Fatal(err)
			}
			var ts []float32
			var lastEps *nn.Tensor
			oracle := func(x *nn.Tensor, tt float32, cond *nn.Tensor) (*nn.Tensor, error) {
				ts = append(ts, tt)
				// x is the UNet input x_t = sqrt(abar) x0 + sqrt(1-abar) eps; solve for eps.
				a := interpAlpha(s, float64(tt))
				eps := nn.New(x.Shape...)
				for i := range eps.Data {
					eps.Data[i] = float32((float64(x.Data[i]) - math.Sqrt(a)*float64(clean.Data[i])) / math.Sqrt(1-a))
				}
				lastEps = eps
				return eps, nil
			}
			steps0 := 0
			out, err := Sample(context.Background(), sampler, Noise(rand.New(rand.NewPCG(3, 4)), 1, 4, 4, 6), oracle, nn.New(1, 77, 8),
				rand.New(rand.NewPCG(5, 6)), func(step, total int) { steps0 = step })
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != steps || steps0 != steps {
				t.Fatalf("%s/%d: %d denoiser calls, progress %d", name, steps, len(ts), steps0)
			}
			want := clean
			if name == "ddim" {
				// DDIM's last step goes to abar_0 ("leading" spacing, set_alpha_to_one false), not to 1.
				a0 := float64(s.AlphasCumprod[0])
				want = nn.New(clean.Shape...)
				for i := range want.Data {
					want.Data[i] = float32(math.Sqrt(a0)*float64(clean.Data[i]) + math.Sqrt(1-a0)*float64(lastEps.Data[i]))
				}
			}
			checkClose(t, name, out, want, 1e-4)
		}
	}
}

// interpAlpha is abar at a fractional timestep, interpolated in sigma as the
// Euler samplers do.
func interpAlpha(s *Schedule, t float64) float64 {
	sig := s.sigmas()
	lo := int(math.Floor(t))
	sigma := float64(sig[lo])
	if lo+1 < len(sig) {
		sigma += (t - float64(lo)) * (float64(sig[lo+1]) - float64(sig[lo]))
	}
	return 1 / (1 + sigma*sigma)
}

func TestGuidance(t *testing.T) {
	// A denoiser that returns the conditioning's first value everywhere.
	d := func(x *nn.Tensor, tt float32, cond *nn.Tensor) (*nn.Tensor, error) {
		out := nn.New(x.Shape...)
		per := out.Numel() / x.Shape[0]
		for b := range x.Shape[0] {
			for i := range per {
				out.Data[b*per+i] = cond.Data[b*cond.Shape[1]*cond.Shape[2]] + x.Data[b*per+i]
			}
		}
		return out, nil
	}
	x := nn.New(2, 1, 1, 2)
	copy(x.Data, []float32{1, 2, 3, 4})
	cond := nn.New(2, 3, 2)
	cond.Data[0], cond.Data[6] = 10, 20
	uncond := nn.New(1, 3, 2)
	uncond.Data[0] = 4
	eps, err := Guidance(d, uncond, 7.5)(x, 500, cond)
	if err != nil {
		t.Fatal(err)
	}
	// eps_u = 4 + x, eps_c = c + x: eps = 4 + x + 7.5 (c - 4).
	want := []float32{4 + 1 + 7.5*6, 4 + 2 + 7.5*6, 4 + 3 + 7.5*16, 4 + 4 + 7.5*16}
	for i := range want {
		if math.Abs(float64(eps.Data[i]-want[i])) > 1e-5 {
			t.Fatalf("guided eps %v, want %v", eps.Data, want)
		}
	}
	if _, err := Guidance(d, nn.New(1, 4, 2), 7.5)(x, 500, cond); err == nil {
		t.Error("mismatched unconditional accepted")
	}
	plain, err := Guidance(d, uncond, 1)(x, 500, cond)
	if err != nil || plain.Data[0] != 11 {
		t.Errorf("scale 1 should call the denoiser once with cond: %v %v", plain, err)
	}
}

func TestSampleErrors(t *testing.T) {
	s := NewSchedule()
	if _, err := NewSampler("plms", 20, s); err == nil {
		t.Error("unknown sampler accepted")
	}
	for _, n := range []int{0, -1, 1001} {
		if _, err := NewSampler("euler", n, s); err == nil {
			t.Errorf("%d steps accepted", n)
		}
	}
	if _, err := NewSampler("ddim", 1000, s); err == nil {
		t.Error("ddim with 1000 steps accepted (its first timestep would be 1000)")
	}
	if d, err := NewSampler("ddim", 999, s); err != nil || d.Timesteps()[0] != 999 {
		t.Errorf("ddim with 999 steps: %v", err)
	}
	for _, name := range []string{"k_euler_a", "Euler_A", "k_euler", "DDIM"} {
		if _, err := NewSampler(name, 5, s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	sampler, _ := NewSampler("euler", 5, s)
	noise := nn.New(1, 4, 2, 2)
	boom := errors.New("boom")
	fail := func(x *nn.Tensor, tt float32, cond *nn.Tensor) (*nn.Tensor, error) { return nil, boom }
	rng := rand.New(rand.NewPCG(1, 1))
	if _, err := Sample(context.Background(), sampler, noise, fail, nil, rng, nil); !errors.Is(err, boom) {
		t.Errorf("denoiser error not passed on: %v", err)
	}
	wrong := func(x *nn.Tensor, tt float32, cond *nn.Tensor) (*nn.Tensor, error) { return nn.New(1, 4, 2, 3), nil }
	if _, err := Sample(context.Background(), sampler, noise, wrong, nil, rng, nil); err == nil {
		t.Error("wrong output shape accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok := func(x *nn.Tensor, tt float32, cond *nn.Tensor) (*nn.Tensor, error) { return x.Clone(), nil }
	if _, err := Sample(ctx, sampler, noise, ok, nil, rng, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if _, err := Sample(context.Background(), sampler, noise, ok, nil, nil, nil); err == nil {
		t.Error("nil rng accepted")
	}
}
