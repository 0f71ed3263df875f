package nn

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"syscall"
	"unsafe"

	"github.com/nlpodyssey/safetensors"
)

// maxHeaderBytes bounds the JSON header. The largest real checkpoints have
// headers of a few hundred kilobytes; the bound keeps a corrupt length field
// from making us allocate gigabytes.
const maxHeaderBytes = 100 << 20

// File is an open safetensors file. The file is memory-mapped read-only, so
// opening a multi-gigabyte checkpoint costs only its header; tensor bytes are
// paged in when a tensor is read. All methods may be called concurrently
// except Close.
type File struct {
	path     string
	mapped   []byte // the whole file when memory-mapped; nil for in-memory files
	data     []byte // the byte buffer that follows the header
	entries  map[string]entry
	names    []string // in data-offset order
	metadata map[string]string
	closed   bool
}

type entry struct {
	dtype      safetensors.DType
	shape      []int
	begin, end uint64 // byte range inside data
}

// OpenSafetensors memory-maps path and validates its header. A malformed file
// is an error naming path and the problem.
func OpenSafetensors(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("safetensors %s: not a regular file", path)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors %s: file is %d bytes, too short for the 8-byte header length", path, size)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("safetensors %s: file of %d bytes does not fit in the address space", path, size)
	}
	mem, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: mmap: %w", path, err)
	}
	f, err := parseSafetensors(path, mem)
	if err != nil {
		_ = syscall.Munmap(mem)
		return nil, err
	}
	f.mapped = mem
	return f, nil
}

// parseSafetensors validates a whole safetensors file held in buf and returns
// a File reading from buf. It is the single entry point for untrusted bytes.
func parseSafetensors(path string, buf []byte) (*File, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("safetensors %s: "+format, append([]any{path}, args...)...)
	}
	if len(buf) < 8 {
		return nil, bad("file is %d bytes, too short for the 8-byte header length", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	rest := uint64(len(buf) - 8)
	switch {
	case n > rest:
		return nil, bad("header length %d exceeds the %d bytes after the length field (truncated or not a safetensors file)", n, rest)
	case n > maxHeaderBytes:
		return nil, bad("header length %d exceeds the %d-byte limit", n, maxHeaderBytes)
	case n < 2:
		return nil, bad("header length %d is too short for a JSON object", n)
	}
	header := buf[8 : 8+n]
	if header[0] != '{' {
		return nil, bad("header does not start with '{' (not a safetensors file)")
	}
	var meta safetensors.Metadata
	if err := json.Unmarshal(header, &meta); err != nil {
		return nil, bad("bad JSON header: %v", err)
	}
	data := buf[8+n:]
	f := &File{path: path, data: data, entries: map[string]entry{}, metadata: meta.Metadata()}
	if f.metadata == nil {
		f.metadata = map[string]string{}
	}

	type named struct {
		name string
		info *safetensors.TensorInfo
	}
	infos := make([]named, 0, len(meta.Tensors()))
	for name, info := range meta.Tensors() {
		infos = append(infos, named{name, info})
	}
	sort.Slice(infos, func(i, j int) bool {
		a, b := infos[i].info.DataOffsets, infos[j].info.DataOffsets
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		if a[1] != b[1] {
			return a[1] < b[1]
		}
		return infos[i].name < infos[j].name
	})

	var end uint64
	prev := ""
	for _, t := range infos {
		begin, stop := t.info.DataOffsets[0], t.info.DataOffsets[1]
		switch {
		case stop < begin:
			return nil, bad("tensor %q: data_offsets [%d, %d] end before they begin", t.name, begin, stop)
		case stop > uint64(len(data)):
			return nil, bad("tensor %q: data_offsets [%d, %d] out of bounds (data section is %d bytes; truncated file?)", t.name, begin, stop, len(data))
		case begin < end:
			return nil, bad("tensor %q: data_offsets [%d, %d] overlap tensor %q ending at %d", t.name, begin, stop, prev, end)
		case begin > end:
			return nil, bad("tensor %q: data_offsets [%d, %d] leave a gap after byte %d", t.name, begin, stop, end)
		}
		// Each dimension and the element count are bounded by the byte range,
		// which is in bounds, so the products below cannot overflow.
		shape := make([]int, len(t.info.Shape))
		elems := uint64(1)
		zero := false
		for i, d := range t.info.Shape {
			if d == 0 {
				zero = true
			}
			if !zero && d > stop-begin {
				return nil, bad("tensor %q: shape %v does not fit its %d bytes", t.name, t.info.Shape, stop-begin)
			}
			shape[i] = int(d)
			if !zero {
				elems *= d
			}
			if !zero && elems > stop-begin {
				return nil, bad("tensor %q: shape %v does not fit its %d bytes", t.name, t.info.Shape, stop-begin)
			}
		}
		if zero {
			elems = 0
		}
		if want := elems * t.info.DType.Size(); stop-begin != want {
			return nil, bad("tensor %q: %d bytes for %s %v, want %d", t.name, stop-begin, t.info.DType, t.info.Shape, want)
		}
		f.entries[t.name] = entry{dtype: t.info.DType, shape: shape, begin: begin, end: stop}
		f.names = append(f.names, t.name)
		end, prev = stop, t.name
	}
	if end != uint64(len(data)) {
		return nil, bad("%d bytes after the last tensor (data section is %d bytes)", uint64(len(data))-end, len(data))
	}
	return f, nil
}

// Close unmaps the file. Tensors returned earlier stay valid: they are copies.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.data = nil
	if f.mapped == nil {
		return nil
	}
	err := syscall.Munmap(f.mapped)
	f.mapped = nil
	if err != nil {
		return fmt.Errorf("safetensors %s: munmap: %w", f.path, err)
	}
	return nil
}

