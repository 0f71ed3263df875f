package sd

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"lorastudio/nn"
)

// CLIPConfig is the shape of a CLIP text transformer (transformers'
// CLIPTextConfig).
type CLIPConfig struct {
	VocabSize int
	Positions int // max_position_embeddings (77)
	Width     int // hidden_size
	Layers    int
	Heads     int
	MLP       int // intermediate_size
}

// SD15CLIPConfig is OpenAI CLIP ViT-L/14's text tower, SD 1.x's text encoder.
func SD15CLIPConfig() CLIPConfig {
	return CLIPConfig{VocabSize: VocabSize, Positions: ContextLength, Width: 768, Layers: 12, Heads: 12, MLP: 3072}
}

// TinyCLIPConfig is the demo model's text encoder: SD 1.x's structure and
// real vocabulary at width 32.
func TinyCLIPConfig() CLIPConfig {
	return CLIPConfig{VocabSize: VocabSize, Positions: ContextLength, Width: 32, Layers: 2, Heads: 4, MLP: 128}
}

// Validate reports a configuration the text encoder cannot be built from.
func (c CLIPConfig) Validate() error {
	switch {
	case c.VocabSize <= 0 || c.Positions <= 0 || c.Width <= 0 || c.Layers <= 0 || c.MLP <= 0:
		return fmt.Errorf("clip config: vocabulary %d, positions %d, width %d, layers %d, mlp %d", c.VocabSize, c.Positions, c.Width, c.Layers, c.MLP)
	case c.Heads <= 0 || c.Width%c.Heads != 0:
		return fmt.Errorf("clip config: width %d does not split into %d heads", c.Width, c.Heads)
	}
	return nil
}

// clipHeads is the head count of a text encoder of the given width, which
// checkpoints do not store: every OpenAI and OpenCLIP text tower uses 64-wide
// heads; the narrow test and demo encoders use 8-wide ones.
func clipHeads(width int) int {
	if width >= 256 && width%64 == 0 {
		return width / 64
	}
	if width%8 == 0 {
		return width / 8
	}
	return 1
}

// CLIPConfigFromShapes derives the configuration from tensor shapes by
// transformers name. heads 0 means "infer from the width".
func CLIPConfigFromShapes(shape func(name string) ([]int, bool), heads int) (CLIPConfig, error) {
	var c CLIPConfig
	tok, ok := shape("text_model.embeddings.token_embedding.weight")
	if !ok || len(tok) != 2 {
		return c, errors.New("text encoder: no text_model.embeddings.token_embedding.weight [vocab, width]")
	}
	c.VocabSize, c.Width = tok[0], tok[1]
	pos, ok := shape("text_model.embeddings.position_embedding.weight")
	if !ok || len(pos) != 2 {
		return c, errors.New("text encoder: no text_model.embeddings.position_embedding.weight [positions, width]")
	}
	c.Positions = pos[0]
	for {
		if _, ok := shape(fmt.Sprintf("text_model.encoder.layers.%d.self_attn.q_proj.weight", c.Layers)); !ok {
			break
		}
		c.Layers++
	}
	fc1, ok := shape("text_model.encoder.layers.0.mlp.fc1.weight")
	if !ok || len(fc1) != 2 {
		return c, errors.New("text encoder: no text_model.encoder.layers.0.mlp.fc1.weight")
	}
	c.MLP = fc1[0]
	c.Heads = heads
	if c.Heads == 0 {
		c.Heads = clipHeads(c.Width)
	}
	return c, c.Validate()
}

// CLIPTextModel is CLIP's text transformer with transformers' module names
// (text_model.*). Its methods may be called from several goroutines; they
// run one at a time.
type CLIPTextModel struct {
	Embeddings     *CLIPEmbeddings     `st:"text_model.embeddings"`
	Layers         []*CLIPEncoderLayer `st:"text_model.encoder.layers"`
	FinalLayerNorm *LayerNorm          `st:"text_model.final_layer_norm"`
	Config         CLIPConfig

	mu      sync.Mutex
	scratch Scratch
	train   clipTrainState
}

