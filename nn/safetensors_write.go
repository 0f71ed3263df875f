package nn

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/nlpodyssey/safetensors"

	"lorastudio/atomicfile"
)

// WriteSafetensors writes tensors to path, all in one dtype ("F32", "F16" or
// "BF16"), with metadata as the header's __metadata__ map. The header keys are
// sorted and the header starts with `{"` (AUTOMATIC1111 checks both bytes).
// The write is atomic: readers see the old file or the complete new one.
func WriteSafetensors(path string, tensors map[string]*Tensor, dtype string, metadata map[string]string) error {
	return WriteSafetensorsDTypes(path, tensors, sameDType(tensors, dtype), metadata)
}

// WriteSafetensorsDTypes is WriteSafetensors with a dtype per tensor, for
// files that mix precisions (a LoRA's fp16 matrices next to fp32 alphas).
func WriteSafetensorsDTypes(path string, tensors map[string]*Tensor, dtypes map[string]string, metadata map[string]string) error {
	views, err := safetensorsViews(tensors, dtypes)
	if err != nil {
		return fmt.Errorf("write safetensors %s: %w", path, err)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		return safetensors.SerializeToWriter(views, metadata, w)
	})
}

// EncodeSafetensors writes the bytes WriteSafetensors would put in a file to
// w, for callers that need them without a file (hashes over the tensor data).
func EncodeSafetensors(w io.Writer, tensors map[string]*Tensor, dtype string, metadata map[string]string) error {
	views, err := safetensorsViews(tensors, sameDType(tensors, dtype))
	if err != nil {
		return fmt.Errorf("encode safetensors: %w", err)
	}
	return safetensors.SerializeToWriter(views, metadata, w)
}

func sameDType(tensors map[string]*Tensor, dtype string) map[string]string {
	dtypes := make(map[string]string, len(tensors))
	for name := range tensors {
		dtypes[name] = dtype
	}
	return dtypes
}

// safetensorsViews checks the tensors and wraps each in a view that converts
// to its dtype when serialised.
func safetensorsViews(tensors map[string]*Tensor, dtypes map[string]string) (map[string]tensorView, error) {
	views := make(map[string]tensorView, len(tensors))
	for name, t := range tensors {
		if name == "" || name == "__metadata__" {
			return nil, fmt.Errorf("invalid tensor name %q", name)
		}
		if t == nil {
			return nil, fmt.Errorf("tensor %q is nil", name)
		}
		if Numel(t.Shape) != len(t.Data) {
			return nil, fmt.Errorf("tensor %q has %d values for shape %v", name, len(t.Data), t.Shape)
		}
		var dt safetensors.DType
		switch dtypes[name] {
		case "F32":
			dt = safetensors.F32
		case "F16":
			dt = safetensors.F16
		case "BF16":
			dt = safetensors.BF16
		default:
			return nil, fmt.Errorf("tensor %q: dtype %q, want F32, F16 or BF16", name, dtypes[name])
		}
		views[name] = tensorView{t: t, dtype: dt}
	}
	return views, nil
}

// tensorView adapts a Tensor to safetensors.View. Data converts lazily, so a
// whole checkpoint is never held twice in memory while it is written.
type tensorView struct {
	t     *Tensor
	dtype safetensors.DType
}

func (v tensorView) DType() safetensors.DType { return v.dtype }

// Shape is never nil: a 0-d tensor (a LoRA alpha) must be written as "shape":[].
func (v tensorView) Shape() []uint64 {
	s := make([]uint64, len(v.t.Shape))
	for i, d := range v.t.Shape {
		s[i] = uint64(d)
	}
	return s
}

func (v tensorView) DataLen() uint64 { return uint64(len(v.t.Data)) * v.dtype.Size() }

func (v tensorView) Data() []byte {
	x := v.t.Data
	switch v.dtype {
	case safetensors.F16:
		b := make([]byte, 2*len(x))
		for i, f := range x {
			binary.LittleEndian.PutUint16(b[2*i:], f32ToF16(f))
		}
		return b
	case safetensors.BF16:
		b := make([]byte, 2*len(x))
		for i, f := range x {
			binary.LittleEndian.PutUint16(b[2*i:], f32ToBF16(f))
		}
		return b
	}
	if littleEndian() {
		return float32Bytes(x)
	}
	b := make([]byte, 4*len(x))
	for i, f := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}
