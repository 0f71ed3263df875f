package trainer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"lorastudio/sd"
)

// samplePrompt is one prompt of a sample prompts file, with what sd-scripts'
// sample_image_inference reads of it: the prompt, the negative prompt, the
// size, steps, CFG scale, seed and sampler.
type samplePrompt struct {
	Prompt, Negative string
	Width, Height    int
	Steps            int
	Scale            float64
	Seed             int64
	HasSeed          bool
	Sampler          string
}

// sd-scripts' defaults for what a prompt does not set.
const (
	sampleSize  = 512
	sampleSteps = 30
	sampleScale = 7.5
)

// sd-scripts' line_to_prompt_dict keeps steps in this range; the TOML and
// JSON readers apply it too, so a prompt means the same in any of the three
// formats and a typo cannot start a million-step sample.
const (
	minSampleSteps = 1
	maxSampleSteps = 1000
)

func defaultSamplePrompt() samplePrompt {
	return samplePrompt{Width: sampleSize, Height: sampleSize, Steps: sampleSteps, Scale: sampleScale}
}

// promptFlags are the flags of a text prompt line that sd-scripts'
// line_to_prompt_dict reads: --w and --h (size), --d (seed), --s (steps),
// --l (CFG scale), --n (negative prompt) and --ss (sampler).
var promptFlags = []struct {
	re  *regexp.Regexp
	set func(p *samplePrompt, v string) error
}{
	{regexp.MustCompile(`(?i)^w (\d+)`), func(p *samplePrompt, v string) (err error) { p.Width, err = strconv.Atoi(v); return }},
	{regexp.MustCompile(`(?i)^h (\d+)`), func(p *samplePrompt, v string) (err error) { p.Height, err = strconv.Atoi(v); return }},
	{regexp.MustCompile(`(?i)^d (\d+)`), func(p *samplePrompt, v string) (err error) {
		p.Seed, err = strconv.ParseInt(v, 10, 64)
		p.HasSeed = err == nil
		return
	}},
	{regexp.MustCompile(`(?i)^s (\d+)`), func(p *samplePrompt, v string) error {
		n, err := strconv.Atoi(v)
		p.Steps = max(minSampleSteps, min(maxSampleSteps, n))
		return err
	}},
	{regexp.MustCompile(`(?i)^l ([\d.]+)`), func(p *samplePrompt, v string) (err error) { p.Scale, err = strconv.ParseFloat(v, 64); return }},
	{regexp.MustCompile(`(?i)^n (.+)`), func(p *samplePrompt, v string) error { p.Negative = v; return nil }},
	{regexp.MustCompile(`(?i)^ss (.+)`), func(p *samplePrompt, v string) error {
		s, err := ParseSampler(v)
		p.Sampler = s
		return err
	}},
}

// parsePromptLine reads one prompt line: the prompt, then flags. Flags it
// does not know are ignored, as in sd-scripts, whose prompt lines share
// their format with gen_img_diffusers' many more flags.
func parsePromptLine(line string) (samplePrompt, error) {
	parts := strings.Split(line, " --")
	p := defaultSamplePrompt()
	p.Prompt = strings.TrimSpace(parts[0])
	for _, arg := range parts[1:] {
		for _, f := range promptFlags {
			if m := f.re.FindStringSubmatch(arg); m != nil {
				if err := f.set(&p, strings.TrimSpace(m[1])); err != nil {
					return p, fmt.Errorf("--%s: %w", strings.TrimSpace(arg), err)
				}
				break
			}
		}
	}
	return p, nil
}

// readSamplePrompts reads a prompts file by its extension, as sd-scripts
// does: .toml and .json hold prompt tables, anything else is text.
func readSamplePrompts(path string) ([]samplePrompt, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out, err := parseSamplePrompts(filepath.Ext(path), data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// parseSamplePrompts reads a prompts file's content; ext picks the format.
func parseSamplePrompts(ext string, data []byte) ([]samplePrompt, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8 text")
	}
	var out []samplePrompt
	var err error
	switch strings.ToLower(ext) {
	case ".toml":
		out, err = parseTOMLPrompts(data)
	case ".json":
		out, err = parseJSONPrompts(data)
	default:
		out, err = parseTextPrompts(data)
	}
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("holds no prompts")
	}
	for _, p := range out {
		if p.Width > sd.MaxImageSize || p.Height > sd.MaxImageSize {
			return nil, fmt.Errorf("prompt %q: size %dx%d is over %d px a side", p.Prompt, p.Width, p.Height, sd.MaxImageSize)
		}
	}
	return out, nil
}

