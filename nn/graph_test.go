package nn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// frozenLinear is y = x W^T + b with W and b frozen: only dx is ever computed.
type frozenLinear struct {
	name          string
	W, B          *Tensor // [out, in], [out]
	x, y, dx      []float32
	rows          int
	backwardCalls int
}

func (l *frozenLinear) Name() string { return l.name }

func (l *frozenLinear) OutputShape(in [][]int) ([]int, error) {
	if len(in) != 1 || len(in[0]) != 2 || in[0][1] != l.W.Shape[1] {
		return nil, fmt.Errorf("input shapes %v, want one [rows, %d]", in, l.W.Shape[1])
	}
	return []int{in[0][0], l.W.Shape[0]}, nil
}

func (l *frozenLinear) Forward(in []*Tensor) (*Tensor, error) {
	out, din := l.W.Shape[0], l.W.Shape[1]
	l.rows = in[0].Shape[0]
	l.x = in[0].Data
	l.y = grow(l.y, l.rows*out)
	LinearForward(l.y, l.x, l.W.Data, l.B.Data, l.rows, din, out)
	return FromData(l.y, l.rows, out), nil
}

func (l *frozenLinear) Backward(dy *Tensor, need []bool) ([]*Tensor, error) {
	l.backwardCalls++
	out, din := l.W.Shape[0], l.W.Shape[1]
	if !need[0] {
		return []*Tensor{nil}, nil
	}
	l.dx = grow(l.dx, l.rows*din)
	LinearBackward(l.dx, nil, nil, dy.Data, l.x, l.W.Data, l.rows, din, out)
	return []*Tensor{FromData(l.dx, l.rows, din)}, nil
}

// loraLinear is y = x W^T + scale * s * (x A^T) B^T with W frozen and inputs
// x [rows, in], A [r, in], B [out, r] and, when withS, a scalar s.
type loraLinear struct {
	W       *Tensor
	scale   float32
	withS   bool
	x, a, b []float32
	s       float32
	rows    int
	h, z, y []float32
	dz, dh  []float32
	dx, dx1 []float32
	da, db  []float32
	needs   [][]bool
}

func (l *loraLinear) Name() string { return "lora_linear" }

func (l *loraLinear) dims() (out, in int) { return l.W.Shape[0], l.W.Shape[1] }

func (l *loraLinear) OutputShape(in [][]int) ([]int, error) {
	want := 3
	if l.withS {
		want = 4
	}
	if len(in) != want {
		return nil, fmt.Errorf("%d inputs, want %d", len(in), want)
	}
	out, din := l.dims()
	x, a, b := in[0], in[1], in[2]
	if len(x) != 2 || x[1] != din || len(a) != 2 || a[1] != din || len(b) != 2 || b[0] != out || b[1] != a[0] {
		return nil, fmt.Errorf("shapes %v do not fit W %v", in, l.W.Shape)
	}
	if l.withS && len(in[3]) != 0 {
		return nil, fmt.Errorf("s has shape %v, want a scalar", in[3])
	}
	return []int{x[0], out}, nil
}

func (l *loraLinear) Forward(in []*Tensor) (*Tensor, error) {
	out, din := l.dims()
	r := in[1].Shape[0]
	l.rows = in[0].Shape[0]
	l.x, l.a, l.b = in[0].Data, in[1].Data, in[2].Data
	l.s = 1
	if l.withS {
		l.s = in[3].Data[0]
	}
	l.h = grow(l.h, l.rows*r)
	l.z = grow(l.z, l.rows*out)
	l.y = grow(l.y, l.rows*out)
	LinearForward(l.h, l.x, l.a, nil, l.rows, din, r)
	LinearForward(l.z, l.h, l.b, nil, l.rows, r, out)
	LinearForward(l.y, l.x, l.W.Data, nil, l.rows, din, out)
	c := l.scale * l.s
	for i := range l.y {
		l.y[i] += c * l.z[i]
	}
	return FromData(l.y, l.rows, out), nil
}

