package nn

/*
#cgo LDFLAGS: -lopenblas -lm
#include <cblas.h>
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Sgemm computes C[m,n] = alpha*op(A)*op(B) + beta*C with row-major
// matrices, through OpenBLAS. op(X) is X or its transpose; lda, ldb and ldc
// are the row strides of the stored matrices. Slices too short for the
// shapes are a programming error and panic before any memory is touched.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	ar, ac := m, k
	ta := uint32(C.CblasNoTrans)
	if transA {
		ar, ac = k, m
		ta = C.CblasTrans
	}
	br, bc := k, n
	tb := uint32(C.CblasNoTrans)
	if transB {
		br, bc = n, k
		tb = C.CblasTrans
	}
	checkMatrix("C", c, m, n, ldc)
	if k <= 0 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
				continue
			}
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	checkMatrix("A", a, ar, ac, lda)
	checkMatrix("B", b, br, bc, ldb)
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

func checkMatrix(name string, x []float32, rows, cols, ld int) {
	if ld < max(cols, 1) || (rows > 0 && cols > 0 && len(x) < (rows-1)*ld+cols) {
		panic(fmt.Sprintf("nn.Sgemm: %s is %d values for %dx%d with stride %d", name, len(x), rows, cols, ld))
	}
}

// LinearForward computes y[rows,out] = x[rows,in] @ w[out,in]^T + b; b may
// be nil. Batched inputs [B, tokens, in] are passed with rows = B*tokens.
func LinearForward(y, x, w, b []float32, rows, in, out int) {
	beta := float32(0)
	if b != nil {
		for r := range rows {
			copy(y[r*out:(r+1)*out], b[:out])
		}
		beta = 1
	}
	Sgemm(false, true, rows, out, in, 1, x, in, w, in, beta, y, out)
}

// LinearBackward computes the gradients of LinearForward: dx = dy @ w,
// dw = dy^T @ x and db = the column sums of dy. Any of dx, dw, db may be nil
// when that gradient is not wanted (frozen weights cost nothing); the others
// are overwritten.
func LinearBackward(dx, dw, db, dy, x, w []float32, rows, in, out int) {
	if dx != nil {
		Sgemm(false, false, rows, in, out, 1, dy, out, w, in, 0, dx, in)
	}
	if dw != nil {
		Sgemm(true, false, out, in, rows, 1, dy, out, x, in, 0, dw, in)
	}
	if db != nil {
		columnSums(db[:out], dy[:rows*out], rows, out)
	}
}
