package sd

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"lorastudio/nn"
)

// mapSource serves tensors from a map, as a checkpoint would.
type mapSource map[string]*nn.Tensor

func (m mapSource) Tensor(name string, want ...int) (*nn.Tensor, error) {
	t, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("test.safetensors: no tensor %s", name)
	}
	if !nn.SameShape(t.Shape, want) {
		return nil, fmt.Errorf("test.safetensors: %s is %v, want %v", name, t.Shape, want)
	}
	return t, nil
}

type bindLeaf struct {
	Weight *nn.Tensor `st:"weight"`
	Bias   *nn.Tensor `st:"bias"`
	Size   int
}

type bindTree struct {
	Proj   *bindLeaf   `st:"ff.net.0.proj"`
	Absent *bindLeaf   `st:"absent"`
	Layers []*bindLeaf `st:"layers"`
	Scale  float32
}

func newBindTree() *bindTree {
	return &bindTree{
		Proj:   &bindLeaf{Weight: weight(2, 3), Bias: weight(2)},
		Layers: []*bindLeaf{{Weight: weight(4)}, {Weight: weight(5)}},
	}
}

func fullSource() mapSource {
	return mapSource{
		"m.ff.net.0.proj.weight": nn.New(2, 3),
		"m.ff.net.0.proj.bias":   nn.New(2),
		"m.layers.0.weight":      nn.New(4),
		"m.layers.1.weight":      nn.New(5),
	}
}

func TestBind(t *testing.T) {
	src := fullSource()
	m := newBindTree()
	if err := Bind(src, "m.", m); err != nil {
		t.Fatal(err)
	}
	if m.Proj.Weight != src["m.ff.net.0.proj.weight"] || m.Layers[1].Weight != src["m.layers.1.weight"] {
		t.Error("weights not bound from the source")
	}
	if m.Layers[0].Bias != nil || m.Absent != nil {
		t.Error("absent weights or modules were filled")
	}
}

func TestBindErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(mapSource)
		want string
	}{
		{"missing", func(s mapSource) { delete(s, "m.layers.1.weight") }, "m.layers.1.weight"},
		{"shape", func(s mapSource) { s["m.ff.net.0.proj.weight"] = nn.New(3, 2) }, "m.ff.net.0.proj.weight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := fullSource()
			tc.edit(src)
			err := Bind(src, "m.", newBindTree())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestBindRejectsNonModules(t *testing.T) {
	type bad struct {
		N int `st:"n"`
	}
	if err := Bind(fullSource(), "", &bad{}); err == nil {
		t.Error("int field with a tag: no error")
	}
	if err := Bind(fullSource(), "", bindLeaf{}); err == nil {
		t.Error("non-pointer module: no error")
	}
}

func TestWalk(t *testing.T) {
	var names []string
	if err := Walk("m.", newBindTree(), func(name string, m any) error {
		names = append(names, fmt.Sprintf("%s:%T", name, m))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"m:*sd.bindTree", "m.ff.net.0.proj:*sd.bindLeaf", "m.layers.0:*sd.bindLeaf", "m.layers.1:*sd.bindLeaf"}
	if !slices.Equal(names, want) {
		t.Errorf("walk %v, want %v", names, want)
	}
}
