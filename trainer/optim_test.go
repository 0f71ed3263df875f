package trainer

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

func TestAdamWFirstStep(t *testing.T) {
	// p=1, g=0.5, lr=0.1, decay 0.01: m=0.05, v=0.00025, bias corrections
	// 0.1 and 0.001, so p = 1*(1-0.001) - (0.1/0.1) * 0.05/(0.5+1e-8).
	a := NewAdamW(DefaultAdamWOptions(), []int{1})
	p := []float32{1}
	if err := a.Update([][]float32{p}, [][]float32{{0.5}}, []float64{0.1}); err != nil {
		t.Fatal(err)
	}
	want := 0.999 - 0.05/(0.5+1e-8)
	if math.Abs(float64(p[0])-want) > 1e-7 {
		t.Errorf("p = %.9f, want %.9f", p[0], want)
	}
	if a.Step != 1 || math.Abs(float64(a.M[0][0])-0.05) > 1e-9 || math.Abs(float64(a.V[0][0])-0.00025) > 1e-10 {
		t.Errorf("state: step %d, m %v, v %v", a.Step, a.M[0][0], a.V[0][0])
	}
}

// adamwRef is torch.optim.AdamW's update in float64, written out plainly.
func adamwRef(p, g, m, v []float64, step int, lr float64, o AdamWOptions) {
	bc1 := 1 - math.Pow(o.Beta1, float64(step))
	bc2 := 1 - math.Pow(o.Beta2, float64(step))
	for i := range p {
		p[i] *= 1 - lr*o.WeightDecay
		m[i] = o.Beta1*m[i] + (1-o.Beta1)*g[i]
		v[i] = o.Beta2*v[i] + (1-o.Beta2)*g[i]*g[i]
		p[i] -= lr / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + o.Eps)
	}
}

func TestAdamWMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	o := AdamWOptions{Beta1: 0.85, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1}
	sizes := []int{70000, 3, 1000} // the first spans several parallel chunks
	a := NewAdamW(o, sizes)
	params := make([][]float32, len(sizes))
	ref := make([][]float64, len(sizes))
	refM := make([][]float64, len(sizes))
	refV := make([][]float64, len(sizes))
	for i, n := range sizes {
		params[i] = make([]float32, n)
		ref[i] = make([]float64, n)
		refM[i] = make([]float64, n)
		refV[i] = make([]float64, n)
		for j := range params[i] {
			params[i][j] = float32(rng.NormFloat64())
			ref[i][j] = float64(params[i][j])
		}
	}
	lrs := []float64{1e-3, 5e-4, 2e-3}
	for step := 1; step <= 20; step++ {
		grads := make([][]float32, len(sizes))
		for i, n := range sizes {
			grads[i] = make([]float32, n)
			g64 := make([]float64, n)
			for j := range grads[i] {
				grads[i][j] = float32(rng.NormFloat64() * 0.1)
				g64[j] = float64(grads[i][j])
			}
			adamwRef(ref[i], g64, refM[i], refV[i], step, lrs[i], o)
		}
		if err := a.Update(params, grads, lrs); err != nil {
			t.Fatal(err)
		}
	}
	var worst float64
	for i := range params {
		for j := range params[i] {
			worst = max(worst, math.Abs(float64(params[i][j])-ref[i][j]))
		}
	}
	if worst > 1e-5 {
		t.Errorf("after 20 steps max|diff| vs float64 reference %.3g", worst)
	}
}

func TestAdamWErrors(t *testing.T) {
	a := NewAdamW(DefaultAdamWOptions(), []int{2})
	if err := a.Update([][]float32{{1, 2}}, [][]float32{{1}}, []float64{1}); err == nil {
		t.Error("short gradient: no error")
	}
	if err := a.Update([][]float32{{1, 2}}, [][]float32{{1, 2}}, nil); err == nil {
		t.Error("missing learning rate: no error")
	}
}

