// Package sd is Stable Diffusion 1.x in Go: the CLIP tokenizer and text
// encoder, the VAE, the UNet, the noise schedule and samplers, checkpoint
// loading (single-file and diffusers folders) and LoRA injection with kohya's
// key names. It computes what diffusers and AUTOMATIC1111 compute.
package sd

import "lorastudio/nn"

// WeightSource hands out a model's weights by their diffusers names
// ("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.weight",
// "encoder.down_blocks.0.resnets.0.conv1.weight", "text_model.encoder.layers.0.mlp.fc1.bias"),
// converted to float32. Tensor fails with an error naming the key and the file
// when the key is missing or its shape differs from want.
//
// A checkpoint file, a diffusers folder and a seeded random initialiser (for
// benchmarks and the demo model) all implement it, so one model definition
// serves all three.
type WeightSource interface {
	Tensor(name string, want ...int) (*nn.Tensor, error)
}
