package nn

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"reflect"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Differentiable is a module with hand-written forward and backward kernels
// that Apply places in a gorgonia graph as a single node. Frozen weights are
// fields of the module, never inputs, so gorgonia never builds gradients for
// them; learnable parameters (LoRA A and B) and activations are inputs.
//
// Forward's inputs share memory with gorgonia's values and must not be
// modified. Forward keeps whatever Backward needs (it may keep references to
// its inputs: Apply keeps those values alive until Backward has run). The
// output must be memory the module owns for that purpose, not a weight: the
// graph may later update it in place. Backward returns gradients for the
// inputs i with needGrad[i] (nil for the others); it may reuse its buffers
// across calls. A module instance may appear in a graph only once, since a
// second Forward would overwrite what the first Backward needs.
type Differentiable interface {
	OutputShape(inputs [][]int) ([]int, error)
	Forward(inputs []*Tensor) (*Tensor, error)
	Backward(gradOut *Tensor, needGrad []bool) ([]*Tensor, error)
	Name() string
}

// Apply adds m to the graph of its inputs and returns the node of its output.
// gorgonia.Grad differentiates through it by calling m.Backward once per run
// for all inputs whose gradients the graph uses.
func Apply(m Differentiable, inputs ...*gorgonia.Node) (*gorgonia.Node, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("nn.Apply %s: no inputs", m.Name())
	}
	g := inputs[0].Graph()
	shapes := make([][]int, len(inputs))
	for i, in := range inputs {
		if in == nil {
			return nil, fmt.Errorf("nn.Apply %s: input %d is nil", m.Name(), i)
		}
		if in.Dtype() != tensor.Float32 {
			return nil, fmt.Errorf("nn.Apply %s: input %d (%s) is %v, want float32", m.Name(), i, in.Name(), in.Dtype())
		}
		shapes[i] = []int(in.Shape().Clone())
	}
	if reflect.TypeOf(m).Comparable() && g != nil {
		for _, n := range g.AllNodes() {
			if op, ok := n.Op().(*applyOp); ok && any(op.m) == any(m) {
				return nil, fmt.Errorf("nn.Apply %s: module already applied in this graph (node %s); use one module instance per application", m.Name(), n.Name())
			}
		}
	}
	out, err := m.OutputShape(shapes)
	if err != nil {
		return nil, fmt.Errorf("nn.Apply %s: %w", m.Name(), err)
	}
	op := &applyOp{m: m, in: shapes, out: append([]int{}, out...)}
	node, err := gorgonia.ApplyOpWithName(op, m.Name(), inputs...)
	if err != nil {
		return nil, fmt.Errorf("nn.Apply %s: %w", m.Name(), err)
	}
	return node, nil
}

// applyOp is the forward node of a Differentiable. Its hash includes its own
// address: gorgonia merges nodes with equal hashes and equal children, and two
// applications of stateful modules must never be merged.
type applyOp struct {
	m   Differentiable
	in  [][]int
	out []int
}

func (op *applyOp) Arity() int { return len(op.in) }

func (op *applyOp) Type() hm.Type {
	ts := make([]hm.Type, 0, len(op.in)+1)
	for _, s := range op.in {
		ts = append(ts, valueType(len(s)))
	}
	return hm.NewFnType(append(ts, valueType(len(op.out)))...)
}

func (op *applyOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	if err := checkShapes(op.m.Name(), op.in, ds); err != nil {
		return nil, err
	}
	return tensor.Shape(op.out).Clone(), nil
}

