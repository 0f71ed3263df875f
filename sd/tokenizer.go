package sd

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"container/heap"
	"fmt"
	"html"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"lorastudio/assets"
)

// CLIP tokenizer constants for SD 1.x (openai/CLIP ViT-L/14 vocabulary).
const (
	ContextLength = 77    // tokens per text-encoder input, BOS and EOS included
	ChunkLength   = 75    // prompt tokens that fit between BOS and EOS
	VocabSize     = 49408 // 256 bytes, 256 bytes+</w>, 48,894 merges, 2 specials
	StartOfText   = 49406
	EndOfText     = 49407

	numMerges      = VocabSize - 2*256 - 2
	commaToken     = 267 // ",</w>"
	commaBacktrack = 20  // A1111's comma_padding_backtrack default
)

const (
	sotMarker = "<|startoftext|>"
	eotMarker = "<|endoftext|>"
	wordEnd   = "</w>"
)

// Tokenizer is CLIP's byte-level BPE tokenizer. It is immutable after
// construction and safe for concurrent use.
type Tokenizer struct {
	encoder map[string]int
	decoder []string
	ranks   map[pair]int
	byteEnc [256]string
	byteDec map[rune]byte
}

type pair struct{ a, b string }

// NewTokenizer returns the tokenizer over the vocabulary embedded in the
// binary (openai/CLIP's bpe_simple_vocab_16e6.txt.gz).
func NewTokenizer() (*Tokenizer, error) {
	zr, err := gzip.NewReader(bytes.NewReader(assets.ClipVocab))
	if err != nil {
		return nil, fmt.Errorf("clip vocabulary: %w", err)
	}
	defer zr.Close()
	t, err := NewTokenizerFromMerges(zr)
	if err != nil {
		return nil, fmt.Errorf("clip vocabulary: %w", err)
	}
	return t, nil
}

// NewTokenizerFromMerges builds the tokenizer from a CLIP merges list: one
// header line, then "left right" pairs in rank order (openai's
// bpe_simple_vocab_16e6.txt or Hugging Face's merges.txt). Only the first
// 48,894 merges are part of the vocabulary, as in CLIP.
func NewTokenizerFromMerges(r io.Reader) (*Tokenizer, error) {
	t := &Tokenizer{
		encoder: make(map[string]int, VocabSize),
		decoder: make([]string, 0, VocabSize),
		ranks:   make(map[pair]int, numMerges),
		byteDec: make(map[rune]byte, 256),
	}
	order := byteOrder()
	for _, b := range order {
		r := byteRune(b, order)
		t.byteEnc[b] = string(r)
		t.byteDec[r] = b
	}
	add := func(tok string) {
		t.encoder[tok] = len(t.decoder)
		t.decoder = append(t.decoder, tok)
	}
	for _, b := range order {
		add(t.byteEnc[b])
	}
	for _, b := range order {
		add(t.byteEnc[b] + wordEnd)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() && len(t.ranks) < numMerges {
		line++
		if line == 1 {
			continue
		}
		a, b, ok := strings.Cut(sc.Text(), " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("merges line %d: want two symbols separated by a space, got %q", line, sc.Text())
		}
		p := pair{a, b}
		if _, dup := t.ranks[p]; dup {
			return nil, fmt.Errorf("merges line %d: duplicate merge %q", line, sc.Text())
		}
		t.ranks[p] = len(t.ranks)
		add(a + b)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read merges: %w", err)
	}
	if len(t.ranks) < numMerges {
		return nil, fmt.Errorf("merges: %d merges, CLIP needs %d", len(t.ranks), numMerges)
	}
	add(sotMarker)
	add(eotMarker)
	if len(t.decoder) != VocabSize {
		return nil, fmt.Errorf("merges: vocabulary has %d distinct entries, want %d", len(t.encoder), VocabSize)
	}
	return t, nil
}

// byteOrder lists the bytes in CLIP's vocabulary order (bytes_to_unicode):
// the 188 printable Latin-1 bytes, then the other 68 in increasing order.
func byteOrder() []byte {
	order := make([]byte, 0, 256)
	for b := range 256 {
		if printableByte(b) {
			order = append(order, byte(b))
		}
	}
	for b := range 256 {
		if !printableByte(b) {
			order = append(order, byte(b))
		}
	}
	return order
}

func printableByte(b int) bool {
	return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae
}

// byteRune is CLIP's reversible byte-to-character map: printable bytes stand
// for themselves, the n-th other byte becomes U+0100+n, so no token contains
// whitespace or a control character.
func byteRune(b byte, order []byte) rune {
	if printableByte(int(b)) {
		return rune(b)
	}
	return rune(256 + slices.Index(order, b) - 188)
}

// Tokenize returns the BPE token ids of text without BOS/EOS and without
// truncation.
func (t *Tokenizer) Tokenize(text string) []int {
	var ids []int
	for _, word := range splitWords(cleanText(text)) {
		if word == sotMarker {
			ids = append(ids, StartOfText)
			continue
		}
		if word == eotMarker {
			ids = append(ids, EndOfText)
			continue
		}
		var sb strings.Builder
		for i := 0; i < len(word); i++ {
			sb.WriteString(t.byteEnc[word[i]])
		}
		for _, sym := range t.bpe(sb.String()) {
			ids = append(ids, t.encoder[sym])
		}
	}
	return ids
}

// Encode returns the 77 ids SD 1.x feeds its text encoder: BOS, the first 75
// prompt tokens, EOS, then EOS padding. Longer prompts are cut at 75 tokens,
// as kohya's sd-scripts do with max_token_length 75.
func (t *Tokenizer) Encode(text string) []int {
	return frame(t.Tokenize(text))
}

// EncodeChunks splits a long prompt the way AUTOMATIC1111 does: 75-token
// chunks, each framed to 77 ids like Encode. A chunk that fills up moves the
// words after its last comma to the next chunk when that comma is within the
// last 20 tokens. An empty prompt gives one chunk. The text encoder encodes
// each chunk separately and the conditionings are concatenated along the
// token axis.
func (t *Tokenizer) EncodeChunks(text string) [][]int {
	var chunks [][]int
	var cur []int
	lastComma := -1
	flush := func() {
		chunks = append(chunks, frame(cur))
		cur, lastComma = nil, -1
	}
	for _, id := range t.Tokenize(text) {
		if id == commaToken {
			lastComma = len(cur)
		} else if len(cur) == ChunkLength && lastComma >= 0 && len(cur)-lastComma <= commaBacktrack {
			moved := append([]int(nil), cur[lastComma+1:]...)
			cur = cur[:lastComma+1]
			flush()
			cur = moved
		}
		if len(cur) == ChunkLength {
			flush()
		}
		cur = append(cur, id)
	}
	if len(cur) > 0 || len(chunks) == 0 {
		flush()
	}
	return chunks
}

// frame wraps prompt tokens in BOS/EOS and pads with EOS to ContextLength.
func frame(body []int) []int {
	if len(body) > ChunkLength {
		body = body[:ChunkLength]
	}
	ids := make([]int, ContextLength)
	ids[0] = StartOfText
	n := copy(ids[1:], body)
	for i := 1 + n; i < ContextLength; i++ {
		ids[i] = EndOfText
	}
	return ids
}

// Token returns the vocabulary string of id ("photo</w>"), or "" when id is
// out of range.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.decoder) {
		return ""
	}
	return t.decoder[id]
}

