package trainer

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"lorastudio/nn"
)

// AdamWOptions are torch.optim.AdamW's hyperparameters besides the rate.
type AdamWOptions struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64
}

// DefaultAdamWOptions are torch.optim.AdamW's defaults, which sd-scripts
// uses when optimizer_args is empty.
func DefaultAdamWOptions() AdamWOptions {
	return AdamWOptions{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
}

// AdamWOptions parses OptimizerArgs over the defaults: weight_decay=0.01,
// betas=0.9,0.999 (or "(0.9, 0.999)"), eps=1e-8.
func (c *Config) AdamWOptions() (AdamWOptions, error) {
	o := DefaultAdamWOptions()
	for _, arg := range c.OptimizerArgs {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			return o, fmt.Errorf("%q is not key=value", arg)
		}
		k = strings.TrimSpace(k)
		nums, err := parseFloats(v)
		if err != nil {
			return o, fmt.Errorf("%s: %v", k, err)
		}
		switch {
		case k == "weight_decay" && len(nums) == 1 && nums[0] >= 0:
			o.WeightDecay = nums[0]
		case k == "eps" && len(nums) == 1 && nums[0] > 0:
			o.Eps = nums[0]
		case k == "betas" && len(nums) == 2 && nums[0] >= 0 && nums[0] < 1 && nums[1] >= 0 && nums[1] < 1:
			o.Beta1, o.Beta2 = nums[0], nums[1]
		case k == "weight_decay" || k == "eps" || k == "betas":
			return o, fmt.Errorf("%s=%s is out of range", k, strings.TrimSpace(v))
		default:
			return o, fmt.Errorf("%s: not an AdamW option (weight_decay, betas, eps)", k)
		}
	}
	return o, nil
}

// parseFloats reads "0.01", "0.9,0.999" or "(0.9, 0.999)".
func parseFloats(s string) ([]float64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "("), ")")
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	var out []float64
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a number", p)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no value")
	}
	return out, nil
}

// AdamW is torch.optim.AdamW: decoupled weight decay and bias-corrected
// moments, computed in float32 like torch's single-tensor implementation.
// The state (Step, M, V) is what a resume needs besides the weights.
type AdamW struct {
	AdamWOptions
	Step int         // optimizer steps taken
	M, V [][]float32 // first and second moments, one per parameter
}

// NewAdamW makes an optimizer for parameters of the given sizes.
func NewAdamW(o AdamWOptions, sizes []int) *AdamW {
	a := &AdamW{AdamWOptions: o}
	for _, n := range sizes {
		a.M = append(a.M, make([]float32, n))
		a.V = append(a.V, make([]float32, n))
	}
	return a
}

// Update applies one step to params given their gradients and each
// parameter's learning rate.
func (a *AdamW) Update(params, grads [][]float32, lrs []float64) error {
	if len(params) != len(a.M) || len(grads) != len(a.M) || len(lrs) != len(a.M) {
		return fmt.Errorf("adamw: %d params, %d grads, %d rates for %d state tensors", len(params), len(grads), len(lrs), len(a.M))
	}
	for i := range params {
		if len(params[i]) != len(a.M[i]) || len(grads[i]) != len(a.M[i]) {
			return fmt.Errorf("adamw: parameter %d has %d values and %d gradients, state %d", i, len(params[i]), len(grads[i]), len(a.M[i]))
		}
	}
	a.Step++
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Step))
	bc2sqrt := math.Sqrt(1 - math.Pow(a.Beta2, float64(a.Step)))
	parallelChunks(params, func(i, lo, hi int) {
		lr := lrs[i]
		adamwKernel(params[i][lo:hi], grads[i][lo:hi], a.M[i][lo:hi], a.V[i][lo:hi],
			float32(1-lr*a.WeightDecay), float32(a.Beta1), float32(1-a.Beta1), float32(a.Beta2), float32(1-a.Beta2),
			float32(lr/bc1), float32(bc2sqrt), float32(a.Eps))
	})
	return nil
}

func adamwKernel(p, g, m, v []float32, decay, b1, omb1, b2, omb2, stepSize, bc2sqrt, eps float32) {
	for j := range p {
		gj := g[j]
		p[j] *= decay
		m[j] = m[j]*b1 + gj*omb1
		v[j] = v[j]*b2 + gj*gj*omb2
		denom := float32(math.Sqrt(float64(v[j])))/bc2sqrt + eps
		p[j] -= stepSize * m[j] / denom
	}
}