func (l *loraLinear) Backward(dy *Tensor, need []bool) ([]*Tensor, error) {
	l.needs = append(l.needs, slices.Clone(need))
	out, din := l.dims()
	r := len(l.a) / din
	c := l.scale * l.s
	grads := make([]*Tensor, len(need))
	l.dz = grow(l.dz, len(dy.Data))
	for i, g := range dy.Data {
		l.dz[i] = c * g
	}
	l.dh = grow(l.dh, l.rows*r)
	l.da, l.db = grow(l.da, r*din), grow(l.db, out*r)
	LinearBackward(l.dh, l.db, nil, l.dz, l.h, l.b, l.rows, r, out)
	if need[2] {
		grads[2] = FromData(l.db, out, r)
	}
	if need[1] {
		LinearBackward(nil, l.da, nil, l.dh, l.x, l.a, l.rows, din, r)
		grads[1] = FromData(l.da, r, din)
	}
	if need[0] {
		l.dx, l.dx1 = grow(l.dx, l.rows*din), grow(l.dx1, l.rows*din)
		LinearBackward(l.dx, nil, nil, dy.Data, l.x, l.W.Data, l.rows, din, out)
		LinearBackward(l.dx1, nil, nil, l.dh, l.x, l.a, l.rows, din, r)
		for i := range l.dx {
			l.dx[i] += l.dx1[i]
		}
		grads[0] = FromData(l.dx, l.rows, din)
	}
	if l.withS && need[3] {
		var ds float64
		for i, g := range dy.Data {
			ds += float64(g) * float64(l.z[i])
		}
		grads[3] = FromData([]float32{l.scale * float32(ds)})
	}
	return grads, nil
}

// mseLoss is mean((pred-target)^2) as a module with a 0-d output.
type mseLoss struct {
	shape        []int
	pred, target []float32
	dpred        []float32
}

