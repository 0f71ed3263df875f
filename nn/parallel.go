package nn

import (
	"runtime"
	"sync"
)

// kargs carries a kernel's operands to the worker goroutines by value: a
// closure would escape to the heap and cost an allocation per call.
type kargs struct {
	s [10][]float32
	i [12]int
	f [2]float32
	b bool
}

// kfunc processes the index range [lo, hi) of a parallel kernel.
type kfunc func(a *kargs, lo, hi int)

type kjob struct {
	fn     kfunc
	a      kargs
	lo, hi int
}

// kpool is a fixed set of worker goroutines, one per core; the calling
// goroutine takes the first chunk itself. Jobs live in the pool so that
// handing them out allocates nothing.
type kpool struct {
	mu    sync.Mutex
	jobs  []kjob
	start []chan struct{}
	done  chan struct{}
}

var kernelPool = sync.OnceValue(func() *kpool {
	n := runtime.GOMAXPROCS(0)
	p := &kpool{jobs: make([]kjob, n), start: make([]chan struct{}, n), done: make(chan struct{}, n)}
	for i := 1; i < n; i++ {
		p.start[i] = make(chan struct{}, 1)
		go p.work(i)
	}
	return p
})

func (p *kpool) work(i int) {
	for range p.start[i] {
		j := &p.jobs[i]
		j.fn(&j.a, j.lo, j.hi)
		p.done <- struct{}{}
	}
}

// parallelFor runs fn over [0, n) in contiguous chunks of at least grain
// indices, one chunk per core. A call made while the pool is busy (a nested
// or concurrent kernel) runs on the calling goroutine alone.
func parallelFor(n, grain int, fn kfunc, a kargs) {
	if n <= 0 {
		return
	}
	p := kernelPool()
	if !p.mu.TryLock() {
		local := new(kargs)
		*local = a
		fn(local, 0, n)
		return
	}
	defer p.mu.Unlock()
	parts := len(p.jobs)
	if grain < 1 {
		grain = 1
	}
	if m := n / grain; m < parts {
		parts = max(m, 1)
	}
	for i := range parts {
		p.jobs[i] = kjob{fn: fn, a: a, lo: n * i / parts, hi: n * (i + 1) / parts}
	}
	for i := 1; i < parts; i++ {
		p.start[i] <- struct{}{}
	}
	j := &p.jobs[0]
	j.fn(&j.a, j.lo, j.hi)
	for i := 1; i < parts; i++ {
		<-p.done
	}
	for i := range parts {
		p.jobs[i].a = kargs{}
	}
}
