package sd

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"

	"lorastudio/nn"
)

// RandomWeights is a WeightSource that makes up seeded weights of whatever
// shape is asked for, so a full-size SD 1.5-shaped model (for benchmarks)
// or the tiny demo model can be built without a file. Each tensor depends
// only on the seed and its name, not on the order of requests:
// normalisation weights are 1 and their biases 0, embeddings N(0, 0.02^2),
// other biases N(0, 0.01^2), other weights N(0, 1/fan_in).
type RandomWeights uint64

const randomChunk = 1 << 16 // values per independently seeded stream

// Tensor returns the weight called name with shape want.
func (r RandomWeights) Tensor(name string, want ...int) (*nn.Tensor, error) {
	if len(want) == 0 {
		return nil, fmt.Errorf("random weight %s: no shape requested", name)
	}
	for _, d := range want {
		if d <= 0 {
			return nil, fmt.Errorf("random weight %s: shape %v", name, want)
		}
	}
	t := nn.New(want...)
	module, param, _ := cutLast(name)
	isNorm := len(want) == 1 && strings.Contains(lastPart(module), "norm")
	switch {
	case isNorm && param == "weight":
		for i := range t.Data {
			t.Data[i] = 1
		}
		return t, nil
	case isNorm:
		return t, nil
	}
	std := 0.01
	switch {
	case strings.HasSuffix(module, "_embedding"):
		std = 0.02
	case param != "bias":
		std = 1 / math.Sqrt(float64(nn.Numel(want[1:])))
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	key := h.Sum64()
	chunks := (len(t.Data) + randomChunk - 1) / randomChunk
	var wg sync.WaitGroup
	next := make(chan int, chunks)
	for c := range chunks {
		next <- c
	}
	close(next)
	for range min(chunks, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for c := range next {
				rng := rand.New(rand.NewPCG(uint64(r)^key, uint64(c)))
				end := min(len(t.Data), (c+1)*randomChunk)
				for i := c * randomChunk; i < end; i++ {
					t.Data[i] = float32(rng.NormFloat64() * std)
				}
			}
		})
	}
	wg.Wait()
	return t, nil
}

// cutLast splits "a.b.weight" into "a.b" and "weight".
func cutLast(name string) (module, param string, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", name, false
	}
	return name[:i], name[i+1:], true
}

func lastPart(module string) string {
	return module[strings.LastIndexByte(module, '.')+1:]
}