func (m *mseLoss) Name() string { return "mse" }
func (m *mseLoss) OutputShape(in [][]int) ([]int, error) {
	if len(in) != 2 || !SameShape(in[0], in[1]) {
		return nil, fmt.Errorf("shapes %v, want two equal", in)
	}
	return []int{}, nil
}
func (m *mseLoss) Forward(in []*Tensor) (*Tensor, error) {
	m.shape, m.pred, m.target = in[0].Shape, in[0].Data, in[1].Data
	return FromData([]float32{MSE(m.pred, m.target)}), nil
}
func (m *mseLoss) Backward(dy *Tensor, need []bool) ([]*Tensor, error) {
	grads := make([]*Tensor, 2)
	if need[0] {
		m.dpred = grow(m.dpred, len(m.pred))
		MSEBackward(m.dpred, m.pred, m.target, dy.Data[0])
		grads[0] = FromData(m.dpred, m.shape...)
	}
	if need[1] {
		return nil, errors.New("target gradient not supported")
	}
	return grads, nil
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

func randTensor(rng *rand.Rand, scale float64, shape ...int) *tensor.Dense {
	data := make([]float32, Numel(shape))
	for i := range data {
		data[i] = float32(rng.NormFloat64() * scale)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

func randNN(rng *rand.Rand, scale float64, shape ...int) *Tensor {
	t := New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64() * scale)
	}
	return t
}

func must(n *gorgonia.Node, err error) *gorgonia.Node {
	if err != nil {
		panic(err)
	}
	return n
}

func float32s(v gorgonia.Value) []float32 {
	switch x := v.(type) {
	case *gorgonia.F32:
		return []float32{float32(*x)}
	case *tensor.Dense:
		if x.IsScalar() {
			return []float32{x.ScalarValue().(float32)}
		}
		return x.Float32s()
	}
	panic(fmt.Sprintf("value %T", v))
}

// TestApplyTrainsLoRA trains a LoRA pair on top of a frozen two-layer network
// with gorgonia's Grad, TapeMachine and Adam: the loss falls and only A and B
// change.
func TestApplyTrainsLoRA(t *testing.T) {
	const rows, in, hid, out, rank = 6, 5, 7, 3, 2
	rng := rand.New(rand.NewPCG(10, 11))
	frozen := &frozenLinear{name: "frozen", W: randNN(rng, 0.5, hid, in), B: randNN(rng, 0.1, hid)}
	lora := &loraLinear{W: randNN(rng, 0.5, out, hid), scale: 0.5}
	frozenW, frozenB, loraW := frozen.W.Clone(), frozen.B.Clone(), lora.W.Clone()

	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rows, in), gorgonia.WithName("x"), gorgonia.WithValue(randTensor(rng, 1, rows, in)))
	target := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rows, out), gorgonia.WithName("target"))
	a := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rank, hid), gorgonia.WithName("lora_down"), gorgonia.WithValue(randTensor(rng, 0.3, rank, hid)))
	b := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(out, rank), gorgonia.WithName("lora_up"), gorgonia.WithInit(gorgonia.Zeroes()))
	h, err := Apply(frozen, x)
	if err != nil {
		t.Fatal(err)
	}
	y, err := Apply(lora, h, a, b)
	if err != nil {
		t.Fatal(err)
	}
	loss := must(gorgonia.Mean(must(gorgonia.Square(must(gorgonia.Sub(y, target))))))
	if _, err := gorgonia.Grad(loss, a, b); err != nil {
		t.Fatal(err)
	}

	// The target is what a rank-1 update of the last layer produces, so a
	// LoRA of rank 2 can reach it.
	hx := New(rows, hid)
	LinearForward(hx.Data, x.Value().(*tensor.Dense).Float32s(), frozen.W.Data, frozen.B.Data, rows, in, hid)
	delta := New(out, hid)
	u, v := randNN(rng, 1, out), randNN(rng, 1, hid)
	for i := range out {
		for j := range hid {
			delta.Data[i*hid+j] = u.Data[i] * v.Data[j] * 0.3
		}
	}
	tgt := New(rows, out)
	wt := lora.W.Clone()
	AddInPlace(wt.Data, delta.Data)
	LinearForward(tgt.Data, hx.Data, wt.Data, nil, rows, hid, out)
	if err := gorgonia.Let(target, tensor.New(tensor.WithShape(rows, out), tensor.WithBacking(tgt.Data))); err != nil {
		t.Fatal(err)
	}

	a0 := slices.Clone(float32s(a.Value()))
	b0 := slices.Clone(float32s(b.Value()))
	vm := gorgonia.NewTapeMachine(g, gorgonia.BindDualValues(a, b))
	defer vm.Close()
	solver := gorgonia.NewAdamSolver(gorgonia.WithLearnRate(0.05))
	var losses []float32
	for range 150 {
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		losses = append(losses, float32s(loss.Value())[0])
		if err := solver.Step(gorgonia.NodesToValueGrads(gorgonia.Nodes{a, b})); err != nil {
			t.Fatal(err)
		}
		vm.Reset()
	}
	first, last := losses[0], losses[len(losses)-1]
	t.Logf("loss %.5f -> %.5f", first, last)
	if !(last < first/20) {
		t.Errorf("loss %v -> %v: did not fall twentyfold", first, last)
	}
	for name, pair := range map[string][2]*Tensor{"frozen.W": {frozen.W, frozenW}, "frozen.B": {frozen.B, frozenB}, "lora.W": {lora.W, loraW}} {
		for i := range pair[0].Data {
			if math.Float32bits(pair[0].Data[i]) != math.Float32bits(pair[1].Data[i]) {
				t.Fatalf("%s[%d] changed: %v -> %v", name, i, pair[1].Data[i], pair[0].Data[i])
			}
		}
	}
	if slices.Equal(a0, float32s(a.Value())) || slices.Equal(b0, float32s(b.Value())) {
		t.Error("A or B did not change")
	}
	if frozen.backwardCalls != 0 {
		t.Errorf("frozen layer's Backward ran %d times; nothing before it needs a gradient", frozen.backwardCalls)
	}
	for _, need := range lora.needs {
		if !slices.Equal(need, []bool{false, true, true}) {
			t.Fatalf("lora Backward asked for %v, want [false true true] (the input comes from a frozen layer)", need)
		}
	}
	if len(lora.needs) != len(losses) {
		t.Errorf("lora Backward ran %d times in %d steps", len(lora.needs), len(losses))
	}
}