// parseTextPrompts reads one prompt per line; blank lines and lines
// starting with # are skipped.
func parseTextPrompts(data []byte) ([]samplePrompt, error) {
	var out []samplePrompt
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, err := parsePromptLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, p)
	}
	return out, sc.Err()
}

// parseTOMLPrompts reads sd-scripts' TOML layout: a [prompt] table whose
// keys every prompt shares, and one [[prompt.subset]] table per prompt.
// sd-scripts builds each prompt with dict(**prompt, **subset), which fails
// when both set a key, so a subset cannot override a shared key here either.
func parseTOMLPrompts(data []byte) ([]samplePrompt, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(raw) {
		if k != "prompt" {
			return nil, fmt.Errorf("unknown key %q: a prompts TOML holds a [prompt] table with [[prompt.subset]] tables", k)
		}
	}
	shared, ok := raw["prompt"].(map[string]any)
	if !ok {
		if raw["prompt"] == nil {
			return nil, errors.New("no [prompt] table")
		}
		return nil, fmt.Errorf("prompt is %s, want a [prompt] table", describeValue(raw["prompt"]))
	}
	subsets, err := tomlSubsets(shared["subset"])
	if err != nil {
		return nil, err
	}
	var out []samplePrompt
	for i, sub := range subsets {
		d := make(map[string]any, len(shared)+len(sub))
		for k, v := range shared {
			if k != "subset" {
				d[k] = v
			}
		}
		for _, k := range sortedKeys(sub) {
			if _, both := shared[k]; both {
				return nil, fmt.Errorf("prompt.subset %d: %s is also set in [prompt]; set it in one place", i+1, k)
			}
			d[k] = sub[k]
		}
		p, err := promptFromTable(d)
		if err != nil {
			return nil, fmt.Errorf("prompt.subset %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// tomlSubsets returns [prompt]'s subset tables, written as [[prompt.subset]]
// or as an inline array of tables.
func tomlSubsets(v any) ([]map[string]any, error) {
	switch v := v.(type) {
	case nil:
		return nil, errors.New("no [[prompt.subset]] tables: each prompt is one")
	case []map[string]any:
		return v, nil
	case []any:
		out := make([]map[string]any, len(v))
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("prompt.subset %d is %s, want a table", i+1, describeValue(e))
			}
			out[i] = m
		}
		return out, nil
	}
	return nil, fmt.Errorf("prompt.subset is %s, want [[prompt.subset]] tables", describeValue(v))
}

// parseJSONPrompts reads sd-scripts' JSON layout: a list whose entries are
// prompt objects or text prompt lines.
func parseJSONPrompts(data []byte) ([]samplePrompt, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var list any
	err := dec.Decode(&list)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("more data after the list")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("line %d: %w", jsonErrorLine(data, dec, err), err)
	}
	entries, ok := list.([]any)
	if !ok {
		return nil, fmt.Errorf("the file is %s, want a list of prompts", describeValue(list))
	}
	var out []samplePrompt
	for i, e := range entries {
		var p samplePrompt
		var err error
		switch e := e.(type) {
		case string:
			// sd-scripts passes a string entry to line_to_prompt_dict as
			// it is: no comment or blank-line skipping.
			p, err = parsePromptLine(e)
		case map[string]any:
			p, err = promptFromTable(e)
		default:
			err = fmt.Errorf("%s, want an object or a prompt line", describeValue(e))
		}
		if err != nil {
			return nil, fmt.Errorf("prompt %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// jsonErrorLine is the line of data where decoding stopped with err.
func jsonErrorLine(data []byte, dec *json.Decoder, err error) int {
	off := dec.InputOffset()
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		off = syn.Offset
	}
	return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n"))
}

// promptTableKeys are the keys of a prompt table sd-scripts reads.
var promptTableKeys = []string{"prompt", "negative_prompt", "width", "height", "sample_steps", "scale", "seed", "sample_sampler", "controlnet_image"}

// promptFromTable reads a prompt table (a TOML [prompt] merged with one
// subset, or a JSON object) with sd-scripts' defaults. sd-scripts ignores
// keys it does not read, but here they are errors: unlike the flags of a
// text line, which gen_img_diffusers shares, a table key sd-scripts does not
// know is a misspelling (steps, cfg_scale, negative), and ignoring it would
// make hours of samples that are not the ones asked for.
func promptFromTable(d map[string]any) (samplePrompt, error) {
	p := defaultSamplePrompt()
	for _, k := range sortedKeys(d) {
		v := d[k]
		var err error
		switch k {
		case "prompt":
			p.Prompt, err = tableString(v)
		case "negative_prompt":
			// null is sd-scripts' "no negative prompt", as for seed below.
			if v != nil {
				p.Negative, err = tableString(v)
			}
		case "width":
			p.Width, err = tableSize(v)
		case "height":
			p.Height, err = tableSize(v)
		case "sample_steps":
			var n int64
			n, err = tableInt(v)
			p.Steps = int(max(minSampleSteps, min(maxSampleSteps, n)))
		case "scale":
			p.Scale, err = tableScale(v)
		case "seed":
			if v != nil {
				p.Seed, err = tableInt(v)
				p.HasSeed = err == nil
			}
		case "sample_sampler":
			var s string
			if s, err = tableString(v); err == nil {
				if strings.TrimSpace(s) == "" {
					err = fmt.Errorf("empty, want one of %s", strings.Join(Samplers, ", "))
				} else {
					p.Sampler, err = ParseSampler(s)
				}
			}
		case "controlnet_image":
			if v != nil {
				err = errors.New("ControlNet samples are not supported")
			}
		case "enum":
			// sd-scripts overwrites it with the prompt's index.
		default:
			return p, fmt.Errorf("unknown key %q (sd-scripts reads %s)", k, strings.Join(promptTableKeys, ", "))
		}
		if err != nil {
			return p, fmt.Errorf("%s: %w", k, err)
		}
	}
	return p, nil
}

func tableString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s, want a string", describeValue(v))
	}
	return strings.TrimSpace(s), nil
}

// tableInt accepts TOML integers and JSON numbers written as integers:
// sd-scripts fails later on 512.0 as a size or a step count.
func tableInt(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case json.Number:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s, want an integer", v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s, want an integer", describeValue(v))
}

func tableSize(v any) (int, error) {
	n, err := tableInt(v)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%d, want a size in pixels", n)
	}
	return int(n), nil
}

