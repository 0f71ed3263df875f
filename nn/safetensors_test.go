package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tensors := map[string]*Tensor{
		"a.weight": New(3, 5),
		"b.bias":   New(7),
		"alpha":    FromData([]float32{4}), // 0-d, like a LoRA alpha
		"empty":    New(0, 4),
	}
	for _, x := range tensors {
		for i := range x.Data {
			x.Data[i] = float32(rng.NormFloat64())
		}
	}
	meta := map[string]string{"ss_network_dim": "4", "ss_tag_frequency": `{"a": {"cat": 2}}`}
	for _, dtype := range []string{"F32", "F16", "BF16"} {
		t.Run(dtype, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.safetensors")
			if err := WriteSafetensors(path, tensors, dtype, meta); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			n := binary.LittleEndian.Uint64(raw)
			if n%8 != 0 || !bytes.HasPrefix(raw[8:], []byte(`{"`)) {
				t.Errorf("header length %d, starts %q: want 8-byte aligned, starting {\"", n, raw[8:10])
			}
			f, err := OpenSafetensors(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := f.Metadata(); !mapsEqual(got, meta) {
				t.Errorf("metadata %v, want %v", got, meta)
			}
			names := f.Names()
			sort.Strings(names)
			if want := []string{"a.weight", "alpha", "b.bias", "empty"}; !slices.Equal(names, want) {
				t.Errorf("names %v, want %v", names, want)
			}
			for name, want := range tensors {
				dt, shape, ok := f.Info(name)
				if !ok || dt != dtype || !SameShape(shape, want.Shape) || shape == nil {
					t.Errorf("%s: info %s %v %v, want %s %v", name, dt, shape, ok, dtype, want.Shape)
				}
				got, err := f.Float32(name)
				if err != nil {
					t.Fatal(err)
				}
				if !SameShape(got.Shape, want.Shape) {
					t.Fatalf("%s: shape %v, want %v", name, got.Shape, want.Shape)
				}
				for i, w := range want.Data {
					var exp float32
					switch dtype {
					case "F32":
						exp = w
					case "F16":
						exp = f16ToF32(f32ToF16(w))
					case "BF16":
						exp = bf16ToF32(f32ToBF16(w))
					}
					if got.Data[i] != exp {
						t.Fatalf("%s[%d] = %v, want %v", name, i, got.Data[i], exp)
					}
				}
			}
		})
	}
}

// TestSafetensorsPythonFile reads a LoRA written by kohya's sd-scripts
// (Python safetensors) and writes it again: the header entries and the data
// bytes must come out identical (Python keeps the metadata's insertion order,
// we sort it, so the header is compared as JSON).
func TestSafetensorsPythonFile(t *testing.T) {
	const path = "testdata/lora_tiny_kohya.safetensors"
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Metadata(); !mapsEqual(got, map[string]string{"ss_network_dim": "4", "ss_network_alpha": "2.0"}) {
		t.Errorf("metadata %v", got)
	}
	names := f.Names()
	if len(names) != 72 {
		t.Fatalf("%d tensors, want 72", len(names))
	}
	tensors := map[string]*Tensor{}
	for _, name := range names {
		x, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".alpha") && (len(x.Shape) != 0 || x.Data[0] != 2) {
			t.Errorf("%s = %v %v, want a 0-d 2.0", name, x.Shape, x.Data)
		}
		tensors[name] = x
	}
	out := filepath.Join(t.TempDir(), "again.safetensors")
	if err := WriteSafetensors(out, tensors, "F32", f.Metadata()); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(path)
	again, _ := os.ReadFile(out)
	split := func(b []byte) (map[string]any, []byte) {
		n := binary.LittleEndian.Uint64(b)
		var h map[string]any
		if err := json.Unmarshal(b[8:8+n], &h); err != nil {
			t.Fatal(err)
		}
		return h, b[8+n:]
	}
	h1, d1 := split(orig)
	h2, d2 := split(again)
	if !reflect.DeepEqual(h1, h2) {
		t.Error("headers differ")
	}
	if !bytes.Equal(d1, d2) {
		t.Error("data sections differ")
	}
}

func TestSafetensorsMixedDTypes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lora.safetensors")
	tensors := map[string]*Tensor{"down": FromData([]float32{0.1, 0.2}, 1, 2), "alpha": FromData([]float32{0.1})}
	if err := WriteSafetensorsDTypes(path, tensors, map[string]string{"down": "F16", "alpha": "F32"}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if dt, _, _ := f.Info("down"); dt != "F16" {
		t.Errorf("down is %s, want F16", dt)
	}
	if dt, shape, _ := f.Info("alpha"); dt != "F32" || len(shape) != 0 {
		t.Errorf("alpha is %s %v, want F32 []", dt, shape)
	}
	a, err := f.Float32("alpha")
	if err != nil || a.Data[0] != 0.1 {
		t.Errorf("alpha = %v, %v; want 0.1", a, err)
	}
	if len(f.Metadata()) != 0 {
		t.Errorf("metadata %v, want empty", f.Metadata())
	}
}

func TestWriteSafetensorsErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		tensors map[string]*Tensor
		dtype   string
		want    string
	}{
		{"bad dtype", map[string]*Tensor{"x": New(2)}, "F64", "dtype"},
		{"nil tensor", map[string]*Tensor{"x": nil}, "F32", "nil"},
		{"size mismatch", map[string]*Tensor{"x": {Shape: []int{3}, Data: make([]float32, 2)}}, "F32", "2 values"},
		{"reserved name", map[string]*Tensor{"__metadata__": New(1)}, "F32", "name"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, "out.safetensors")
		err := WriteSafetensors(path, c.tensors, c.dtype, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming the file and %q", c.name, err, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left files: %v", entries)
	}
	err := WriteSafetensors(filepath.Join(dir, "missing", "x.safetensors"), map[string]*Tensor{"x": New(1)}, "F32", nil)
	if err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestWriteSafetensorsReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	for i := range 2 {
		if err := WriteSafetensors(path, map[string]*Tensor{"x": FromData([]float32{float32(i)}, 1)}, "F32", nil); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(entries))
	}
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	x, _ := f.Float32("x")
	if x.Data[0] != 1 {
		t.Errorf("x = %v after the second write, want 1", x.Data[0])
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
}

func TestSafetensorsInt64(t *testing.T) {
	header := `{"ids":{"dtype":"I64","shape":[2,2],"data_offsets":[0,32]},` +
		`"pos":{"dtype":"I32","shape":[3],"data_offsets":[32,44]},` +
		`"w":{"dtype":"F32","shape":[1],"data_offsets":[44,48]}}`
	var data []byte
	for _, v := range []int64{0, 1, -2, math.MaxInt64} {
		data = binary.LittleEndian.AppendUint64(data, uint64(v))
	}
	for _, v := range []int32{7, -8, math.MinInt32} {
		data = binary.LittleEndian.AppendUint32(data, uint32(v))
	}
	data = binary.LittleEndian.AppendUint32(data, math.Float32bits(1.5))
	f := openBytes(t, header, data)
	ids, shape, err := f.Int64("ids")
	if err != nil || !slices.Equal(ids, []int64{0, 1, -2, math.MaxInt64}) || !slices.Equal(shape, []int{2, 2}) {
		t.Errorf("ids = %v %v %v", ids, shape, err)
	}
	pos, shape, err := f.Int64("pos")
	if err != nil || !slices.Equal(pos, []int64{7, -8, math.MinInt32}) || !slices.Equal(shape, []int{3}) {
		t.Errorf("pos = %v %v %v", pos, shape, err)
	}
	if _, _, err := f.Int64("w"); err == nil || !strings.Contains(err.Error(), "F32") {
		t.Errorf("Int64 of an F32 tensor: %v", err)
	}
	if _, err := f.Float32("ids"); err == nil || !strings.Contains(err.Error(), "I64") {
		t.Errorf("Float32 of an I64 tensor: %v", err)
	}
	if _, err := f.Float32("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing tensor: %v", err)
	}
	f.Close()
	if _, err := f.Float32("w"); err == nil {
		t.Error("read after Close succeeded")
	}
}