// Path is the file name given to OpenSafetensors.
func (f *File) Path() string { return f.path }

// Names lists the tensors in the order of their bytes in the file, so reading
// them in this order walks the file sequentially.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info reports a tensor's dtype ("F16", "F32", ...) and shape.
func (f *File) Info(name string) (dtype string, shape []int, ok bool) {
	e, ok := f.entries[name]
	if !ok {
		return "", nil, false
	}
	return e.dtype.String(), slices.Clone(e.shape), true
}

// Metadata returns the file's __metadata__ map (empty when absent). The map is
// a copy.
func (f *File) Metadata() map[string]string {
	m := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		m[k] = v
	}
	return m
}

// bytes returns a tensor's entry and raw little-endian bytes.
func (f *File) bytes(name string) (entry, []byte, error) {
	if f.closed {
		return entry{}, nil, fmt.Errorf("safetensors %s: read %q after Close", f.path, name)
	}
	e, ok := f.entries[name]
	if !ok {
		return entry{}, nil, fmt.Errorf("safetensors %s: no tensor %q", f.path, name)
	}
	return e, f.data[e.begin:e.end], nil
}

// Float32 reads a floating-point tensor (F32, F16 or BF16) into a new float32
// tensor. The conversion is exact.
func (f *File) Float32(name string) (*Tensor, error) {
	e, raw, err := f.bytes(name)
	if err != nil {
		return nil, err
	}
	t := New(e.shape...)
	switch e.dtype {
	case safetensors.F32:
		if littleEndian() {
			copy(float32Bytes(t.Data), raw)
		} else {
			convertParallel(t.Data, raw, f32LEToF32Slice)
		}
	case safetensors.F16:
		convertParallel(t.Data, raw, f16ToF32Slice)
	case safetensors.BF16:
		convertParallel(t.Data, raw, bf16ToF32Slice)
	default:
		return nil, fmt.Errorf("safetensors %s: tensor %q is %s, want F32, F16 or BF16", f.path, name, e.dtype)
	}
	f.release(raw)
	return t, nil
}

// release tells the kernel that this process is done with the mapped pages
// holding raw, so that a checkpoint converted tensor by tensor does not stay
// resident beside its float32 copy. The pages are read again from the page
// cache or the file if the tensor is read a second time.
func (f *File) release(raw []byte) {
	if len(raw) == 0 || len(f.mapped) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	base := uintptr(unsafe.Pointer(&f.mapped[0]))
	start := uintptr(unsafe.Pointer(&raw[0]))
	end := start + uintptr(len(raw))
	start = (start + page - 1) &^ (page - 1) // whole pages only: neighbours may share the edge pages
	end &^= page - 1
	if end <= start {
		return
	}
	_ = syscall.Madvise(f.mapped[start-base:end-base], syscall.MADV_DONTNEED)
}

// Int64 reads an integer tensor (I64 or I32) and its shape.
func (f *File) Int64(name string) ([]int64, []int, error) {
	e, raw, err := f.bytes(name)
	if err != nil {
		return nil, nil, err
	}
	switch e.dtype {
	case safetensors.I64:
		out := make([]int64, len(raw)/8)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return out, slices.Clone(e.shape), nil
	case safetensors.I32:
		out := make([]int64, len(raw)/4)
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		return out, slices.Clone(e.shape), nil
	}
	return nil, nil, fmt.Errorf("safetensors %s: tensor %q is %s, want I64 or I32", f.path, name, e.dtype)
}

// float32Bytes views a float32 slice as its bytes in machine order.
func float32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// littleEndian reports whether float32Bytes yields safetensors' byte order.
func littleEndian() bool { return binary.NativeEndian.Uint16([]byte{1, 0}) == 1 }

// f16ToF32 converts IEEE half-precision bits to float32 exactly (every half
// value, subnormals included, is representable in float32).
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // inf and NaN, payload kept
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
	default: // zero and subnormals: man * 2^-24, exact in float32
		return math.Float32frombits(sign | math.Float32bits(float32(man)*(1.0/(1<<24))))
	}
}

// f32ToF16 rounds to the nearest half value, ties to even; out-of-range
// values become infinities and NaNs stay NaN.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7c00 | 0x200 | uint16(man>>13)
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// The result is a half subnormal (or zero): count units of 2^-24.
		shift := uint(14 - e)
		if shift > 24 {
			return sign
		}
		m := man | 0x800000
		q := m >> shift
		rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || rem == half && q&1 == 1 {
			q++
		}
		return sign | uint16(q)
	}
	h := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // may carry into the exponent, up to infinity: both are correct
	}
	return sign | uint16(h)
}

// f32ToBF16 rounds to the nearest bfloat16, ties to even; NaNs stay NaN.
func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func f16ToF32Slice(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = f16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func f32LEToF32Slice(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func bf16ToF32Slice(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = bf16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// convertParallel runs conv over chunks of dst on all cores: converting a
// 2 GB half-precision checkpoint is otherwise seconds of one core's time.
func convertParallel(dst []float32, src []byte, conv func(dst []float32, src []byte)) {
	const minChunk = 1 << 16
	workers := min(runtime.GOMAXPROCS(0), (len(dst)+minChunk-1)/minChunk)
	if workers <= 1 {
		conv(dst, src)
		return
	}
	elemBytes := len(src) / len(dst)
	chunk := (len(dst) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(dst); lo += chunk {
		hi := min(lo+chunk, len(dst))
		wg.Go(func() { conv(dst[lo:hi], src[lo*elemBytes:hi*elemBytes]) })
	}
	wg.Wait()
}