// CLIPEmbeddings are the token and learned position embeddings.
type CLIPEmbeddings struct {
	TokenEmbedding    *nn.Tensor `st:"token_embedding.weight"`
	PositionEmbedding *nn.Tensor `st:"position_embedding.weight"`
}

// CLIPEncoderLayer is a pre-LayerNorm transformer layer with causal
// self-attention and a quick-GELU MLP.
type CLIPEncoderLayer struct {
	LayerNorm1 *LayerNorm     `st:"layer_norm1"`
	SelfAttn   *CLIPAttention `st:"self_attn"`
	LayerNorm2 *LayerNorm     `st:"layer_norm2"`
	MLP        *CLIPMLP       `st:"mlp"`

	saved clipLayerSaved
}

// CLIPAttention is causal multi-head self-attention with biased projections.
type CLIPAttention struct {
	QProj   *Linear `st:"q_proj"`
	KProj   *Linear `st:"k_proj"`
	VProj   *Linear `st:"v_proj"`
	OutProj *Linear `st:"out_proj"`
	Heads   int

	saved clipAttnSaved
}

// CLIPMLP is fc2(quick_gelu(fc1(x))).
type CLIPMLP struct {
	FC1 *Linear `st:"fc1"`
	FC2 *Linear `st:"fc2"`
}

const clipLayerNormEps = 1e-5

// NewCLIPTextModel builds the module tree of cfg with weight placeholders;
// Bind (or LoadCLIPTextModel) fills them.
func NewCLIPTextModel(cfg CLIPConfig) (*CLIPTextModel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &CLIPTextModel{
		Embeddings: &CLIPEmbeddings{
			TokenEmbedding:    weight(cfg.VocabSize, cfg.Width),
			PositionEmbedding: weight(cfg.Positions, cfg.Width),
		},
		FinalLayerNorm: NewLayerNorm(cfg.Width, clipLayerNormEps),
		Config:         cfg,
	}
	for range cfg.Layers {
		m.Layers = append(m.Layers, &CLIPEncoderLayer{
			LayerNorm1: NewLayerNorm(cfg.Width, clipLayerNormEps),
			SelfAttn: &CLIPAttention{
				QProj:   NewLinear(cfg.Width, cfg.Width, true),
				KProj:   NewLinear(cfg.Width, cfg.Width, true),
				VProj:   NewLinear(cfg.Width, cfg.Width, true),
				OutProj: NewLinear(cfg.Width, cfg.Width, true),
				Heads:   cfg.Heads,
			},
			LayerNorm2: NewLayerNorm(cfg.Width, clipLayerNormEps),
			MLP:        &CLIPMLP{FC1: NewLinear(cfg.Width, cfg.MLP, true), FC2: NewLinear(cfg.MLP, cfg.Width, true)},
		})
	}
	return m, nil
}

// LoadCLIPTextModel builds the text encoder of cfg and binds its weights
// from src.
func LoadCLIPTextModel(src WeightSource, cfg CLIPConfig) (*CLIPTextModel, error) {
	m, err := NewCLIPTextModel(cfg)
	if err != nil {
		return nil, err
	}
	if err := Bind(src, "", m); err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	return m, nil
}

// Linears calls fn for every Linear layer with its transformers name
// ("text_model.encoder.layers.0.self_attn.q_proj"), the layers kohya's
// lora_te_* adapters attach to.
func (m *CLIPTextModel) Linears(fn func(name string, l *Linear) error) error {
	return Walk("", m, func(name string, mod any) error {
		if l, ok := mod.(*Linear); ok {
			return fn(name, l)
		}
		return nil
	})
}

// Forward encodes token ids [B, T] (T <= Positions, flattened row-major)
// into the conditioning [B, T, Width] SD 1.x cross-attends to. clipSkip 1
// is the last layer's output; clipSkip k > 1 stops k-1 layers early
// (hidden_states[-k]); both go through the final LayerNorm, as A1111 and
// kohya do. The result belongs to the caller.
func (m *CLIPTextModel) Forward(ids []int, batch, clipSkip int) (*nn.Tensor, error) {
	tokens, err := m.check(ids, batch, clipSkip)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.Config
	s := &m.scratch
	x := s.Tensor(batch, tokens, c.Width)
	m.Embeddings.forwardTo(x, ids, tokens)
	for _, layer := range m.Layers[:c.Layers-clipSkip+1] {
		next := layer.Forward(s, x)
		s.Release(x)
		x = next
	}
	out := m.FinalLayerNorm.Forward(s, x)
	s.Release(x)
	res := out.Clone()
	s.Release(out)
	return res, nil
}