// openBytes writes a safetensors file from a raw header and data section and
// opens it.
func openBytes(t *testing.T, header string, data []byte) *File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.safetensors")
	if err := os.WriteFile(path, rawSafetensors(header, data), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func rawSafetensors(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestOpenSafetensorsMalformed(t *testing.T) {
	good := rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8))
	cases := []struct {
		name string
		file []byte
		want string
		size int64 // when set, the file is extended (sparsely) to this size
	}{
		{"empty file", nil, "too short", 0},
		{"truncated length", []byte{1, 2, 3}, "too short", 0},
		{"header beyond file", good[:40], "exceeds", 0},
		{"length field only", binary.LittleEndian.AppendUint64(nil, 0), "too short for a JSON object", 0},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 200<<20), "limit", 8 + 200<<20},
		{"not JSON", rawSafetensors(`{"a":`, nil), "bad JSON", 0},
		{"not an object", rawSafetensors(`[1,2]`, nil), "does not start", 0},
		{"tensor not an object", rawSafetensors(`{"a":3}`, nil), "bad JSON", 0},
		{"unknown dtype", rawSafetensors(`{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)), "bad JSON", 0},
		{"negative shape", rawSafetensors(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)), "bad JSON", 0},
		{"non-string metadata", rawSafetensors(`{"__metadata__":{"k":1}}`, nil), "bad JSON", 0},
		{"truncated data", good[:len(good)-1], "out of bounds", 0},
		{"offsets out of bounds", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}}`, make([]byte, 8)), "out of bounds", 0},
		{"huge offsets", rawSafetensors(`{"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,18446744073709551615]}}`, nil), "out of bounds", 0},
		{"reversed offsets", rawSafetensors(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, make([]byte, 8)), "end before", 0},
		{"overlapping", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "overlap", 0},
		{"gap", rawSafetensors(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "gap", 0},
		{"wrong size", rawSafetensors(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), "want 12", 0},
		{"shape overflow", rawSafetensors(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}`, make([]byte, 8)), "does not fit", 0},
		{"trailing bytes", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 12)), "after the last tensor", 0},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
			if err := os.WriteFile(path, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			if c.size > 0 {
				if err := os.Truncate(path, c.size); err != nil {
					t.Fatal(err)
				}
			}
			f, err := OpenSafetensors(path)
			if err == nil {
				f.Close()
				t.Fatal("opened a malformed file")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want one naming the file and %q", err, c.want)
			}
		})
	}
	if _, err := OpenSafetensors(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := OpenSafetensors(dir); err == nil || !strings.Contains(err.Error(), "regular") {
		t.Errorf("directory: %v", err)
	}
}

// TestF16ToF32Exhaustive checks every half-precision bit pattern against a
// float64 evaluation of the IEEE 754 binary16 definition.
func TestF16ToF32Exhaustive(t *testing.T) {
	for h := range 1 << 16 {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		exp, man := (h>>10)&0x1f, h&0x3ff
		got := f16ToF32(uint16(h))
		if exp == 0x1f && man != 0 {
			if !math.IsNaN(float64(got)) || math.Float32bits(got)>>13&0x3ff != uint32(man) || math.Signbit(float64(got)) != (sign < 0) {
				t.Fatalf("%#04x: got %#08x, want NaN with payload %#x", h, math.Float32bits(got), man)
			}
			continue
		}
		var want float64
		switch exp {
		case 0x1f:
			want = math.Inf(1)
		case 0:
			want = float64(man) * math.Pow(2, -24)
		default:
			want = (1 + float64(man)/1024) * math.Pow(2, float64(exp-15))
		}
		want *= sign
		if math.Float32bits(got) != math.Float32bits(float32(want)) {
			t.Fatalf("%#04x: got %v (%#08x), want %v", h, got, math.Float32bits(got), want)
		}
	}
}

func TestBF16ToF32Exhaustive(t *testing.T) {
	for h := range 1 << 16 {
		got := bf16ToF32(uint16(h))
		if math.Float32bits(got) != uint32(h)<<16 {
			t.Fatalf("%#04x: got %#08x", h, math.Float32bits(got))
		}
		if back := f32ToBF16(got); back != uint16(h) && !math.IsNaN(float64(got)) {
			t.Fatalf("%#04x: round trip gives %#04x", h, back)
		}
	}
}

// nearestHalf returns the element of the sorted finite candidates nearest to x,
// ties to the one whose code is even; beyond max+half an ulp it is inf.
func nearestHalf(x float64, values []float64, codes []uint16) uint16 {
	ax := math.Abs(x)
	sign := uint16(0)
	if math.Signbit(x) {
		sign = 0x8000
	}
	// 65520 = 65504 + half an ulp (16): ties there go to the even code, infinity.
	if ax >= 65520 {
		return sign | 0x7c00
	}
	i := sort.SearchFloat64s(values, ax)
	if i == len(values) {
		return sign | codes[i-1]
	}
	if values[i] == ax {
		return sign | codes[i]
	}
	lo, hi := i-1, i
	dl, dh := ax-values[lo], values[hi]-ax
	switch {
	case dl < dh:
		return sign | codes[lo]
	case dh < dl:
		return sign | codes[hi]
	case codes[lo]&1 == 0:
		return sign | codes[lo]
	}
	return sign | codes[hi]
}

func TestF32ToF16Rounding(t *testing.T) {
	var values []float64
	var codes []uint16
	for h := range uint16(0x7c00) {
		values = append(values, float64(f16ToF32(h)))
		codes = append(codes, h)
	}
	check := func(x float32) {
		got := f32ToF16(x)
		want := nearestHalf(float64(x), values, codes)
		if got != want {
			t.Fatalf("f32ToF16(%g = %#08x) = %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
	}
	// Every half value, each midpoint between neighbours (the ties), and the
	// float32 values just either side of each midpoint.
	for i := range values {
		check(float32(values[i]))
		check(-float32(values[i]))
		if i+1 < len(values) {
			mid := float32((values[i] + values[i+1]) / 2)
			check(mid)
			check(math.Nextafter32(mid, 0))
			check(math.Nextafter32(mid, 1e9))
		}
	}
	for _, x := range []float32{65504, 65519.99, 65520, 65536, 1e10, float32(math.Inf(1)), float32(math.Inf(-1)), 1e-8, 2.9802322e-08, 2.9802326e-08, 5.9604645e-08, math.SmallestNonzeroFloat32} {
		check(x)
		check(-x)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1 << 20 {
		x := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(x)) {
			if h := f32ToF16(x); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
				t.Fatalf("NaN %#08x became %#04x", math.Float32bits(x), h)
			}
			continue
		}
		check(x)
	}
}

func TestF32ToBF16Rounding(t *testing.T) {
	check := func(x float32) {
		b := math.Float32bits(x)
		got := f32ToBF16(x)
		if math.IsNaN(float64(x)) {
			if !math.IsNaN(float64(bf16ToF32(got))) {
				t.Fatalf("NaN %#08x became %#04x", b, got)
			}
			return
		}
		// Candidates: truncation and the next bfloat16 away from zero.
		lo := b &^ 0xffff
		want := uint16(lo >> 16)
		dl := math.Abs(float64(x) - float64(math.Float32frombits(lo)))
		if lo&0x7fffffff != 0x7f800000 {
			hi := math.Float32frombits(lo + 0x10000)
			dh := math.Abs(float64(hi) - float64(x))
			if math.IsInf(float64(hi), 0) {
				// Overflow threshold: half an ulp past the largest finite bfloat16.
				dh = math.Abs(math.Ldexp(1, 128) - math.Abs(float64(x)))
			}
			if dh < dl || dh == dl && want&1 == 1 {
				want++
			}
		}
		if got != want {
			t.Fatalf("f32ToBF16(%g = %#08x) = %#04x, want %#04x", x, b, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1 << 20 {
		check(math.Float32frombits(rng.Uint32()))
	}
	for _, b := range []uint32{0x3f808000, 0x3f818000, 0x3f807fff, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0x00008000, 0x80018000} {
		check(math.Float32frombits(b))
	}
}

func TestConvertParallelMatchesSerial(t *testing.T) {
	n := 1<<18 + 3
	src := make([]byte, 2*n)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	par, ser := make([]float32, n), make([]float32, n)
	convertParallel(par, src, f16ToF32Slice)
	f16ToF32Slice(ser, src)
	for i := range par {
		if math.Float32bits(par[i]) != math.Float32bits(ser[i]) {
			t.Fatalf("element %d: %v != %v", i, par[i], ser[i])
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// FuzzParseSafetensors feeds arbitrary bytes to the header parser and reads
// every tensor of whatever it accepts: neither may panic, and an accepted
// file's tensors must lie inside it.
func FuzzParseSafetensors(f *testing.F) {
	f.Add(rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(rawSafetensors(`{"__metadata__":{"k":"v"},"a":{"dtype":"F16","shape":[1,1],"data_offsets":[0,2]},"b":{"dtype":"I64","shape":[],"data_offsets":[2,10]}}`, make([]byte, 10)))
	f.Add(rawSafetensors(`{"a":{"dtype":"BF16","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := parseSafetensors("fuzz", b)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, name := range file.Names() {
			dtype, shape, _ := file.Info(name)
			switch dtype {
			case "F32", "F16", "BF16":
				x, err := file.Float32(name)
				if err != nil || !SameShape(x.Shape, shape) || len(x.Data) != Numel(shape) {
					t.Fatalf("%s: %v %v", name, x, err)
				}
			case "I64", "I32":
				x, s, err := file.Int64(name)
				if err != nil || len(x) != Numel(s) {
					t.Fatalf("%s: %v %v", name, s, err)
				}
			}
		}
	})
}

// BenchmarkSafetensorsFloat32 measures reading a 16M-element tensor (the size
// of SD's largest weights times four) from a memory-mapped file.
func BenchmarkSafetensorsFloat32(b *testing.B) {
	for _, dtype := range []string{"F32", "F16", "BF16"} {
		b.Run(dtype, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "w.safetensors")
			x := New(4096, 4096)
			for i := range x.Data {
				x.Data[i] = float32(i%1000) / 7
			}
			if err := WriteSafetensors(path, map[string]*Tensor{"w": x}, dtype, nil); err != nil {
				b.Fatal(err)
			}
			f, err := OpenSafetensors(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(int64(4 * len(x.Data)))
			for b.Loop() {
				if _, err := f.Float32("w"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
