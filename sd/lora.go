package sd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"lorastudio/nn"
)

// A LoRA adapts a frozen layer W with a low-rank product, the way kohya-ss
// sd-scripts (networks/lora.py) does it:
//
//	y = W x + multiplier * (alpha/rank) * up(down(x))
//
// down is [rank, in] and up is [out, rank] (for a 1x1 convolution
// [rank, in, 1, 1] and [out, rank, 1, 1]). Merged into the weights this is
// W' = W + multiplier * (alpha/rank) * up @ down.

// LoRAModule is the adapter of one layer: its two matrices and alpha.
type LoRAModule struct {
	LoRALayer
	Rank  int
	Alpha float32    // the effective alpha: kohya's alpha 0 or absent means rank
	Down  *nn.Tensor // [Rank, In], or [Rank, In, 1, 1] for a 1x1 convolution
	Up    *nn.Tensor // [Out, Rank], or [Out, Rank, 1, 1]
}

// Scale is alpha/rank, the factor kohya applies to up(down(x)).
func (m *LoRAModule) Scale() float32 {
	return float32(float64(m.Alpha) / float64(m.Rank))
}

// AddDelta adds multiplier * scale * up @ down to w, the layer's weight
// ([Out, In] or [Out, In, 1, 1]); this is what merging the LoRA does.
func (m *LoRAModule) AddDelta(w *nn.Tensor, multiplier float32) error {
	if len(w.Data) != m.Out*m.In || len(w.Shape) < 2 || w.Shape[0] != m.Out || w.Shape[1] != m.In {
		return fmt.Errorf("lora %s: weight shape %v, want [%d %d ...] for a %dx%d adapter", m.KohyaName(), w.Shape, m.Out, m.In, m.Out, m.In)
	}
	nn.Sgemm(false, false, m.Out, m.In, m.Rank, multiplier*m.Scale(), m.Up.Data, m.Rank, m.Down.Data, m.In, 1, w.Data, m.In)
	return nil
}

// LoRANetwork is a set of adapters, one per adapted layer, in a fixed order
// (the order of the layer list it was made from). The order is the order of
// Params, so optimizer state lines up across a save and a resume.
type LoRANetwork struct {
	Modules []*LoRAModule
}

// NewLoRANetwork makes adapters of the given rank and alpha for layers, with
// kohya's initialisation: down ~ kaiming_uniform(a=sqrt(5)), that is
// U(-1/sqrt(in), 1/sqrt(in)), and up = 0, so the untrained network changes
// nothing. alpha 0 means alpha = rank, as in kohya. The same seed gives the
// same weights.
func NewLoRANetwork(layers []LoRALayer, rank int, alpha float32, seed uint64) (*LoRANetwork, error) {
	if rank < 1 {
		return nil, fmt.Errorf("lora: rank %d, want at least 1", rank)
	}
	if alpha < 0 || math.IsNaN(float64(alpha)) || math.IsInf(float64(alpha), 0) {
		return nil, fmt.Errorf("lora: alpha %v, want a finite number >= 0", alpha)
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("lora: no layers to adapt")
	}
	if alpha == 0 {
		alpha = float32(rank)
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c6f7261)) // "lora"
	n := &LoRANetwork{Modules: make([]*LoRAModule, 0, len(layers))}
	seen := map[string]bool{}
	for _, l := range layers {
		if l.In < 1 || l.Out < 1 {
			return nil, fmt.Errorf("lora %s: layer is %dx%d", l.KohyaName(), l.Out, l.In)
		}
		if seen[l.KohyaName()] {
			return nil, fmt.Errorf("lora %s: layer listed twice", l.KohyaName())
		}
		seen[l.KohyaName()] = true
		m := &LoRAModule{LoRALayer: l, Rank: rank, Alpha: alpha}
		m.Down, m.Up = nn.New(m.downShape()...), nn.New(m.upShape()...)
		bound := 1 / math.Sqrt(float64(l.In))
		for i := range m.Down.Data {
			m.Down.Data[i] = float32((2*rng.Float64() - 1) * bound)
		}
		n.Modules = append(n.Modules, m)
	}
	return n, nil
}

func (m *LoRAModule) downShape() []int {
	if m.Conv {
		return []int{m.Rank, m.In, 1, 1}
	}
	return []int{m.Rank, m.In}
}

func (m *LoRAModule) upShape() []int {
	if m.Conv {
		return []int{m.Out, m.Rank, 1, 1}
	}
	return []int{m.Out, m.Rank}
}

// Module finds an adapter by its kohya name
// ("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_q") or its
// diffusers module path ("mid_block.attentions.0.transformer_blocks.0.attn2.to_q";
// text-encoder paths start with "text_model."). It returns nil when absent.
func (n *LoRANetwork) Module(name string) *LoRAModule {
	for _, m := range n.Modules {
		if m.KohyaName() == name || m.Module == name {
			return m
		}
	}
	return nil
}

