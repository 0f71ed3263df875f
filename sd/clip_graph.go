package sd

import (
	"errors"
	"fmt"
	"math"

	"gorgonia.org/gorgonia"

	"lorastudio/nn"
)

// CLIPGraph is a text encoder placed in a gorgonia graph as coarse nodes
// (nn.Apply): the embeddings, each encoder layer the clip skip uses, and
// the final LayerNorm. As in UNetGraph, frozen weights are node fields and
// the trainable LoRA matrices are graph inputs, so Output can feed
// UNet.Graph's context and one gorgonia.Grad gives the adapter gradients of
// both models.
type CLIPGraph struct {
	Output *gorgonia.Node // the conditioning [B, T, Width]
	// Params holds lora_down and lora_up of every trainable adapter of the
	// used layers, in pairs: Params[2i] and Params[2i+1] belong to
	// Adapters[i], attached to the Linear named Names[i]
	// ("text_model.encoder.layers.0.self_attn.q_proj"). Their values share
	// memory with the adapters' Down and Up.
	Params   []*gorgonia.Node
	Adapters []*Adapter
	Names    []string
	// Skipped are the trainable adapters of the layers the clip skip leaves
	// out: they are not in the graph and have no gradient (kohya's optimizer
	// leaves them untouched, weight decay included).
	Skipped []*Adapter
}

// Graph adds the text encoder to the graph of ids, a float32 node [B, T]
// holding token ids (exact in float32 for any CLIP vocabulary). Attach the
// trainable adapters before calling it; each call makes new nodes, and a
// text encoder belongs to at most one graph at a time (its layers keep the
// activations of their single application). The ids get no gradient.
func (m *CLIPTextModel) Graph(ids *gorgonia.Node, clipSkip int) (*CLIPGraph, error) {
	c := m.Config
	if clipSkip < 1 || clipSkip > c.Layers {
		return nil, fmt.Errorf("text encoder graph: clip skip %d outside 1..%d", clipSkip, c.Layers)
	}
	g := ids.Graph()
	out := &CLIPGraph{}
	x, err := nn.Apply(&clipEmbedNode{m: m}, ids)
	if err != nil {
		return nil, fmt.Errorf("text encoder graph: %w", err)
	}
	for i, layer := range m.Layers[:c.Layers-clipSkip+1] {
		n := &clipLayerNode{m: m, layer: layer, name: fmt.Sprintf("text_model.encoder.layers.%d", i)}
		inputs := []*gorgonia.Node{x}
		adapters, params, names, err := trainableParams(g, n.name+".", layer)
		if err != nil {
			return nil, err
		}
		n.adapters = adapters
		inputs = append(inputs, params...)
		out.Params = append(out.Params, params...)
		out.Adapters = append(out.Adapters, adapters...)
		out.Names = append(out.Names, names...)
		if x, err = nn.Apply(n, inputs...); err != nil {
			return nil, fmt.Errorf("text encoder graph: %w", err)
		}
	}
	out.Skipped = m.SkippedAdapters(clipSkip)
	if out.Output, err = nn.Apply(&clipFinalNode{m: m}, x); err != nil {
		return nil, fmt.Errorf("text encoder graph: %w", err)
	}
	return out, nil
}

// clipEmbedNode looks up token plus position embeddings; it has no
// gradient.
type clipEmbedNode struct {
	m   *CLIPTextModel
	ids []int
	out nn.Workspace
}

func (n *clipEmbedNode) Name() string { return "text_model.embeddings" }

func (n *clipEmbedNode) OutputShape(in [][]int) ([]int, error) {
	if len(in) != 1 || len(in[0]) != 2 || in[0][0] < 1 || in[0][1] < 1 {
		return nil, fmt.Errorf("token ids %v, want one [B, T]", in)
	}
	if in[0][1] > n.m.Config.Positions {
		return nil, fmt.Errorf("%d tokens per prompt, the model has %d positions", in[0][1], n.m.Config.Positions)
	}
	return []int{in[0][0], in[0][1], n.m.Config.Width}, nil
}