func (op *applyOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if len(vals) != len(op.in) {
		return nil, fmt.Errorf("%s: %d inputs, want %d", op.m.Name(), len(vals), len(op.in))
	}
	ins := make([]*Tensor, len(vals))
	for i, v := range vals {
		t, err := fromValue(v, op.in[i])
		if err != nil {
			return nil, fmt.Errorf("%s: input %d: %w", op.m.Name(), i, err)
		}
		ins[i] = t
	}
	y, err := op.m.Forward(ins)
	if err != nil {
		return nil, fmt.Errorf("%s: forward: %w", op.m.Name(), err)
	}
	if y == nil || !SameShape(y.Shape, op.out) || len(y.Data) != Numel(op.out) {
		return nil, fmt.Errorf("%s: forward returned %v, want shape %v", op.m.Name(), y, op.out)
	}
	return toValue(y), nil
}

func (op *applyOp) ReturnsPtr() bool     { return false }
func (op *applyOp) CallsExtern() bool    { return false }
func (op *applyOp) OverwritesInput() int { return -1 }
func (op *applyOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "nn.Apply(%s)@%p", op.m.Name(), op)
}
func (op *applyOp) Hashcode() uint32 { return hashOf(op) }
func (op *applyOp) String() string   { return op.m.Name() }

func (op *applyOp) DiffWRT(n int) []bool {
	wrt := make([]bool, n)
	for i := range wrt {
		wrt[i] = true
	}
	return wrt
}

// SymDiff adds one node that runs m.Backward and, for several inputs, one
// node per input that cuts its gradient out of the concatenated result
// (gorgonia ops have a single output). The backward node also reads the
// forward node and its inputs: that keeps gorgonia from reusing their memory
// for in-place ops before Backward has used them.
func (op *applyOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != len(op.in) {
		return nil, fmt.Errorf("nn.Apply %s: differentiating %d inputs, want %d", op.m.Name(), len(inputs), len(op.in))
	}
	bop := &backwardOp{fwd: op}
	children := append(gorgonia.Nodes{grad, output}, inputs...)
	bnode, err := gorgonia.ApplyOpWithName(bop, op.m.Name()+".backward", children...)
	if err != nil {
		return nil, fmt.Errorf("nn.Apply %s: backward node: %w", op.m.Name(), err)
	}
	if len(inputs) == 1 {
		bop.used = []*gorgonia.Node{bnode}
		return gorgonia.Nodes{bnode}, nil
	}
	grads := make(gorgonia.Nodes, len(inputs))
	offset := 0
	for i, s := range op.in {
		sop := &splitOp{bwd: bop, index: i, offset: offset, shape: s}
		offset += Numel(s)
		if grads[i], err = gorgonia.ApplyOpWithName(sop, fmt.Sprintf("%s.grad%d", op.m.Name(), i), bnode); err != nil {
			return nil, fmt.Errorf("nn.Apply %s: gradient node %d: %w", op.m.Name(), i, err)
		}
	}
	bop.used = grads
	return grads, nil
}

// backwardOp runs m.Backward. With one input its value is that input's
// gradient; with several it is all gradients concatenated, in a buffer the op
// reuses across runs.
type backwardOp struct {
	fwd *applyOp
	// used[i] is the node carrying input i's gradient. Gradients nobody reads
	// (of data inputs, of frozen subgraphs) are not computed: gorgonia.Grad
	// creates the node for every input, but connects only the needed ones.
	used []*gorgonia.Node
	flat []float32
	zero []float32 // the gradient of a single unused input
	last []bool    // needGrad of the previous run, to re-zero unused regions
}

func (op *backwardOp) Arity() int { return 2 + len(op.fwd.in) }

func (op *backwardOp) Type() hm.Type {
	ts := []hm.Type{valueType(len(op.fwd.out)), valueType(len(op.fwd.out))}
	for _, s := range op.fwd.in {
		ts = append(ts, valueType(len(s)))
	}
	return hm.NewFnType(append(ts, valueType(len(op.shape())))...)
}

// shape is the value's shape: the input's with one input, else a flat vector.
func (op *backwardOp) shape() []int {
	if len(op.fwd.in) == 1 {
		return op.fwd.in[0]
	}
	n := 0
	for _, s := range op.fwd.in {
		n += Numel(s)
	}
	return []int{n}
}

