package trainer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lorastudio/atomicfile"
	"lorastudio/sd"
)

// sampleDue applies sd-scripts' rule: with sample_every_n_epochs, at the
// end of every n-th epoch (sample_every_n_steps is then ignored); else
// every sample_every_n_steps steps.
func (j *job) sampleDue(epochEnd bool, epoch int) bool {
	if len(j.prompts) == 0 {
		return false
	}
	if n := j.cfg.SampleEveryNEpochs; n > 0 {
		return epochEnd && epoch%n == 0
	}
	n := j.cfg.SampleEveryNSteps
	return n > 0 && j.step%n == 0
}

// sample renders every prompt with the LoRA being trained applied, into
// output_dir/sample with sd-scripts' file names, each PNG carrying an
// AUTOMATIC1111-style parameters text.
func (j *job) sample(ctx context.Context, byEpoch bool, epoch int) error {
	dir := filepath.Join(j.cfg.OutputDir, "sample")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("samples: %w", err)
	}
	j.releaseScratch()
	defer j.releaseScratch()
	unit := j.model.Config.VAE.Factor() << (len(j.model.Config.UNet.Channels) - 1)
	defSampler, err := ParseSampler(j.cfg.SampleSampler)
	if err != nil {
		return err
	}
	suffix := fmt.Sprintf("%06d", j.step)
	if byEpoch && j.cfg.SampleEveryNEpochs > 0 {
		suffix = fmt.Sprintf("e%06d", epoch)
	}
	for i, p := range j.prompts {
		seed := j.cfg.Seed + int64(i)
		if p.HasSeed {
			seed = p.Seed
		}
		o := sd.GenerateOptions{
			Prompt: p.Prompt, NegativePrompt: p.Negative,
			Width: max(unit, p.Width/unit*unit), Height: max(unit, p.Height/unit*unit),
			Steps: p.Steps, CFGScale: float32(p.Scale), Sampler: defSampler, Seed: uint64(seed), ClipSkip: j.cfg.ClipSkip,
		}
		if p.Sampler != "" {
			o.Sampler = p.Sampler
		}
		if j.sampleConds != nil {
			o.Conditioning = j.sampleConds[i]
		}
		img, err := j.model.Txt2Img(ctx, o, nil)
		if err != nil {
			return fmt.Errorf("sample %q: %w", p.Prompt, err)
		}
		name := fmt.Sprintf("%s_%s_%02d_%s_%d.png", j.cfg.OutputName, suffix, i, time.Now().Format("20060102150405"), seed)
		path := filepath.Join(dir, name)
		if err := writePNG(path, img, j.parameters(o)); err != nil {
			return fmt.Errorf("sample: %w", err)
		}
		j.emit(Sample{Path: path, Prompt: p.Prompt, Step: j.step, Epoch: epoch})
	}
	return nil
}

// a1111Samplers are AUTOMATIC1111's names of the samplers.
var a1111Samplers = map[string]string{"euler_a": "Euler a", "euler": "Euler", "ddim": "DDIM"}

// parameters is the generation info AUTOMATIC1111 writes into a PNG's
// "parameters" text, so a sample dropped on its PNG Info tab shows (and
// can recreate) how it was made. The prompt carries the LoRA's tag.
func (j *job) parameters(o sd.GenerateOptions) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(o.Prompt + " <lora:" + j.cfg.OutputName + ":1>"))
	if o.NegativePrompt != "" {
		b.WriteString("\nNegative prompt: " + o.NegativePrompt)
	}
	fmt.Fprintf(&b, "\nSteps: %d, Sampler: %s, CFG scale: %s, Seed: %d, Size: %dx%d",
		o.Steps, a1111Samplers[o.Sampler], strconv.FormatFloat(float64(o.CFGScale), 'g', -1, 32), o.Seed, o.Width, o.Height)
	if h := j.info.ModelSHA256; h != "" {
		fmt.Fprintf(&b, ", Model hash: %s", h[:10])
	}
	fmt.Fprintf(&b, ", Model: %s", strings.TrimSuffix(modelName(j.cfg.PretrainedModel), filepath.Ext(j.cfg.PretrainedModel)))
	if o.ClipSkip > 1 {
		fmt.Fprintf(&b, ", Clip skip: %d", o.ClipSkip)
	}
	b.WriteString(", Version: LoRA Studio")
	return b.String()
}

// writePNG saves img as a PNG whose "parameters" text chunk holds params
// (tEXt when it is Latin-1, else iTXt, as PIL writes it), atomically.
func writePNG(path string, img image.Image, params string) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	data := buf.Bytes()
	// The signature (8 bytes) and IHDR (25) come first; text chunks may
	// follow IHDR anywhere before IEND.
	const afterIHDR = 8 + 25
	if len(data) < afterIHDR || string(data[12:16]) != "IHDR" {
		return fmt.Errorf("png encoder wrote no IHDR")
	}
	out := make([]byte, 0, len(data)+len(params)+64)
	out = append(out, data[:afterIHDR]...)
	out = append(out, textChunk("parameters", params)...)
	out = append(out, data[afterIHDR:]...)
	return atomicfile.WriteBytes(path, out)
}

// textChunk is a PNG tEXt chunk (keyword, NUL, Latin-1 text), or an
// uncompressed iTXt chunk (UTF-8) when the text is not Latin-1.
func textChunk(keyword, text string) []byte {
	latin1 := make([]byte, 0, len(text))
	for _, r := range text {
		if r > 0xff {
			latin1 = nil
			break
		}
		latin1 = append(latin1, byte(r))
	}
	typ, body := "tEXt", append([]byte(keyword+"\x00"), latin1...)
	if latin1 == nil && text != "" {
		typ, body = "iTXt", append([]byte(keyword+"\x00\x00\x00\x00\x00"), text...)
	}
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	chunk = append(chunk, typ...)
	chunk = append(chunk, body...)
	return binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
}
