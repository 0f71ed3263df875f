package nn

// Workspace is reusable scratch memory for kernels that need temporary
// buffers (im2col columns, attention tiles). The caller owns one per
// goroutine and passes it to every call, so steady-state training allocates
// nothing. The zero value is ready to use; a Workspace must not be shared by
// concurrent calls.
type Workspace struct {
	buf []float32
}

// Floats returns a slice of length n whose contents are undefined. It reuses
// the previous buffer when it is large enough, so a later call invalidates
// the slice returned by an earlier one.
func (w *Workspace) Floats(n int) []float32 {
	if cap(w.buf) < n {
		w.buf = make([]float32, n)
	}
	return w.buf[:n]
}
