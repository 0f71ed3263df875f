package trainer

import (
	"errors"
	"fmt"
	"math"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"lorastudio/nn"
	"lorastudio/sd"
)

// stepGraph is the gorgonia graph of one micro-batch shape: the UNet as
// coarse nodes (sd.UNet.Graph) whose LoRA matrices are the learnable
// inputs, fed by the text encoder's graph when its adapters train too, and
// the min-SNR-weighted MSE against the noise as the cost. gorgonia.Grad
// differentiates it once, when it is built; every micro-batch of that
// shape then writes its inputs into the input nodes' buffers and runs the
// tape.
type stepGraph struct {
	key [3]int // batch, latent height, latent width
	g   *gorgonia.ExprGraph
	vm  gorgonia.VM
	// The input nodes' values share these buffers. With a trained text
	// encoder the captions come in as ids (token ids as float32 [B, 77]),
	// otherwise as their encoding in context [B, 77, D].
	noisy, timesteps, ids, context, target *nn.Tensor
	loss                                   *gorgonia.Node
	mse                                    *weightedMSE
	// params[i] is the graph node of the network's parameter i (the
	// optimizer's order), nil for the adapters of text-encoder layers the
	// clip skip leaves out.
	params []*gorgonia.Node
}

// newStepGraph builds the graph for micro-batches of b latents [4, h, w].
// order maps each trainable adapter to its module index in the network
// (parameters 2i and 2i+1). With trainText the text encoder's adapters
// train, through its graph at the given clip skip.
func newStepGraph(m *sd.Model, order map[*sd.Adapter]int, trainText bool, clipSkip, b, h, w int) (*stepGraph, error) {
	c := m.UNet.Config
	s := &stepGraph{
		g:         gorgonia.NewGraph(),
		noisy:     nn.New(b, c.InChannels, h, w),
		timesteps: nn.New(b),
		target:    nn.New(b, c.InChannels, h, w),
		mse:       &weightedMSE{weights: make([]float32, b)},
		params:    make([]*gorgonia.Node, 2*len(order)),
	}
	add := func(adapters []*sd.Adapter, params []*gorgonia.Node, names []string) error {
		for k, a := range adapters {
			i, ok := order[a]
			if !ok {
				return fmt.Errorf("training graph: adapter of %s is not in the network", names[k])
			}
			s.params[2*i], s.params[2*i+1] = params[2*k], params[2*k+1]
		}
		return nil
	}
	var context *gorgonia.Node
	if trainText {
		s.ids = nn.New(b, sd.ContextLength)
		cg, err := m.Text.Graph(inputNode(s.g, "input_ids", s.ids), clipSkip)
		if err != nil {
			return nil, fmt.Errorf("training graph: %w", err)
		}
		if err := add(cg.Adapters, cg.Params, cg.Names); err != nil {
			return nil, err
		}
		context = cg.Output
	} else {
		s.context = nn.New(b, sd.ContextLength, c.ContextDim)
		context = inputNode(s.g, "context", s.context)
	}
	ug, err := m.UNet.Graph(inputNode(s.g, "noisy_latents", s.noisy), inputNode(s.g, "timesteps", s.timesteps), context)
	if err != nil {
		return nil, fmt.Errorf("training graph: %w", err)
	}
	if err := add(ug.Adapters, ug.Params, ug.Names); err != nil {
		return nil, err
	}
	if s.loss, err = nn.Apply(s.mse, ug.Output, inputNode(s.g, "noise", s.target)); err != nil {
		return nil, fmt.Errorf("training graph: %w", err)
	}
	var wrt []*gorgonia.Node
	for _, p := range s.params {
		if p != nil {
			wrt = append(wrt, p)
		}
	}
	if len(wrt) == 0 {
		return nil, fmt.Errorf("training graph: no trainable adapter")
	}
	if _, err := gorgonia.Grad(s.loss, wrt...); err != nil {
		return nil, fmt.Errorf("training graph: gradients: %w", err)
	}
	s.vm = gorgonia.NewTapeMachine(s.g)
	return s, nil
}

// inputNode is a graph input whose value is t's memory.
func inputNode(g *gorgonia.ExprGraph, name string, t *nn.Tensor) *gorgonia.Node {
	v := tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(t.Data))
	return gorgonia.NewTensor(g, tensor.Float32, len(t.Shape), gorgonia.WithShape(t.Shape...), gorgonia.WithName(name), gorgonia.WithValue(v))
}

