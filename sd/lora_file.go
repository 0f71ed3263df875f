package sd

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"lorastudio/nn"
)

// LoRAFile is a kohya-format LoRA read from disk: per module its down and up
// matrices and alpha, and the file's metadata. Modules are matched to a
// model's layers by LoRAFile.Network.
type LoRAFile struct {
	Path     string
	Metadata map[string]string
	modules  map[string]*fileModule // by kohya name
}

type fileModule struct {
	down, up *nn.Tensor
	alpha    float32
	hasAlpha bool
}

// Names lists the kohya module names in the file, sorted.
func (f *LoRAFile) Names() []string {
	return slices.Sorted(maps.Keys(f.modules))
}

// ReadLoRAFile reads a kohya LoRA (ours or sd-scripts'): keys
// "<module>.lora_down.weight", "<module>.lora_up.weight" and optionally the
// 0-d "<module>.alpha", module names starting "lora_unet_" or "lora_te_".
// Other formats (LyCORIS, diffusers/PEFT, SDXL, SD2) are refused with an error
// naming the file and the key.
func ReadLoRAFile(path string) (*LoRAFile, error) {
	st, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("read lora: %w", err)
	}
	defer st.Close()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("read lora %s: "+format, append([]any{path}, args...)...)
	}
	meta := st.Metadata()
	if v := meta["ss_base_model_version"]; strings.HasPrefix(v, "sdxl") {
		return nil, bad("an SDXL LoRA (ss_base_model_version %s); only Stable Diffusion 1.x is supported", v)
	}
	if meta["ss_v2"] == "True" {
		return nil, bad("a Stable Diffusion 2.x LoRA (ss_v2 True); only Stable Diffusion 1.x is supported")
	}
	f := &LoRAFile{Path: path, Metadata: meta, modules: map[string]*fileModule{}}
	get := func(name string) *fileModule {
		m := f.modules[name]
		if m == nil {
			m = &fileModule{}
			f.modules[name] = m
		}
		return m
	}
	names := st.Names()
	if len(names) == 0 {
		return nil, bad("no tensors")
	}
	for _, key := range names {
		name, part, ok := strings.Cut(key, ".")
		if !ok || !(strings.HasPrefix(name, "lora_unet_") || strings.HasPrefix(name, "lora_te_")) {
			if strings.HasPrefix(name, "lora_te1_") || strings.HasPrefix(name, "lora_te2_") {
				return nil, bad("key %q is an SDXL text-encoder key; only Stable Diffusion 1.x is supported", key)
			}
			return nil, bad("key %q is not a kohya LoRA key (want lora_unet_* or lora_te_*)", key)
		}
		t, err := st.Float32(key)
		if err != nil {
			return nil, fmt.Errorf("read lora: %w", err)
		}
		switch part {
		case "lora_down.weight":
			if len(t.Shape) != 2 && !(len(t.Shape) == 4 && t.Shape[2] == 1 && t.Shape[3] == 1) {
				return nil, bad("key %q: shape %v, want [rank, in] or [rank, in, 1, 1] (3x3 LoCon layers are not supported)", key, t.Shape)
			}
			get(name).down = t
		case "lora_up.weight":
			if len(t.Shape) != 2 && !(len(t.Shape) == 4 && t.Shape[2] == 1 && t.Shape[3] == 1) {
				return nil, bad("key %q: shape %v, want [out, rank] or [out, rank, 1, 1]", key, t.Shape)
			}
			get(name).up = t
		case "alpha":
			if len(t.Data) != 1 {
				return nil, bad("key %q: alpha has shape %v, want a scalar", key, t.Shape)
			}
			m := get(name)
			m.alpha, m.hasAlpha = t.Data[0], true
		default:
			return nil, bad("key %q: unsupported part %q (only lora_down.weight, lora_up.weight and alpha; LyCORIS and DoRA files are not supported)", key, part)
		}
	}
	for _, name := range f.Names() {
		m := f.modules[name]
		switch {
		case m.down == nil:
			return nil, bad("module %s has no lora_down.weight", name)
		case m.up == nil:
			return nil, bad("module %s has no lora_up.weight", name)
		case m.down.Shape[0] != m.up.Shape[1]:
			return nil, bad("module %s: lora_down %v and lora_up %v disagree on the rank", name, m.down.Shape, m.up.Shape)
		case m.down.Shape[0] < 1:
			return nil, bad("module %s: rank 0", name)
		case m.hasAlpha && (m.alpha < 0 || m.alpha != m.alpha):
			return nil, bad("module %s: alpha %v", name, m.alpha)
		}
	}
	return f, nil
}