func (n *clipEmbedNode) Forward(in []*nn.Tensor) (*nn.Tensor, error) {
	b, t := in[0].Shape[0], in[0].Shape[1]
	n.ids = n.ids[:0]
	for i, v := range in[0].Data {
		if v != float32(math.Trunc(float64(v))) || v < 0 || int(v) >= n.m.Config.VocabSize {
			return nil, fmt.Errorf("token id %v at position %d is not an id of the %d-token vocabulary", v, i, n.m.Config.VocabSize)
		}
		n.ids = append(n.ids, int(v))
	}
	x := kept(&n.out, b, t, n.m.Config.Width)
	n.m.Embeddings.forwardTo(x, n.ids, t)
	return x, nil
}

func (n *clipEmbedNode) Backward(_ *nn.Tensor, need []bool) ([]*nn.Tensor, error) {
	if need[0] {
		return nil, errors.New("token ids have no gradient")
	}
	return make([]*nn.Tensor, 1), nil
}

// clipLayerNode is one encoder layer. Inputs: x, then lora_down and lora_up
// of each trainable adapter in the layer. Outputs and gradients live in
// node-owned buffers, as gorgonia keeps references to them.
type clipLayerNode struct {
	m        *CLIPTextModel
	layer    *CLIPEncoderLayer
	name     string
	adapters []*Adapter

	out, dx nn.Workspace
}

func (n *clipLayerNode) Name() string { return n.name }

func (n *clipLayerNode) OutputShape(in [][]int) ([]int, error) {
	if want := 1 + 2*len(n.adapters); len(in) != want {
		return nil, fmt.Errorf("%d inputs, want %d", len(in), want)
	}
	if x := in[0]; len(x) != 3 || x[2] != n.m.Config.Width {
		return nil, fmt.Errorf("input %v, want [B, T, %d]", x, n.m.Config.Width)
	}
	return append([]int{}, in[0]...), nil
}

func (n *clipLayerNode) Forward(in []*nn.Tensor) (*nn.Tensor, error) {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	for i, a := range n.adapters {
		syncParam(a.Down, in[1+2*i])
		syncParam(a.Up, in[2+2*i])
	}
	s := &n.m.scratch
	y := n.layer.ForwardTrain(s, in[0])
	k := keep(&n.out, y)
	s.Release(y)
	return k, nil
}

func (n *clipLayerNode) Backward(dy *nn.Tensor, need []bool) ([]*nn.Tensor, error) {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	grads := make([]*nn.Tensor, len(need))
	if !need[0] && len(n.adapters) == 0 {
		return grads, nil
	}
	s := &n.m.scratch
	dx := n.layer.Backward(s, dy, need[0])
	if need[0] {
		grads[0] = keep(&n.dx, dx)
		s.Release(dx)
	}
	for i, a := range n.adapters {
		grads[1+2*i] = a.GradDown
		grads[2+2*i] = a.GradUp
	}
	return grads, nil
}

// clipFinalNode is the final LayerNorm.
type clipFinalNode struct {
	m       *CLIPTextModel
	x       *nn.Tensor // the input, kept alive by nn.Apply until Backward
	out, dx nn.Workspace
}

func (n *clipFinalNode) Name() string { return "text_model.final_layer_norm" }

func (n *clipFinalNode) OutputShape(in [][]int) ([]int, error) {
	if len(in) != 1 || len(in[0]) != 3 || in[0][2] != n.m.Config.Width {
		return nil, fmt.Errorf("input %v, want one [B, T, %d]", in, n.m.Config.Width)
	}
	return append([]int{}, in[0]...), nil
}

func (n *clipFinalNode) Forward(in []*nn.Tensor) (*nn.Tensor, error) {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	s := &n.m.scratch
	n.x = in[0]
	y := n.m.FinalLayerNorm.ForwardTrain(s, n.x)
	k := keep(&n.out, y)
	s.Release(y)
	return k, nil
}

func (n *clipFinalNode) Backward(dy *nn.Tensor, need []bool) ([]*nn.Tensor, error) {
	if !need[0] {
		return make([]*nn.Tensor, 1), nil
	}
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	s := &n.m.scratch
	dx := n.m.FinalLayerNorm.Backward(s, dy, n.x)
	k := keep(&n.dx, dx)
	s.Release(dx)
	return []*nn.Tensor{k}, nil
}