// parallelChunks calls fn on ranges of every slice, spread over the cores.
func parallelChunks(slices [][]float32, fn func(i, lo, hi int)) {
	const chunk = 1 << 15
	type job struct{ i, lo, hi int }
	var jobs []job
	for i, s := range slices {
		for lo := 0; lo < len(s); lo += chunk {
			jobs = append(jobs, job{i, lo, min(lo+chunk, len(s))})
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	if workers <= 1 {
		for _, j := range jobs {
			fn(j.i, j.lo, j.hi)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				k := next
				next++
				mu.Unlock()
				if k >= len(jobs) {
					return
				}
				fn(jobs[k].i, jobs[k].lo, jobs[k].hi)
			}
		})
	}
	wg.Wait()
}

// ClipGradNorm scales grads so that their global L2 norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_ does (coefficient
// maxNorm/(norm+1e-6), never above 1), and returns the norm before
// clipping. maxNorm 0 only measures.
func ClipGradNorm(grads [][]float32, maxNorm float64) float64 {
	var sum float64
	for _, g := range grads {
		for _, x := range g {
			sum += float64(x) * float64(x)
		}
	}
	norm := math.Sqrt(sum)
	if maxNorm <= 0 {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef < 1 {
		c := float32(coef)
		for _, g := range grads {
			for j := range g {
				g[j] *= c
			}
		}
	}
	return norm
}

// Save writes the optimizer state to path (safetensors, float32, atomic).
func (a *AdamW) Save(path string) error {
	t := map[string]*nn.Tensor{}
	for i := range a.M {
		t[fmt.Sprintf("exp_avg.%d", i)] = nn.FromData(a.M[i], len(a.M[i]))
		t[fmt.Sprintf("exp_avg_sq.%d", i)] = nn.FromData(a.V[i], len(a.V[i]))
	}
	meta := map[string]string{
		"optimizer":    "AdamW",
		"step":         strconv.Itoa(a.Step),
		"params":       strconv.Itoa(len(a.M)),
		"beta1":        strconv.FormatFloat(a.Beta1, 'g', -1, 64),
		"beta2":        strconv.FormatFloat(a.Beta2, 'g', -1, 64),
		"eps":          strconv.FormatFloat(a.Eps, 'g', -1, 64),
		"weight_decay": strconv.FormatFloat(a.WeightDecay, 'g', -1, 64),
	}
	if err := nn.WriteSafetensors(path, t, "F32", meta); err != nil {
		return fmt.Errorf("save optimizer state: %w", err)
	}
	return nil
}

// LoadAdamW reads a state written by Save and checks it fits parameters of
// the given sizes.
func LoadAdamW(path string, sizes []int) (*AdamW, error) {
	f, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("load optimizer state: %w", err)
	}
	defer f.Close()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("load optimizer state %s: "+format, append([]any{path}, args...)...)
	}
	meta := f.Metadata()
	if meta["optimizer"] != "AdamW" {
		return nil, bad("not an AdamW state (optimizer %q)", meta["optimizer"])
	}
	num := func(key string) float64 {
		v, e := strconv.ParseFloat(meta[key], 64)
		if e != nil && err == nil {
			err = bad("metadata %s = %q is not a number", key, meta[key])
		}
		return v
	}
	a := &AdamW{AdamWOptions: AdamWOptions{Beta1: num("beta1"), Beta2: num("beta2"), Eps: num("eps"), WeightDecay: num("weight_decay")}}
	step, count := num("step"), num("params")
	if err != nil {
		return nil, err
	}
	if step < 0 || step != math.Trunc(step) {
		return nil, bad("step %v", step)
	}
	a.Step = int(step)
	if int(count) != len(sizes) {
		return nil, bad("state for %v parameters, the network has %d", count, len(sizes))
	}
	for i, n := range sizes {
		for _, part := range []struct {
			key string
			dst *[][]float32
		}{{"exp_avg", &a.M}, {"exp_avg_sq", &a.V}} {
			t, err := f.Float32(fmt.Sprintf("%s.%d", part.key, i))
			if err != nil {
				return nil, fmt.Errorf("load optimizer state: %w", err)
			}
			if len(t.Data) != n {
				return nil, bad("%s.%d has %d values, parameter %d has %d", part.key, i, len(t.Data), i, n)
			}
			*part.dst = append(*part.dst, t.Data)
		}
	}
	return a, nil
}