// Params lists the trainable tensors, down then up for each module in order.
func (n *LoRANetwork) Params() []*nn.Tensor {
	p := make([]*nn.Tensor, 0, 2*len(n.Modules))
	for _, m := range n.Modules {
		p = append(p, m.Down, m.Up)
	}
	return p
}

// NumParams is the number of trainable values.
func (n *LoRANetwork) NumParams() int {
	total := 0
	for _, m := range n.Modules {
		total += len(m.Down.Data) + len(m.Up.Data)
	}
	return total
}

// TextEncoder reports whether any module adapts the text encoder.
func (n *LoRANetwork) TextEncoder() bool {
	for _, m := range n.Modules {
		if m.TextEncoder {
			return true
		}
	}
	return false
}

// Tensors returns the network under kohya's key names: for each module
// "<name>.lora_down.weight", "<name>.lora_up.weight" and the 0-d
// "<name>.alpha". The tensors share memory with the network.
func (n *LoRANetwork) Tensors() map[string]*nn.Tensor {
	t := make(map[string]*nn.Tensor, 3*len(n.Modules))
	for _, m := range n.Modules {
		name := m.KohyaName()
		t[name+".lora_down.weight"] = m.Down
		t[name+".lora_up.weight"] = m.Up
		t[name+".alpha"] = nn.FromData([]float32{m.Alpha})
	}
	return t
}

// Merge adds every module's delta, times multiplier, into the frozen weights
// that weight returns for its layer (modified in place): afterwards the plain
// model computes what the model with the LoRA applied computed before.
func (n *LoRANetwork) Merge(weight func(LoRALayer) (*nn.Tensor, error), multiplier float32) error {
	for _, m := range n.Modules {
		w, err := weight(m.LoRALayer)
		if err != nil {
			return fmt.Errorf("merge lora %s: %w", m.KohyaName(), err)
		}
		if err := m.AddDelta(w, multiplier); err != nil {
			return fmt.Errorf("merge %w", err)
		}
	}
	return nil
}

// kohyaName is prefix + "_" + the module path with dots replaced by
// underscores, as in LoRANetwork.create_modules of networks/lora.py.
func kohyaName(prefix, module string) string {
	return prefix + "_" + strings.ReplaceAll(module, ".", "_")
}

// Attach attaches the network's modules to the layers of u and text (text
// may be nil when no module adapts the text encoder) as adapters sharing the
// network's tensors, so an optimizer step on Params is seen by the next
// forward pass. Trainable adapters get their gradients (Adapter.GradDown,
// GradUp) from every Backward. The adapters are returned in module order;
// for AUTOMATIC1111's <lora:name:te:unet> set the Multiplier of the
// text-encoder modules' adapters afterwards. UNet.DetachAll (and
// Linear.Detach) remove them.
func (n *LoRANetwork) Attach(u *UNet, text *CLIPTextModel, multiplier float32, trainable bool) ([]*Adapter, error) {
	layers, err := linearsOf(u, text, n.TextEncoder())
	if err != nil {
		return nil, fmt.Errorf("attach lora: %w", err)
	}
	adapters := make([]*Adapter, len(n.Modules))
	for i, m := range n.Modules {
		l := layers[m.KohyaName()]
		if l == nil {
			return nil, fmt.Errorf("attach lora %s: the model has no layer %s", m.KohyaName(), m.Module)
		}
		a := &Adapter{Down: m.Down, Up: m.Up, Scale: m.Scale(), Multiplier: multiplier, Trainable: trainable}
		if err := l.Attach(a); err != nil {
			return nil, fmt.Errorf("attach %s: %w", m.KohyaName(), err)
		}
		adapters[i] = a
	}
	return adapters, nil
}

// MergeInto merges the network into the weights of u and text at
// multiplier (see Merge); text may be nil when no module adapts it.
func (n *LoRANetwork) MergeInto(u *UNet, text *CLIPTextModel, multiplier float32) error {
	layers, err := linearsOf(u, text, n.TextEncoder())
	if err != nil {
		return fmt.Errorf("merge lora: %w", err)
	}
	return n.Merge(func(l LoRALayer) (*nn.Tensor, error) {
		lin := layers[l.KohyaName()]
		if lin == nil {
			return nil, fmt.Errorf("the model has no layer %s", l.Module)
		}
		return lin.Weight, nil
	}, multiplier)
}

// linearsOf indexes the adaptable layers of a model by kohya name.
func linearsOf(u *UNet, text *CLIPTextModel, needText bool) (map[string]*Linear, error) {
	if u == nil {
		return nil, fmt.Errorf("no UNet")
	}
	if needText && text == nil {
		return nil, fmt.Errorf("the LoRA adapts the text encoder, and no text encoder was given")
	}
	layers := map[string]*Linear{}
	_ = u.Linears(func(name string, l *Linear) error {
		layers[kohyaName("lora_unet", name)] = l
		return nil
	})
	if text != nil {
		_ = text.Linears(func(name string, l *Linear) error {
			layers[kohyaName("lora_te", name)] = l
			return nil
		})
	}
	return layers, nil
}