func (op *backwardOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(ds) != op.Arity() {
		return nil, fmt.Errorf("%s.backward: %d inputs, want %d", op.fwd.m.Name(), len(ds), op.Arity())
	}
	return tensor.Shape(op.shape()).Clone(), nil
}

func (op *backwardOp) needGrad() []bool {
	need := make([]bool, len(op.used))
	for i, n := range op.used {
		need[i] = n != nil && (len(n.DerivOf()) > 0 || n.Graph().To(n.ID()).Len() > 0)
	}
	return need
}

func (op *backwardOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	name := op.fwd.m.Name()
	if len(vals) != op.Arity() {
		return nil, fmt.Errorf("%s.backward: %d inputs, want %d", name, len(vals), op.Arity())
	}
	dy, err := fromValue(vals[0], op.fwd.out)
	if err != nil {
		return nil, fmt.Errorf("%s.backward: output gradient: %w", name, err)
	}
	need := op.needGrad()
	var grads []*Tensor
	if anyTrue(need) {
		if grads, err = op.fwd.m.Backward(dy, need); err != nil {
			return nil, fmt.Errorf("%s: backward: %w", name, err)
		}
		if len(grads) != len(need) {
			return nil, fmt.Errorf("%s: backward returned %d gradients for %d inputs", name, len(grads), len(need))
		}
		for i, g := range grads {
			if need[i] && (g == nil || len(g.Data) != Numel(op.fwd.in[i])) {
				return nil, fmt.Errorf("%s: backward returned %v as the gradient of input %d, want shape %v", name, g, i, op.fwd.in[i])
			}
		}
	}

	if len(need) == 1 {
		if need[0] {
			return toValue(&Tensor{Shape: op.fwd.in[0], Data: grads[0].Data}), nil
		}
		// Nothing reads or writes an unused gradient, so zeroing once is enough.
		if op.zero == nil {
			op.zero = make([]float32, Numel(op.fwd.in[0]))
		}
		return toValue(&Tensor{Shape: op.fwd.in[0], Data: op.zero}), nil
	}

	total := op.shape()[0]
	if op.flat == nil {
		op.flat = make([]float32, total)
	}
	offset := 0
	for i, s := range op.fwd.in {
		region := op.flat[offset : offset+Numel(s)]
		offset += len(region)
		if need[i] {
			copy(region, grads[i].Data)
		} else if op.last == nil || op.last[i] {
			clear(region)
		}
	}
	op.last = need
	return tensor.New(tensor.WithShape(total), tensor.WithBacking(op.flat)), nil
}

func (op *backwardOp) ReturnsPtr() bool     { return false }
func (op *backwardOp) CallsExtern() bool    { return false }
func (op *backwardOp) OverwritesInput() int { return -1 }
func (op *backwardOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "nn.Apply(%s).backward@%p", op.fwd.m.Name(), op)
}
func (op *backwardOp) Hashcode() uint32 { return hashOf(op) }
func (op *backwardOp) String() string   { return op.fwd.m.Name() + ".backward" }

// splitOp returns one input's gradient as a view into the concatenated
// gradients of a backwardOp.
type splitOp struct {
	bwd    *backwardOp
	index  int
	offset int
	shape  []int
}

func (op *splitOp) Arity() int { return 1 }
func (op *splitOp) Type() hm.Type {
	return hm.NewFnType(valueType(1), valueType(len(op.shape)))
}
func (op *splitOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.shape).Clone(), nil
}

func (op *splitOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	name := fmt.Sprintf("%s.grad%d", op.bwd.fwd.m.Name(), op.index)
	if len(vals) != 1 {
		return nil, fmt.Errorf("%s: %d inputs, want 1", name, len(vals))
	}
	d, ok := vals[0].(*tensor.Dense)
	if !ok || d.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("%s: input is %T, want a float32 *tensor.Dense", name, vals[0])
	}
	flat := d.Float32s()
	n := Numel(op.shape)
	if op.offset+n > len(flat) {
		return nil, fmt.Errorf("%s: gradients hold %d values, need %d", name, len(flat), op.offset+n)
	}
	return toValue(&Tensor{Shape: op.shape, Data: flat[op.offset : op.offset+n : op.offset+n]}), nil
}