// gradCheck compares the gradients gorgonia computes for wrt with central
// differences of the loss, evaluated by running the graph.
func gradCheck(t *testing.T, g *gorgonia.ExprGraph, loss *gorgonia.Node, wrt gorgonia.Nodes) {
	t.Helper()
	if _, err := gorgonia.Grad(loss, wrt...); err != nil {
		t.Fatal(err)
	}
	vm := gorgonia.NewTapeMachine(g)
	defer vm.Close()
	run := func() float64 {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return float64(float32s(loss.Value())[0])
	}
	run()
	grads := make([][]float32, len(wrt))
	for i, n := range wrt {
		gv, err := n.Grad()
		if err != nil {
			t.Fatal(err)
		}
		grads[i] = slices.Clone(float32s(gv))
	}
	const eps = 1e-2
	for i, n := range wrt {
		var set func(j int, v float32)
		var get func(j int) float32
		switch v := n.Value().(type) {
		case *tensor.Dense:
			data := v.Float32s()
			set, get = func(j int, x float32) { data[j] = x }, func(j int) float32 { return data[j] }
		case *gorgonia.F32:
			set, get = func(_ int, x float32) { *v = gorgonia.F32(x) }, func(int) float32 { return float32(*v) }
		default:
			t.Fatalf("%s: value %T", n.Name(), v)
		}
		if len(grads[i]) != n.Shape().TotalSize() && !(n.IsScalar() && len(grads[i]) == 1) {
			t.Fatalf("%s: gradient has %d values for shape %v", n.Name(), len(grads[i]), n.Shape())
		}
		for j := range grads[i] {
			orig := get(j)
			set(j, orig+eps)
			up := run()
			set(j, orig-eps)
			down := run()
			set(j, orig)
			fd := (up - down) / (2 * eps)
			if d := math.Abs(fd - float64(grads[i][j])); d > 2e-3*(1+math.Abs(fd)) {
				t.Errorf("%s[%d]: gradient %v, finite difference %v", n.Name(), j, grads[i][j], fd)
			}
		}
	}
}

// TestApplyGradientsMatchFiniteDifferences checks the gradient routing of a
// four-input module (matrix inputs and a scalar) and of a module whose
// output is a scalar loss.
func TestApplyGradientsMatchFiniteDifferences(t *testing.T) {
	const rows, in, out, rank = 4, 5, 3, 2
	rng := rand.New(rand.NewPCG(20, 21))
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rows, in), gorgonia.WithName("x"), gorgonia.WithValue(randTensor(rng, 1, rows, in)))
	a := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rank, in), gorgonia.WithName("a"), gorgonia.WithValue(randTensor(rng, 0.5, rank, in)))
	b := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(out, rank), gorgonia.WithName("b"), gorgonia.WithValue(randTensor(rng, 0.5, out, rank)))
	s := gorgonia.NewScalar(g, tensor.Float32, gorgonia.WithName("s"), gorgonia.WithValue(float32(0.7)))
	weights := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rows, out), gorgonia.WithName("c"), gorgonia.WithValue(randTensor(rng, 1, rows, out)))
	target := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rows, out), gorgonia.WithName("target"), gorgonia.WithValue(randTensor(rng, 1, rows, out)))

	lora := &loraLinear{W: randNN(rng, 0.5, out, in), scale: 1.5, withS: true}
	y, err := Apply(lora, x, a, b, s)
	if err != nil {
		t.Fatal(err)
	}
	// Two consumers of y: gorgonia sums their gradients before lora's
	// Backward. One is a gorgonia reduction, the other a module with a 0-d
	// output.
	linear := must(gorgonia.Sum(must(gorgonia.HadamardProd(y, weights))))
	mse, err := Apply(&mseLoss{}, y, target)
	if err != nil {
		t.Fatal(err)
	}
	loss := must(gorgonia.Add(linear, mse))
	gradCheck(t, g, loss, gorgonia.Nodes{x, a, b, s})
	for _, need := range lora.needs {
		if !slices.Equal(need, []bool{true, true, true, true}) {
			t.Fatalf("Backward asked for %v, want all four", need)
		}
	}
}

