// Package nn is LoRA Studio's compute engine: dense float32 tensors, fast CPU
// kernels (OpenBLAS sgemm plus C loops for the elementwise work), custom
// gorgonia ops with exact gradients, and safetensors weight files.
//
// It knows nothing about Stable Diffusion; the model code in package sd is
// written against it.
package nn

import (
	"fmt"
	"strings"
)

// Tensor is a dense, row-major float32 array. Shapes follow PyTorch: NCHW for
// images, [out, in] for linear weights, [out, in, kh, kw] for convolutions.
// Reshape returns a view that shares Data.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zeroed tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, Numel(shape))}
}

// FromData wraps data (not copied) in a tensor. It panics when the sizes
// disagree, which is always a programming error.
func FromData(data []float32, shape ...int) *Tensor {
	if n := Numel(shape); n != len(data) {
		panic(fmt.Sprintf("nn.FromData: %d values for shape %v (%d)", len(data), shape, n))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}
}

// Numel is the number of elements of a shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Numel is the number of elements of t.
func (t *Tensor) Numel() int { return len(t.Data) }

// Reshape returns a view of t with another shape of the same size. One
// dimension may be -1 and is then inferred.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	s := append([]int(nil), shape...)
	infer, known := -1, 1
	for i, d := range s {
		if d == -1 {
			infer = i
			continue
		}
		known *= d
	}
	if infer >= 0 && known > 0 {
		s[infer] = len(t.Data) / known
	}
	if Numel(s) != len(t.Data) {
		panic(fmt.Sprintf("nn.Reshape: %v to %v", t.Shape, shape))
	}
	return &Tensor{Shape: s, Data: t.Data}
}

// Clone returns a deep copy of t.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// SameShape reports whether a and b have identical shapes.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// String describes the shape, not the values: tensors are large.
func (t *Tensor) String() string {
	parts := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		parts[i] = fmt.Sprint(d)
	}
	return "Tensor[" + strings.Join(parts, "x") + "]"
}