// run computes the loss of the inputs in the buffers with per-sample loss
// weights, and adds scale times every parameter's gradient into grads.
func (s *stepGraph) run(weights []float32, grads [][]float32, scale float32) (float64, error) {
	copy(s.mse.weights, weights)
	defer s.vm.Reset()
	if err := s.vm.RunAll(); err != nil {
		return 0, err
	}
	loss, err := scalar(s.loss.Value())
	if err != nil {
		return 0, fmt.Errorf("loss: %w", err)
	}
	for i, p := range s.params {
		if p == nil {
			continue
		}
		gv, err := p.Grad()
		if err != nil {
			return 0, fmt.Errorf("gradient of %s: %w", p.Name(), err)
		}
		d, ok := gv.(*tensor.Dense)
		if !ok || d.Dtype() != tensor.Float32 || d.DataSize() != len(grads[i]) {
			return 0, fmt.Errorf("gradient of %s is %v, want %d float32 values", p.Name(), gv, len(grads[i]))
		}
		g := d.Float32s()
		dst := grads[i]
		for k := range dst {
			dst[k] += scale * g[k]
		}
	}
	return loss, nil
}

func scalar(v gorgonia.Value) (float64, error) {
	switch x := v.(type) {
	case *gorgonia.F32:
		return float64(*x), nil
	case *tensor.Dense:
		if x.Dtype() == tensor.Float32 && x.DataSize() == 1 {
			return float64(x.Float32s()[0]), nil
		}
	}
	return 0, fmt.Errorf("value %v is not a float32 scalar", v)
}

// weightedMSE is the training loss as a graph node: the mean over the batch
// of weight[b] x mean((pred[b] - noise[b])^2), the per-sample MSE that
// sd-scripts computes (mean over C, H, W) scaled by the min-SNR weights.
type weightedMSE struct {
	weights      []float32
	shape        []int
	pred, target []float32
	dpred        []float32
}

func (m *weightedMSE) Name() string { return "loss.weighted_mse" }

func (m *weightedMSE) OutputShape(in [][]int) ([]int, error) {
	if len(in) != 2 || !nn.SameShape(in[0], in[1]) || len(in[0]) == 0 || in[0][0] != len(m.weights) {
		return nil, fmt.Errorf("inputs %v: want prediction and noise of the same shape [%d, ...]", in, len(m.weights))
	}
	return []int{}, nil
}

func (m *weightedMSE) Forward(in []*nn.Tensor) (*nn.Tensor, error) {
	m.shape, m.pred, m.target = in[0].Shape, in[0].Data, in[1].Data
	per := len(m.pred) / len(m.weights)
	var sum float64
	for b, w := range m.weights {
		sum += float64(w) * float64(nn.MSE(m.pred[b*per:(b+1)*per], m.target[b*per:(b+1)*per]))
	}
	return nn.FromData([]float32{float32(sum / float64(len(m.weights)))}), nil
}

func (m *weightedMSE) Backward(dy *nn.Tensor, need []bool) ([]*nn.Tensor, error) {
	if need[1] {
		return nil, errors.New("the noise target has no gradient")
	}
	grads := make([]*nn.Tensor, 2)
	if !need[0] {
		return grads, nil
	}
	if cap(m.dpred) < len(m.pred) {
		m.dpred = make([]float32, len(m.pred))
	}
	m.dpred = m.dpred[:len(m.pred)]
	per := len(m.pred) / len(m.weights)
	for b, w := range m.weights {
		lo, hi := b*per, (b+1)*per
		nn.MSEBackward(m.dpred[lo:hi], m.pred[lo:hi], m.target[lo:hi], dy.Data[0]*w/float32(len(m.weights)))
	}
	grads[0] = nn.FromData(m.dpred, m.shape...)
	return grads, nil
}

// minSNRWeight is min(SNR(t), gamma) / SNR(t) (Hang et al. 2023, as
// sd-scripts applies it for epsilon prediction); 1 when gamma is 0.
func minSNRWeight(s *sd.Schedule, t int, gamma float64) float32 {
	if gamma <= 0 {
		return 1
	}
	snr := s.SNR(t)
	return float32(math.Min(snr, gamma) / snr)
}