// TestApplyResidualKeepsSavedInputs builds u = m1(x) + c0, z = u + m2(u):
// once m2's forward has read u, the residual add is u's last use in the
// forward pass and gorgonia would update u in place, but m2's Backward still
// needs u. Gradients must match finite differences.
func TestApplyResidualKeepsSavedInputs(t *testing.T) {
	const rows, dim = 3, 4
	rng := rand.New(rand.NewPCG(30, 31))
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rows, dim), gorgonia.WithName("x"), gorgonia.WithValue(randTensor(rng, 1, rows, dim)))
	a := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(2, dim), gorgonia.WithName("a"), gorgonia.WithValue(randTensor(rng, 0.5, 2, dim)))
	b := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(dim, 2), gorgonia.WithName("b"), gorgonia.WithValue(randTensor(rng, 0.5, dim, 2)))
	c0 := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rows, dim), gorgonia.WithName("c0"), gorgonia.WithValue(randTensor(rng, 1, rows, dim)))
	c := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rows, dim), gorgonia.WithName("c"), gorgonia.WithValue(randTensor(rng, 1, rows, dim)))
	m1 := &frozenLinear{name: "m1", W: randNN(rng, 0.5, dim, dim), B: randNN(rng, 0.1, dim)}
	m2 := &loraLinear{W: randNN(rng, 0.5, dim, dim), scale: 1}
	u := must(gorgonia.Add(must(Apply(m1, x)), c0))
	z := must(gorgonia.Add(u, must(Apply(m2, u, a, b))))
	sq := must(gorgonia.Square(z))
	loss := must(gorgonia.Sum(must(gorgonia.HadamardProd(sq, c))))
	gradCheck(t, g, loss, gorgonia.Nodes{x, a, b})
}

type badModule struct {
	outShape []int
	forward  func() (*Tensor, error)
	backward func() ([]*Tensor, error)
}

func (m *badModule) Name() string                          { return "bad" }
func (m *badModule) OutputShape(in [][]int) ([]int, error) { return m.outShape, nil }
func (m *badModule) Forward([]*Tensor) (*Tensor, error)    { return m.forward() }
func (m *badModule) Backward(*Tensor, []bool) ([]*Tensor, error) {
	return m.backward()
}

func TestApplyErrors(t *testing.T) {
	newGraph := func() (*gorgonia.ExprGraph, *gorgonia.Node) {
		g := gorgonia.NewGraph()
		x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(2, 3), gorgonia.WithName("x"), gorgonia.WithValue(tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(make([]float32, 6)))))
		return g, x
	}
	ok := func() (*Tensor, error) { return New(2, 3), nil }
	grads := func() ([]*Tensor, error) { return []*Tensor{New(2, 3)}, nil }
	cases := []struct {
		name string
		m    *badModule
		want string
	}{
		{"forward error", &badModule{[]int{2, 3}, func() (*Tensor, error) { return nil, errors.New("boom") }, grads}, "boom"},
		{"forward wrong shape", &badModule{[]int{2, 3}, func() (*Tensor, error) { return New(3, 2), nil }, grads}, "want shape"},
		{"forward nil", &badModule{[]int{2, 3}, func() (*Tensor, error) { return nil, nil }, grads}, "want shape"},
		{"backward error", &badModule{[]int{2, 3}, ok, func() ([]*Tensor, error) { return nil, errors.New("bang") }}, "bang"},
		{"backward count", &badModule{[]int{2, 3}, ok, func() ([]*Tensor, error) { return nil, nil }}, "0 gradients"},
		{"backward shape", &badModule{[]int{2, 3}, ok, func() ([]*Tensor, error) { return []*Tensor{New(5)}, nil }}, "gradient of input 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, x := newGraph()
			y, err := Apply(c.m, x)
			if err != nil {
				t.Fatal(err)
			}
			loss := must(gorgonia.Sum(must(gorgonia.Square(y))))
			if _, err := gorgonia.Grad(loss, x); err != nil {
				t.Fatal(err)
			}
			vm := gorgonia.NewTapeMachine(g)
			defer vm.Close()
			err = vm.RunAll()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("RunAll: %v, want an error containing %q", err, c.want)
			}
		})
	}

	g, x := newGraph()
	lin := &frozenLinear{name: "lin", W: New(3, 3), B: New(3)}
	if _, err := Apply(lin, x); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(lin, x); err == nil || !strings.Contains(err.Error(), "already applied") {
		t.Errorf("second Apply of one module: %v", err)
	}
	if _, err := Apply(&frozenLinear{name: "wrong", W: New(4, 5), B: New(4)}, x); err == nil || !strings.Contains(err.Error(), "wrong") {
		t.Errorf("shape mismatch: %v", err)
	}
	if _, err := Apply(lin); err == nil {
		t.Error("Apply without inputs succeeded")
	}
	x64 := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(2, 3), gorgonia.WithName("x64"))
	if _, err := Apply(&frozenLinear{name: "f64", W: New(3, 3), B: New(3)}, x64); err == nil || !strings.Contains(err.Error(), "float32") {
		t.Errorf("float64 input: %v", err)
	}
}