// Decode turns ids back into text: word ends become spaces and invalid UTF-8
// becomes U+FFFD. Ids outside the vocabulary are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	var raw []byte
	for _, id := range ids {
		tok := t.Token(id)
		word := strings.HasSuffix(tok, wordEnd)
		tok = strings.TrimSuffix(tok, wordEnd)
		for _, r := range tok {
			if b, ok := t.byteDec[r]; ok {
				raw = append(raw, b)
			}
		}
		if word {
			raw = append(raw, ' ')
		}
	}
	return strings.ToValidUTF8(string(raw), "\uFFFD")
}

// bpe applies the merges to one byte-encoded word: the last symbol carries
// the end-of-word mark and the lowest-ranked adjacent pair is merged, every
// occurrence left to right, until no pair has a rank. A heap of candidate
// pairs over a linked list of symbols does this in O(n log n) instead of
// CLIP's rescan after every merge, so a pasted 100 KB word stays fast. The
// order is the same because a merge's result only takes part in later merges.
func (t *Tokenizer) bpe(word string) []string {
	syms := make([]string, 0, len(word))
	for _, r := range word {
		syms = append(syms, string(r))
	}
	if len(syms) == 0 {
		return nil
	}
	syms[len(syms)-1] += wordEnd
	n := len(syms)
	next := make([]int, n)
	prev := make([]int, n)
	for i := range n {
		next[i], prev[i] = i+1, i-1
	}
	h := &mergeHeap{}
	push := func(l, r int) {
		if l < 0 || r >= n {
			return
		}
		if rank, ok := t.ranks[pair{syms[l], syms[r]}]; ok {
			heap.Push(h, candidate{rank, l, r})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i, i+1)
	}
	for h.Len() > 0 {
		c := heap.Pop(h).(candidate)
		if syms[c.left] == "" || syms[c.right] == "" || next[c.left] != c.right {
			continue
		}
		if rank, ok := t.ranks[pair{syms[c.left], syms[c.right]}]; !ok || rank != c.rank {
			continue
		}
		syms[c.left] += syms[c.right]
		syms[c.right] = ""
		next[c.left] = next[c.right]
		if next[c.left] < n {
			prev[next[c.left]] = c.left
		}
		push(prev[c.left], c.left)
		push(c.left, next[c.left])
	}
	out := syms[:0]
	for i := 0; i < n; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

// candidate is an adjacent symbol pair that has a merge rank.
type candidate struct{ rank, left, right int }

// mergeHeap orders candidates by rank, then by position (left to right).
type mergeHeap []candidate

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	return h[i].rank < h[j].rank || (h[i].rank == h[j].rank && h[i].left < h[j].left)
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(candidate)) }
func (h *mergeHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// cleanText is CLIP's basic_clean + whitespace_clean + lower: a subset of
// ftfy.fix_text (control characters removed, curly quotes straightened,
// Latin ligatures and full-width forms expanded, NFC), HTML entities
// unescaped twice, whitespace collapsed, lower case.
func cleanText(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = html.UnescapeString(html.UnescapeString(fixText(text)))
	var sb strings.Builder
	space := false
	for _, r := range text {
		if isSpace(r) {
			space = true
			continue
		}
		if space && sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		space = false
		if r == '\u0130' {
			// Python lowers U+0130 to "i" plus a combining dot; unicode.ToLower drops the dot.
			sb.WriteString("i\u0307")
			continue
		}
		sb.WriteRune(unicode.ToLower(r))
	}
	return sb.String()
}

// fixText is the part of ftfy.fix_text's default pipeline that changes
// ordinary prompts; mojibake repair is left out.
func fixText(text string) string {
	var sb strings.Builder
	for _, r := range text {
		switch {
		case isControl(r):
		case r == '\u02bc' || (r >= '\u2018' && r <= '\u201b'):
			sb.WriteByte('\'')
		case r >= '\u201c' && r <= '\u201f':
			sb.WriteByte('"')
		case isLigature(r) || r == '\u3000' || (r >= '\uff01' && r <= '\uffef'):
			sb.WriteString(norm.NFKC.String(string(r)))
		default:
			sb.WriteRune(r)
		}
	}
	return norm.NFC.String(sb.String())
}

func isControl(r rune) bool {
	return r <= 0x08 || r == 0x0b || (r >= 0x0e && r <= 0x1f) || r == 0x7f ||
		(r >= 0x206a && r <= 0x206f) || r == 0xfeff || (r >= 0xfff9 && r <= 0xfffc)
}

func isLigature(r rune) bool {
	return (r >= 0xfb00 && r <= 0xfb06) || r == 0x132 || r == 0x133 || r == 0x13f || r == 0x140 ||
		r == 0x149 || (r >= 0x1c4 && r <= 0x1cc) || (r >= 0x1f1 && r <= 0x1f3)
}

// isSpace is Python's str.isspace, which the tokenizer's \s follows.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// splitWords is CLIP's pre-tokenizer regex
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// written as a scanner: alternatives are tried in that order at each position
// and whitespace between matches is skipped.
func splitWords(text string) []string {
	var words []string
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		rest := text[i:]
		switch {
		case strings.HasPrefix(rest, sotMarker):
			words = append(words, sotMarker)
			i += len(sotMarker)
		case strings.HasPrefix(rest, eotMarker):
			words = append(words, eotMarker)
			i += len(eotMarker)
		case r == '\'' && contraction(rest) > 0:
			n := contraction(rest)
			words = append(words, rest[:n])
			i += n
		case unicode.IsLetter(r):
			j := i + size
			for j < len(text) {
				r2, s2 := utf8.DecodeRuneInString(text[j:])
				if !unicode.IsLetter(r2) {
					break
				}
				j += s2
			}
			words = append(words, text[i:j])
			i = j
		case unicode.IsNumber(r):
			words = append(words, rest[:size])
			i += size
		case isSpace(r):
			i += size
		default:
			j := i + size
			for j < len(text) {
				r2, s2 := utf8.DecodeRuneInString(text[j:])
				if isSpace(r2) || unicode.IsLetter(r2) || unicode.IsNumber(r2) {
					break
				}
				j += s2
			}
			words = append(words, text[i:j])
			i = j
		}
	}
	return words
}

// contraction returns the length of the English contraction ('s, 't, 're,
// 've, 'm, 'll, 'd) at the start of s, or 0.
func contraction(s string) int {
	for _, c := range []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} {
		if len(s) >= len(c) && strings.EqualFold(s[:len(c)], c) {
			return len(c)
		}
	}
	return 0
}