func tableScale(v any) (float64, error) {
	var f float64
	switch v := v.(type) {
	case int64:
		f = float64(v)
	case float64:
		f = v
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(v), 64); err != nil {
			return 0, fmt.Errorf("%s, want a number", v)
		}
	default:
		return 0, fmt.Errorf("%s, want a number", describeValue(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("%v, want a CFG scale of 0 or more", f)
	}
	return f, nil
}

// SamplePromptsText returns a sample prompts file in the text format, for
// a form that edits prompts as text: a text file as it is, a TOML or JSON
// file as one line per prompt with kohya's flags, which the text reader
// reads back to the same prompts.
func SamplePromptsText(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".toml" && ext != ".json" {
		return string(data), nil
	}
	prompts, err := parseSamplePrompts(filepath.Ext(path), data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	var b strings.Builder
	for i, p := range prompts {
		line, err := formatPromptLine(p)
		if err != nil {
			return "", fmt.Errorf("%s: prompt %d: %w", path, i+1, err)
		}
		b.WriteString(line + "\n")
	}
	return b.String(), nil
}

// formatPromptLine writes p as a text prompt line, or says why a line
// cannot hold it.
func formatPromptLine(p samplePrompt) (string, error) {
	for _, s := range []struct{ what, text string }{{"the prompt", p.Prompt}, {"the negative prompt", p.Negative}} {
		if strings.Contains(s.text, " --") || strings.ContainsAny(s.text, "\r\n") || s.text != strings.TrimSpace(s.text) {
			return "", fmt.Errorf("%s %q does not fit on a text prompt line (it holds \" --\" or a line break)", s.what, s.text)
		}
	}
	if p.Prompt == "" || strings.HasPrefix(p.Prompt, "#") {
		return "", fmt.Errorf("the prompt %q would be a blank or comment line in a text prompts file", p.Prompt)
	}
	if p.HasSeed && p.Seed < 0 {
		return "", fmt.Errorf("seed %d: a text prompt line holds seeds of 0 or more", p.Seed)
	}
	var b strings.Builder
	b.WriteString(p.Prompt)
	if p.Negative != "" {
		b.WriteString(" --n " + p.Negative)
	}
	fmt.Fprintf(&b, " --w %d --h %d --s %d --l %s", p.Width, p.Height, p.Steps, strconv.FormatFloat(p.Scale, 'f', -1, 64))
	if p.HasSeed {
		fmt.Fprintf(&b, " --d %d", p.Seed)
	}
	if p.Sampler != "" {
		b.WriteString(" --ss " + p.Sampler)
	}
	return b.String(), nil
}

// describeValue names a decoded TOML or JSON value in an error.
func describeValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(v)
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprint(v)
}