// TestApplyForwardIsZeroCopy checks that Forward sees gorgonia's own input
// memory and that the node's value is the module's output memory.
func TestApplyForwardIsZeroCopy(t *testing.T) {
	g := gorgonia.NewGraph()
	xv := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(2, 3), gorgonia.WithName("x"), gorgonia.WithValue(xv))
	lin := &frozenLinear{name: "lin", W: FromData([]float32{1, 0, 0, 0, 1, 0, 0, 0, 1}, 3, 3), B: New(3)}
	y := must(Apply(lin, x))
	vm := gorgonia.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	if &lin.x[0] != &xv.Float32s()[0] {
		t.Error("Forward got a copy of the input")
	}
	if got := float32s(y.Value()); &got[0] != &lin.y[0] || !slices.Equal(got, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("output %v is not the module's buffer %v", got, lin.y)
	}
}

// BenchmarkApplyStep measures gorgonia's per-step overhead around 16 chained
// module nodes with LoRA inputs (tiny shapes, so the kernels cost little):
// one RunAll, one Adam step, one Reset.
func BenchmarkApplyStep(b *testing.B) {
	const rows, dim, rank, layers = 8, 16, 4, 16
	rng := rand.New(rand.NewPCG(40, 41))
	g := gorgonia.NewGraph()
	h := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rows, dim), gorgonia.WithName("x"), gorgonia.WithValue(randTensor(rng, 1, rows, dim)))
	var learn gorgonia.Nodes
	for i := range layers {
		a := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(rank, dim), gorgonia.WithName(fmt.Sprint("a", i)), gorgonia.WithValue(randTensor(rng, 0.1, rank, dim)))
		bb := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(dim, rank), gorgonia.WithName(fmt.Sprint("b", i)), gorgonia.WithValue(randTensor(rng, 0.1, dim, rank)))
		learn = append(learn, a, bb)
		h = must(Apply(&loraLinear{W: randNN(rng, 0.25, dim, dim), scale: 1}, h, a, bb))
	}
	loss := must(gorgonia.Mean(must(gorgonia.Square(h))))
	if _, err := gorgonia.Grad(loss, learn...); err != nil {
		b.Fatal(err)
	}
	vm := gorgonia.NewTapeMachine(g, gorgonia.BindDualValues(learn...))
	defer vm.Close()
	solver := gorgonia.NewAdamSolver(gorgonia.WithLearnRate(1e-3))
	b.ReportAllocs()
	for b.Loop() {
		if err := vm.RunAll(); err != nil {
			b.Fatal(err)
		}
		if err := solver.Step(gorgonia.NodesToValueGrads(learn)); err != nil {
			b.Fatal(err)
		}
		vm.Reset()
	}
}
