package nn

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "sync"

// serialBLAS tracks the attention calls in flight. Attention runs its own
// worker per core, each calling sgemm on its own tile; OpenBLAS's threads
// would fight those workers for the cores (measured: 10x slower when the
// machine is busy), and OpenBLAS 0.3.21 has only a process-wide thread
// count, so it is set to 1 while any attention call runs and restored after
// the last one.
var serialBLAS struct {
	sync.Mutex
	users, saved int
}

func beginSerialBLAS() {
	serialBLAS.Lock()
	defer serialBLAS.Unlock()
	if serialBLAS.users == 0 {
		serialBLAS.saved = int(C.openblas_get_num_threads())
		if serialBLAS.saved > 1 {
			C.openblas_set_num_threads(1)
		}
	}
	serialBLAS.users++
}

func endSerialBLAS() {
	serialBLAS.Lock()
	defer serialBLAS.Unlock()
	serialBLAS.users--
	if serialBLAS.users == 0 && serialBLAS.saved > 1 {
		C.openblas_set_num_threads(C.int(serialBLAS.saved))
	}
}