func TestAdamWStateRoundTrip(t *testing.T) {
	sizes := []int{5, 3}
	a := NewAdamW(AdamWOptions{Beta1: 0.9, Beta2: 0.95, Eps: 1e-7, WeightDecay: 0}, sizes)
	p := [][]float32{{1, 2, 3, 4, 5}, {6, 7, 8}}
	g := [][]float32{{0.1, -0.2, 0.3, 0, 1}, {2, -1, 0.5}}
	for range 3 {
		if err := a.Update(p, g, []float64{0.01, 0.02}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "adamw.safetensors")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	b, err := LoadAdamW(path, sizes)
	if err != nil {
		t.Fatal(err)
	}
	if b.Step != 3 || b.AdamWOptions != a.AdamWOptions {
		t.Fatalf("loaded step %d options %+v, want 3 %+v", b.Step, b.AdamWOptions, a.AdamWOptions)
	}
	// Continuing from the loaded state equals continuing from the original.
	q := [][]float32{slices.Clone(p[0]), slices.Clone(p[1])}
	a.Update(p, g, []float64{0.01, 0.02})
	b.Update(q, g, []float64{0.01, 0.02})
	if !slices.Equal(p[0], q[0]) || !slices.Equal(p[1], q[1]) {
		t.Errorf("resumed step differs: %v vs %v", p, q)
	}
	if _, err := LoadAdamW(path, []int{5}); err == nil {
		t.Error("state for another network: no error")
	}
	if _, err := LoadAdamW(path, []int{5, 4}); err == nil {
		t.Error("wrong size: no error")
	}
}

func TestClipGradNorm(t *testing.T) {
	g := [][]float32{{3}, {4}} // norm 5
	if n := ClipGradNorm(g, 1); n != 5 {
		t.Errorf("norm %v, want 5", n)
	}
	c := 1 / (5 + 1e-6)
	if math.Abs(float64(g[0][0])-3*c) > 1e-7 || math.Abs(float64(g[1][0])-4*c) > 1e-7 {
		t.Errorf("clipped %v, want %v", g, []float64{3 * c, 4 * c})
	}
	small := [][]float32{{0.3, 0.4}}
	ClipGradNorm(small, 1)
	if small[0][0] != 0.3 || small[0][1] != 0.4 {
		t.Errorf("below the limit changed: %v", small)
	}
	off := [][]float32{{30, 40}}
	if n := ClipGradNorm(off, 0); n != 50 || off[0][0] != 30 {
		t.Errorf("max norm 0: norm %v, grads %v", n, off)
	}
}

func TestAdamWOptionsFromConfig(t *testing.T) {
	tests := []struct {
		args []string
		want AdamWOptions
		ok   bool
	}{
		{nil, DefaultAdamWOptions(), true},
		{[]string{"weight_decay=0.1", "betas=0.9,0.99", "eps=1e-6"}, AdamWOptions{0.9, 0.99, 1e-6, 0.1}, true},
		{[]string{"betas=(0.8, 0.9)"}, AdamWOptions{0.8, 0.9, 1e-8, 0.01}, true},
		{[]string{"betas=0.9"}, AdamWOptions{}, false},
		{[]string{"weight_decay=-1"}, AdamWOptions{}, false},
		{[]string{"amsgrad=True"}, AdamWOptions{}, false},
		{[]string{"eps"}, AdamWOptions{}, false},
	}
	for _, tt := range tests {
		c := Defaults()
		c.OptimizerArgs = tt.args
		got, err := c.AdamWOptions()
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("%v: %+v, %v; want %+v ok=%v", tt.args, got, err, tt.want, tt.ok)
		}
	}
}

func BenchmarkAdamWSD15CrossAttnRank8(b *testing.B) {
	// 795,648 values: rank-8 cross-attention LoRA on SD 1.5.
	sizes := []int{795648}
	a := NewAdamW(DefaultAdamWOptions(), sizes)
	p := [][]float32{make([]float32, sizes[0])}
	g := [][]float32{make([]float32, sizes[0])}
	for i := range g[0] {
		g[0][i] = 0.01
	}
	for b.Loop() {
		a.Update(p, g, []float64{1e-4})
	}
}