// Network matches the file's modules to layers (usually
// LoRALayout.AllLayers of the model) and returns them as a network holding
// exactly the file's modules, each with its own rank and alpha; alpha 0 or
// absent means rank, as in kohya. A module with no such layer, or whose shape
// does not fit its layer, is an error naming it.
func (f *LoRAFile) Network(layers []LoRALayer) (*LoRANetwork, error) {
	byName := make(map[string]LoRALayer, len(layers))
	for _, l := range layers {
		byName[l.KohyaName()] = l
	}
	n := &LoRANetwork{}
	for _, l := range layers {
		fm := f.modules[l.KohyaName()]
		if fm == nil {
			continue
		}
		rank := fm.down.Shape[0]
		in, out := fm.down.Shape[1], fm.up.Shape[0]
		if in != l.In || out != l.Out {
			return nil, fmt.Errorf("lora %s: module %s is %dx%d (lora_down %v, lora_up %v), the model's layer is %dx%d",
				f.Path, l.KohyaName(), out, in, fm.down.Shape, fm.up.Shape, l.Out, l.In)
		}
		alpha := float32(rank)
		if fm.hasAlpha && fm.alpha != 0 {
			alpha = fm.alpha
		}
		m := &LoRAModule{LoRALayer: l, Rank: rank, Alpha: alpha}
		m.Down = fm.down.Reshape(m.downShape()...)
		m.Up = fm.up.Reshape(m.upShape()...)
		n.Modules = append(n.Modules, m)
	}
	var unknown []string
	for _, name := range f.Names() {
		if _, ok := byName[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		more := ""
		if len(unknown) > 3 {
			more = fmt.Sprintf(" and %d more", len(unknown)-3)
			unknown = unknown[:3]
		}
		return nil, fmt.Errorf("lora %s: no layer of this model is named %s%s", f.Path, strings.Join(unknown, ", "), more)
	}
	return n, nil
}

// Save writes the network as a kohya LoRA file: every tensor, alpha
// included, in dtype ("F16", sd-scripts' default save precision, "F32" or
// "BF16"), with metadata plus the sshs_model_hash and sshs_legacy_hash that
// sd-scripts precalculates for AUTOMATIC1111's additional-networks index. The
// write is atomic.
func (n *LoRANetwork) Save(path, dtype string, metadata map[string]string) error {
	if len(n.Modules) == 0 {
		return fmt.Errorf("save lora %s: empty network", path)
	}
	tensors := n.Tensors()
	modelHash, legacyHash, err := precalculateHashes(tensors, dtype, metadata)
	if err != nil {
		return fmt.Errorf("save lora %s: %w", path, err)
	}
	meta := maps.Clone(metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta["sshs_model_hash"] = modelHash
	meta["sshs_legacy_hash"] = legacyHash
	if err := nn.WriteSafetensors(path, tensors, dtype, meta); err != nil {
		return fmt.Errorf("save lora: %w", err)
	}
	return nil
}

// precalculateHashes computes what sd-scripts' precalculate_safetensors_hashes
// does: it serialises the tensors with only the "ss_*" metadata and hashes
// that byte string, the model hash over the tensor data after the header and
// the legacy hash over 64 KiB at offset 1 MiB. The tensor bytes come from
// the same encoder that writes the file, so they are exactly the bytes of the
// saved file; the header is rebuilt the way the Rust safetensors library that
// sd-scripts calls formats it.
func precalculateHashes(tensors map[string]*nn.Tensor, dtype string, metadata map[string]string) (model, legacy string, err error) {
	var buf bytes.Buffer
	if err := nn.EncodeSafetensors(&buf, tensors, dtype, nil); err != nil {
		return "", "", err
	}
	raw := buf.Bytes()
	if len(raw) < 8 || binary.LittleEndian.Uint64(raw) > uint64(len(raw)-8) {
		return "", "", fmt.Errorf("encoded tensors are malformed")
	}
	data := raw[8+binary.LittleEndian.Uint64(raw):]
	ss := map[string]string{}
	for k, v := range metadata {
		if strings.HasPrefix(k, "ss_") {
			ss[k] = v
		}
	}
	header, dataLen, err := rustSafetensorsHeader(tensors, dtype, ss)
	if err != nil {
		return "", "", err
	}
	if dataLen != len(data) {
		return "", "", fmt.Errorf("tensor data is %d bytes, the header describes %d", len(data), dataLen)
	}
	sum := sha256.Sum256(data)
	legacy, err = LegacyHash(io.MultiReader(bytes.NewReader(header), bytes.NewReader(data)))
	if err != nil {
		return "", "", err
	}
	return hex.EncodeToString(sum[:]), legacy, nil
}

// rustSafetensorsHeader returns the 8-byte length and JSON header that the
// safetensors Rust library (safetensors.torch.save) writes for tensors of one
// dtype: compact serde_json, "__metadata__" first, tensors in name order
// (all share the dtype), each {"dtype","shape","data_offsets"}, padded with
// spaces to a multiple of 8. It also returns the data length.
func rustSafetensorsHeader(tensors map[string]*nn.Tensor, dtype string, metadata map[string]string) ([]byte, int, error) {
	size := map[string]int{"F32": 4, "F16": 2, "BF16": 2}[dtype]
	if size == 0 {
		return nil, 0, fmt.Errorf("dtype %q, want F32, F16 or BF16", dtype)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	if metadata != nil {
		b.WriteString(`"__metadata__":{`)
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeRustJSONString(&b, k)
			b.WriteByte(':')
			writeRustJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	offset := 0
	for i, name := range slices.Sorted(maps.Keys(tensors)) {
		if i > 0 || metadata != nil {
			b.WriteByte(',')
		}
		t := tensors[name]
		writeRustJSONString(&b, name)
		b.WriteString(`:{"dtype":"` + dtype + `","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		end := offset + size*len(t.Data)
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	out := make([]byte, 8, 8+b.Len())
	binary.LittleEndian.PutUint64(out, uint64(b.Len()))
	return append(out, b.Bytes()...), offset, nil
}

// writeRustJSONString escapes s as serde_json does: quote, backslash and
// control characters only (short forms for \b \t \n \f \r, \u00XX for the
// rest); everything else, non-ASCII included, is written as is.
func writeRustJSONString(b *bytes.Buffer, s string) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xf])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}