func (op *splitOp) ReturnsPtr() bool     { return false }
func (op *splitOp) CallsExtern() bool    { return false }
func (op *splitOp) OverwritesInput() int { return -1 }
func (op *splitOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "nn.Apply(%s).grad%d@%p", op.bwd.fwd.m.Name(), op.index, op)
}
func (op *splitOp) Hashcode() uint32 { return hashOf(op) }
func (op *splitOp) String() string {
	return fmt.Sprintf("%s.grad%d", op.bwd.fwd.m.Name(), op.index)
}

func hashOf(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// valueType is gorgonia's type of a float32 value with dims dimensions: a
// scalar for 0, a tensor otherwise.
func valueType(dims int) hm.Type {
	if dims == 0 {
		return tensor.Float32
	}
	return gorgonia.TensorType{Dims: dims, Of: tensor.Float32}
}

func checkShapes(name string, want [][]int, ds []gorgonia.DimSizer) error {
	if len(ds) != len(want) {
		return fmt.Errorf("%s: %d inputs, want %d", name, len(ds), len(want))
	}
	for i, d := range ds {
		s, ok := d.(tensor.Shape)
		if !ok {
			return fmt.Errorf("%s: input %d has no shape", name, i)
		}
		if !SameShape(s, want[i]) && !(len(want[i]) == 0 && s.IsScalar()) {
			return fmt.Errorf("%s: input %d has shape %v, the graph was built for %v", name, i, s, want[i])
		}
	}
	return nil
}

var errNotFloat32 = errors.New("value is not float32")

// fromValue views a gorgonia value as a Tensor of the given shape, sharing
// memory when the value is a contiguous *tensor.Dense.
func fromValue(v gorgonia.Value, shape []int) (*Tensor, error) {
	n := Numel(shape)
	switch x := v.(type) {
	case *gorgonia.F32:
		if n != 1 {
			return nil, fmt.Errorf("scalar value for shape %v", shape)
		}
		return &Tensor{Shape: shape, Data: []float32{float32(*x)}}, nil
	case *tensor.Dense:
		if x.Dtype() != tensor.Float32 {
			return nil, fmt.Errorf("%w: %v", errNotFloat32, x.Dtype())
		}
		if x.RequiresIterator() {
			m, ok := x.Materialize().(*tensor.Dense)
			if !ok {
				return nil, fmt.Errorf("cannot make a contiguous copy of a %v view", x.Shape())
			}
			x = m
		}
		if x.DataSize() != n {
			return nil, fmt.Errorf("value of shape %v, want %v", x.Shape(), shape)
		}
		if n == 1 && x.IsScalar() {
			return &Tensor{Shape: shape, Data: []float32{x.ScalarValue().(float32)}}, nil
		}
		data := x.Float32s()
		if len(data) < n {
			return nil, fmt.Errorf("value holds %d floats, want %d", len(data), n)
		}
		return &Tensor{Shape: shape, Data: data[:n:n]}, nil
	case nil:
		return nil, errors.New("no value")
	}
	return nil, fmt.Errorf("%w: %T", errNotFloat32, v)
}

// toValue wraps t (not copied) as a gorgonia value: *F32 for 0-d tensors,
// which gorgonia types as scalars.
func toValue(t *Tensor) gorgonia.Value {
	if len(t.Shape) == 0 {
		return gorgonia.NewF32(t.Data[0])
	}
	return tensor.New(tensor.WithShape(append([]int{}, t.Shape...)...), tensor.WithBacking(t.Data))
}

func anyTrue(b []bool) bool {
	for _, x := range b {
		if x {
			return true
		}
	}
	return false
}
