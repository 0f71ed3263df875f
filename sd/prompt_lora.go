package sd

import (
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"lorastudio/nn"
)

// LoRARef is one <lora:NAME:TE[:UNET[:DYN]]> of a prompt, as AUTOMATIC1111's
// built-in Lora extension reads it: TE multiplies the text-encoder
// adapters, UNet the UNet adapters (it defaults to TE), Dyn is the dynamic
// rank of DyLoRA files (0: none).
type LoRARef struct {
	Name     string
	TE, UNet float32
	Dyn      int
}

// extraNetwork is AUTOMATIC1111's extra-network pattern (re_extra_net in
// modules/extra_networks.py).
var extraNetwork = regexp.MustCompile(`<(\w+):([^>]+)>`)

// ParsePromptLoRAs removes every <lora:...> from prompt and returns the
// prompt without them and the references in prompt order. Arguments are
// positional (name, te, unet, dyn) or named (te=, unet=, dyn=), as in
// AUTOMATIC1111. Other extra networks (<hypernet:...>) are an error: they
// would silently do nothing here.
func ParsePromptLoRAs(prompt string) (clean string, refs []LoRARef, err error) {
	var problems []string
	clean = extraNetwork.ReplaceAllStringFunc(prompt, func(tag string) string {
		m := extraNetwork.FindStringSubmatch(tag)
		kind := m[1]
		if kind != "lora" && kind != "lyco" {
			problems = append(problems, fmt.Sprintf("%s: extra network %q is not supported (only lora)", tag, kind))
			return ""
		}
		ref, err := parseLoRAArgs(strings.Split(m[2], ":"))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", tag, err))
			return ""
		}
		refs = append(refs, ref)
		return ""
	})
	if len(problems) > 0 {
		return "", nil, fmt.Errorf("prompt: %s", strings.Join(problems, "; "))
	}
	return clean, refs, nil
}

// parseLoRAArgs reads the colon-separated arguments of a lora tag.
func parseLoRAArgs(args []string) (LoRARef, error) {
	var positional []string
	named := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			named[strings.TrimSpace(k)] = strings.TrimSpace(v)
			continue
		}
		positional = append(positional, a)
	}
	ref := LoRARef{TE: 1}
	if len(positional) == 0 || strings.TrimSpace(positional[0]) == "" {
		return ref, fmt.Errorf("no LoRA name")
	}
	ref.Name = strings.TrimSpace(positional[0])
	if len(positional) > 4 {
		return ref, fmt.Errorf("%d arguments, want at most name:te:unet:dyn", len(positional))
	}
	get := func(key string, pos int) (string, bool) {
		if v, ok := named[key]; ok {
			return v, true
		}
		if pos < len(positional) {
			return strings.TrimSpace(positional[pos]), true
		}
		return "", false
	}
	for k := range named {
		if k != "te" && k != "unet" && k != "dyn" {
			return ref, fmt.Errorf("unknown argument %q (want te, unet or dyn)", k)
		}
	}
	number := func(key, v string) (float32, error) {
		f, err := strconv.ParseFloat(v, 32)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%s multiplier %q is not a number", key, v)
		}
		return float32(f), nil
	}
	if v, ok := get("te", 1); ok {
		f, err := number("te", v)
		if err != nil {
			return ref, err
		}
		ref.TE = f
	}
	ref.UNet = ref.TE
	if v, ok := get("unet", 2); ok {
		f, err := number("unet", v)
		if err != nil {
			return ref, err
		}
		ref.UNet = f
	}
	if v, ok := get("dyn", 3); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return ref, fmt.Errorf("dyn %q is not a rank", v)
		}
		ref.Dyn = n
	}
	return ref, nil
}

// LoRAEntry is a LoRA file found in a LoRA folder: the name a prompt uses
// (the file stem) and its ss_output_name alias.
type LoRAEntry struct {
	Name, Alias, Path string
}

// FindLoRAs lists the .safetensors files in dir and its subfolders, as
// AUTOMATIC1111 lists its Lora folder, sorted by name. A file whose header
// cannot be read is listed without an alias: using it reports the problem.
func FindLoRAs(dir string) ([]LoRAEntry, error) {
	var out []LoRAEntry
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return err
			}
			return nil
		}
		if d.IsDir() || !strings.EqualFold(filepath.Ext(path), ".safetensors") {
			return nil
		}
		e := LoRAEntry{Name: strings.TrimSuffix(d.Name(), filepath.Ext(d.Name())), Path: path}
		if f, err := nn.OpenSafetensors(path); err == nil {
			e.Alias = f.Metadata()["ss_output_name"]
			f.Close()
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lora folder %s: %w", dir, err)
	}
	slices.SortFunc(out, func(a, b LoRAEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ResolveLoRA finds the file a prompt's LoRA name means: a file stem first,
// then an ss_output_name alias, as AUTOMATIC1111 does. Two files with the
// same stem (in different subfolders) are an error rather than a guess.
func ResolveLoRA(entries []LoRAEntry, name string) (string, error) {
	var stems []string
	for _, e := range entries {
		if e.Name == name {
			stems = append(stems, e.Path)
		}
	}
	switch len(stems) {
	case 1:
		return stems[0], nil
	case 0:
	default:
		return "", fmt.Errorf("lora %q: %d files have that name (%s); rename one", name, len(stems), strings.Join(stems, ", "))
	}
	for _, e := range entries {
		if e.Alias == name {
			return e.Path, nil
		}
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	if len(names) == 0 {
		return "", fmt.Errorf("lora %q: the LoRA folder holds no .safetensors files", name)
	}
	return "", fmt.Errorf("lora %q: no such file in the LoRA folder (have %s)", name, strings.Join(names, ", "))
}

// ApplyLoRAs attaches the referenced LoRA files (paths[i] for refs[i]) to
// the model's UNet and text encoder with their multipliers. detach removes
// every adapter again; it is returned (and safe to call) even with an error.
func (m *Model) ApplyLoRAs(refs []LoRARef, paths []string) (detach func(), err error) {
	detach = func() {
		m.UNet.DetachAll()
		_ = m.Text.Linears(func(_ string, l *Linear) error {
			l.Detach()
			return nil
		})
	}
	if len(refs) != len(paths) {
		return detach, fmt.Errorf("apply loras: %d references, %d files", len(refs), len(paths))
	}
	layers, err := LoRALayoutOf(m.Config).AllLayers()
	if err != nil {
		return detach, fmt.Errorf("apply loras: %w", err)
	}
	for i, ref := range refs {
		if ref.Dyn > 0 {
			detach()
			return detach, fmt.Errorf("lora %s: dyn %d: DyLoRA ranks are not supported", ref.Name, ref.Dyn)
		}
		f, err := ReadLoRAFile(paths[i])
		if err != nil {
			detach()
			return detach, err
		}
		net, err := f.Network(layers)
		if err != nil {
			detach()
			return detach, fmt.Errorf("lora %s (%s) does not fit this model: %w", ref.Name, paths[i], err)
		}
		adapters, err := net.Attach(m.UNet, m.Text, ref.UNet, false)
		if err != nil {
			detach()
			return detach, fmt.Errorf("lora %s (%s): %w", ref.Name, paths[i], err)
		}
		for j, a := range adapters {
			if net.Modules[j].TextEncoder {
				a.Multiplier = ref.TE
			}
		}
	}
	return detach, nil
}
