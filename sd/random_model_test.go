package sd

import (
	"reflect"
	"testing"

	"lorastudio/nn"
)

// TestWriteRandomModel checks that the written folder loads through the
// checkpoint path as the same model NewRandomModel builds: same
// configuration, bit-identical UNet and text encoder outputs.
func TestWriteRandomModel(t *testing.T) {
	dir := t.TempDir()
	const seed = 7
	if err := WriteRandomModel(dir, TinyConfig(), seed, "F32"); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	built, err := NewRandomModel(TinyConfig(), seed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded.Config, built.Config) {
		t.Fatalf("loaded config %+v, want %+v", loaded.Config, built.Config)
	}
	ctx := [2]*nn.Tensor{}
	for i, m := range []*Model{loaded, built} {
		if ctx[i], err = m.EncodePrompts([]string{"a photo of a dog"}, 1); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(ctx[0].Data, ctx[1].Data) {
		t.Error("text encoder outputs differ")
	}
	x := nn.New(1, 4, 8, 8)
	for i := range x.Data {
		x.Data[i] = float32(i%7) / 7
	}
	var out [2]*nn.Tensor
	for i, m := range []*Model{loaded, built} {
		if out[i], err = m.UNet.Forward(x, []float32{500}, ctx[1]); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(out[0].Data, out[1].Data) {
		t.Error("UNet outputs differ")
	}
}