// check validates the arguments of a forward pass and returns the number of
// tokens per prompt.
func (m *CLIPTextModel) check(ids []int, batch, clipSkip int) (int, error) {
	c := m.Config
	if batch <= 0 || len(ids) == 0 || len(ids)%batch != 0 {
		return 0, fmt.Errorf("text encoder: %d token ids for batch %d", len(ids), batch)
	}
	tokens := len(ids) / batch
	if tokens > c.Positions {
		return 0, fmt.Errorf("text encoder: %d tokens per prompt, the model has %d positions", tokens, c.Positions)
	}
	if clipSkip < 1 || clipSkip > c.Layers {
		return 0, fmt.Errorf("text encoder: clip skip %d outside 1..%d", clipSkip, c.Layers)
	}
	for i, id := range ids {
		if id < 0 || id >= c.VocabSize {
			return 0, fmt.Errorf("text encoder: token id %d at position %d outside the %d-token vocabulary", id, i, c.VocabSize)
		}
	}
	return tokens, nil
}

// ReleaseMemory drops the pooled scratch buffers and the activations kept
// for training. A Backward then needs a new ForwardTrain.
func (m *CLIPTextModel) ReleaseMemory() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scratch.Drop()
	m.train = clipTrainState{}
	_ = Walk("", m, func(_ string, mod any) error {
		if r, ok := mod.(interface{ releaseKept() }); ok {
			r.releaseKept()
		}
		return nil
	})
}

// forwardTo writes token plus position embeddings into x [B, T, W].
func (e *CLIPEmbeddings) forwardTo(x *nn.Tensor, ids []int, tokens int) {
	w := e.TokenEmbedding.Shape[1]
	for i, id := range ids {
		row := x.Data[i*w : (i+1)*w]
		tok := e.TokenEmbedding.Data[id*w : (id+1)*w]
		pos := e.PositionEmbedding.Data[(i%tokens)*w : (i%tokens+1)*w]
		for j := range row {
			row[j] = tok[j] + pos[j]
		}
	}
}

// Forward maps x [B, T, W] to the layer's output, same shape.
func (l *CLIPEncoderLayer) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	h := l.LayerNorm1.Forward(s, x)
	a := l.SelfAttn.Forward(s, h)
	s.Release(h)
	nn.AddInPlace(a.Data, x.Data)
	h = l.LayerNorm2.Forward(s, a)
	out := l.MLP.Forward(s, h)
	s.Release(h)
	nn.AddInPlace(out.Data, a.Data)
	s.Release(a)
	return out
}

// Forward is causal self-attention over x [B, T, W].
func (a *CLIPAttention) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	b, t := x.Shape[0], x.Shape[1]
	q := a.QProj.Forward(s, x)
	k := a.KProj.Forward(s, x)
	v := a.VProj.Forward(s, x)
	o := s.Tensor(q.Shape...)
	lse := s.Tensor(b * a.Heads * t)
	nn.AttentionForward(&s.WS, o.Data, lse.Data, q.Data, k.Data, v.Data, a.params(b, t))
	s.Release(q, k, v, lse)
	y := a.OutProj.Forward(s, o)
	s.Release(o)
	return y
}

// params describes the causal attention over b prompts of t tokens.
func (a *CLIPAttention) params(b, t int) nn.AttnParams {
	hd := a.QProj.Out / a.Heads
	return nn.AttnParams{Batch: b, Heads: a.Heads, Tq: t, Tk: t, HeadDim: hd, Causal: true, Scale: float32(1 / math.Sqrt(float64(hd)))}
}

// Forward is fc2(quick_gelu(fc1(x))).
func (m *CLIPMLP) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	h := m.FC1.Forward(s, x)
	nn.QuickGELU(h.Data, h.Data)
	y := m.FC2.Forward(s, h)
	s.Release(h)
	return y
}
