package trainer

import (
	"math/rand/v2"
	"strings"
)

// batch is one micro-batch: images (indexes into job.images) of one bucket.
type batch struct {
	bucket int
	images []int
}

// epochBatches lists an epoch's micro-batches the way sd-scripts'
// BucketManager makes them: every image repeats times in its bucket, each
// bucket shuffled and cut into batches (the last one of a bucket may be
// smaller), then all batches shuffled. The order depends only on the seed
// and the epoch, so a resumed run replays it.
func epochBatches(bucketOf, repeats []int, buckets, size int, seed int64, epoch int) []batch {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x65706f6368<<16|uint64(epoch)))
	members := make([][]int, buckets)
	for i, b := range bucketOf {
		for range repeats[i] {
			members[b] = append(members[b], i)
		}
	}
	var out []batch
	for b, m := range members {
		rng.Shuffle(len(m), func(x, y int) { m[x], m[y] = m[y], m[x] })
		for lo := 0; lo < len(m); lo += size {
			out = append(out, batch{bucket: b, images: m[lo:min(lo+size, len(m))]})
		}
	}
	rng.Shuffle(len(out), func(x, y int) { out[x], out[y] = out[y], out[x] })
	return out
}

// captionRules is the caption handling of sd-scripts' process_caption.
type captionRules struct {
	prefix, suffix string
	dropout        float64
	shuffle        bool
	keepTokens     int
}

func (c *Config) captionRules() captionRules {
	return captionRules{
		prefix: c.CaptionPrefix, suffix: c.CaptionSuffix,
		dropout: c.CaptionDropoutRate, shuffle: c.ShuffleCaption, keepTokens: c.KeepTokens,
	}
}

// random reports whether captions change from step to step, so their text
// embeddings cannot be cached.
func (r captionRules) random() bool { return r.dropout > 0 || r.shuffle }

// apply returns the caption a step trains on: prefix and suffix joined with
// a space, then, drawing from rng, dropped to "" with the dropout rate, or
// split on commas with the first keepTokens kept in place and the rest
// shuffled.
func (r captionRules) apply(caption string, rng *rand.Rand) string {
	if r.prefix != "" {
		caption = r.prefix + " " + caption
	}
	if r.suffix != "" {
		caption = caption + " " + r.suffix
	}
	if r.dropout > 0 && rng.Float64() < r.dropout {
		return ""
	}
	if !r.shuffle {
		return caption
	}
	tokens := strings.Split(strings.TrimSpace(caption), ",")
	for i, t := range tokens {
		tokens[i] = strings.TrimSpace(t)
	}
	flex := tokens
	if r.keepTokens > 0 {
		flex = tokens[min(r.keepTokens, len(tokens)):]
	}
	rng.Shuffle(len(flex), func(x, y int) { flex[x], flex[y] = flex[y], flex[x] })
	return strings.Join(tokens, ", ")
}

// lossWindow is sd-scripts' running loss (loss/average): the mean of the
// last steps-per-epoch losses, filled during the first epoch and then
// replacing the value of the same step in the previous epoch. The mean is
// summed afresh each step so a resumed run reports the same averages.
type lossWindow struct {
	Values []float64
	Size   int
}

func (w *lossWindow) add(step int, loss float64) float64 {
	i := step % max(w.Size, 1)
	if i < len(w.Values) {
		w.Values[i] = loss
	} else {
		w.Values = append(w.Values, loss)
	}
	var sum float64
	for _, v := range w.Values {
		sum += v
	}
	return sum / float64(len(w.Values))
}
