package sd

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

var (
	testTokOnce sync.Once
	testTok     *Tokenizer
	testTokErr  error
)

func tokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	testTokOnce.Do(func() { testTok, testTokErr = NewTokenizer() })
	if testTokErr != nil {
		t.Fatal(testTokErr)
	}
	return testTok
}

func TestTokenizerVectors(t *testing.T) {
	tok := tokenizer(t)
	tests := []struct {
		prompt string
		want   []int
	}{
		{"a photo of a cat", []int{49406, 320, 1125, 539, 320, 2368, 49407}},
		{"A photo of sks dog, masterpiece!!", []int{49406, 320, 1125, 539, 48136, 1929, 267, 12066, 748, 49407}},
		{"Hello   world 123", []int{49406, 3306, 1002, 272, 273, 274, 49407}},
		{"", []int{49406, 49407}},
		{"  \t\n ", []int{49406, 49407}},
		{"a &amp;amp; b", []int{49406, 320, 261, 321, 49407}},
	}
	for _, tt := range tests {
		ids := tok.Encode(tt.prompt)
		if len(ids) != ContextLength {
			t.Fatalf("%q: %d ids, want %d", tt.prompt, len(ids), ContextLength)
		}
		want := append(append([]int(nil), tt.want...), slices.Repeat([]int{EndOfText}, ContextLength-len(tt.want))...)
		if !slices.Equal(ids, want) {
			t.Errorf("%q:\n got %v\nwant %v", tt.prompt, ids[:len(tt.want)+1], tt.want)
		}
	}
}

func TestTokenizerGolden(t *testing.T) {
	tok := tokenizer(t)
	raw, err := os.ReadFile("testdata/golden_tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		VocabSize   int `json:"vocab_size"`
		StartOfText int `json:"startoftext"`
		EndOfText   int `json:"endoftext"`
		Cases       []struct {
			Prompt    string   `json:"prompt"`
			BPEIDs    []int    `json:"bpe_ids"`
			InputIDs  []int    `json:"input_ids_77"`
			BPETokens []string `json:"bpe_tokens"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	if golden.VocabSize != VocabSize || golden.StartOfText != StartOfText || golden.EndOfText != EndOfText {
		t.Fatalf("golden vocabulary %d/%d/%d differs from constants", golden.VocabSize, golden.StartOfText, golden.EndOfText)
	}
	if len(golden.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range golden.Cases {
		if got := tok.Tokenize(c.Prompt); !slices.Equal(got, c.BPEIDs) {
			t.Errorf("%q: bpe ids\n got %v\nwant %v", c.Prompt, got, c.BPEIDs)
		}
		if got := tok.Encode(c.Prompt); !slices.Equal(got, c.InputIDs) {
			t.Errorf("%q: input ids\n got %v\nwant %v", c.Prompt, got, c.InputIDs)
		}
		var toks []string
		for _, id := range c.BPEIDs {
			toks = append(toks, tok.Token(id))
		}
		if !slices.Equal(toks, c.BPETokens) {
			t.Errorf("%q: tokens %q, want %q", c.Prompt, toks, c.BPETokens)
		}
	}
}

func TestTokenizerTruncation(t *testing.T) {
	tok := tokenizer(t)
	words := slices.Repeat([]string{"cat"}, 100)
	ids := tok.Encode(strings.Join(words, " "))
	if len(ids) != ContextLength || ids[0] != StartOfText || ids[76] != EndOfText {
		t.Fatalf("framing wrong: len %d first %d last %d", len(ids), ids[0], ids[76])
	}
	cat := tok.Tokenize("cat")[0]
	for i := 1; i <= ChunkLength; i++ {
		if ids[i] != cat {
			t.Fatalf("id %d = %d, want %d (75 prompt tokens kept)", i, ids[i], cat)
		}
	}
}

func TestTokenizerChunks(t *testing.T) {
	tok := tokenizer(t)
	cat := tok.Tokenize("cat")[0]
	tests := []struct {
		name   string
		prompt string
		sizes  []int // prompt tokens per chunk
	}{
		{"empty", "", []int{0}},
		{"short", "a photo of a cat", []int{5}},
		{"exactly 75", strings.Repeat("cat ", 75), []int{75}},
		{"76 no comma", strings.Repeat("cat ", 76), []int{75, 1}},
		// 70 cats, comma, 10 cats: the chunk fills at token 75 with the comma 5 back, so the 4 cats after it move.
		{"comma backtrack", strings.Repeat("cat ", 70) + "," + strings.Repeat(" cat", 10), []int{71, 10}},
		// comma 30 tokens back: too far, no move.
		{"comma too far", strings.Repeat("cat ", 45) + "," + strings.Repeat(" cat", 40), []int{75, 11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := tok.EncodeChunks(tt.prompt)
			if len(chunks) != len(tt.sizes) {
				t.Fatalf("%d chunks, want %d", len(chunks), len(tt.sizes))
			}
			total := 0
			for i, ch := range chunks {
				if len(ch) != ContextLength || ch[0] != StartOfText || ch[76] != EndOfText {
					t.Fatalf("chunk %d badly framed", i)
				}
				n := 0
				for _, id := range ch[1:76] {
					if id != EndOfText {
						n++
					}
				}
				if n != tt.sizes[i] {
					t.Errorf("chunk %d has %d prompt tokens, want %d", i, n, tt.sizes[i])
				}
				total += n
			}
			if want := len(tok.Tokenize(tt.prompt)); total != want {
				t.Errorf("chunks hold %d tokens, prompt has %d", total, want)
			}
			if tt.name == "comma backtrack" && chunks[0][71] != commaToken || tt.name == "comma backtrack" && chunks[1][1] != cat {
				t.Errorf("comma backtrack split at the wrong place: %v", chunks[0][68:74])
			}
		})
	}
}

func TestTokenizerClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  Hello\t\nWORLD  ", "hello world"},
		{"&lt;b&gt; &amp;lt;", "<b> <"},
		{"\u201cquoted\u201d it\u2019s", "\"quoted\" it's"},
		{"\ufb01ne \uff21\uff22", "fine ab"},
		{"cafe\u0301", "caf\u00e9"},
		{"a\x00b\u200bc", "ab\u200bc"},
	}
	for _, tt := range tests {
		if got := cleanText(tt.in); got != tt.want {
			t.Errorf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTokenizerSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"isn't it", []string{"isn", "'t", "it"}},
		{"x!'s", []string{"x", "!'", "s"}},
		{"3.14", []string{"3", ".", "1", "4"}},
		{"a<|endoftext|>b", []string{"a", "<|endoftext|>", "b"}},
		{"!!<|endoftext|>", []string{"!!<|", "endoftext", "|>"}},
		{"héllo мир", []string{"héllo", "мир"}},
	}
	for _, tt := range tests {
		if got := splitWords(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitWords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTokenizerDecodeRoundTrip(t *testing.T) {
	tok := tokenizer(t)
	for _, s := range []string{"a photo of sks dog, masterpiece!!", "unicode: 東京 café ☃", "1girl, blue_hair"} {
		got := strings.TrimSpace(tok.Decode(tok.Tokenize(s)))
		if got != cleanText(s) {
			// CLIP's decode puts a space after every word, so punctuation gains spaces; compare without them.
			if strings.ReplaceAll(got, " ", "") != strings.ReplaceAll(cleanText(s), " ", "") {
				t.Errorf("round trip %q -> %q", s, got)
			}
		}
	}
}

func TestTokenizerBadMerges(t *testing.T) {
	for _, in := range []string{"", "header\ni n\n", "header\nonlyone\n", "header\ni n\ni n\n"} {
		if _, err := NewTokenizerFromMerges(strings.NewReader(in)); err == nil {
			t.Errorf("merges %q accepted", in)
		}
	}
}

func FuzzTokenizer(f *testing.F) {
	tok := tokenizer(f)
	for _, s := range []string{"a photo of a cat", "<|startoftext|>x<|endoftext|>", "'s'S'LL", "\xff\xfe", "東京 ☃ 123", "&amp;&#x27;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		if len(ids) != ContextLength || ids[0] != StartOfText || ids[ContextLength-1] != EndOfText {
			t.Fatalf("bad framing for %q", s)
		}
		for _, id := range tok.Tokenize(s) {
			if id < 0 || id >= VocabSize {
				t.Fatalf("id %d out of range for %q", id, s)
			}
		}
		for _, ch := range tok.EncodeChunks(s) {
			if len(ch) != ContextLength {
				t.Fatalf("chunk of %d ids for %q", len(ch), s)
			}
		}
		if d := tok.Decode(tok.Tokenize(s)); !utf8.ValidString(d) {
			t.Fatalf("decode gave invalid UTF-8 for %q", s)
		}
	})
}

func BenchmarkTokenizer(b *testing.B) {
	tok := tokenizer(b)
	prompt := "portrait of a cat wearing sunglasses, 4k, trending on artstation, highly detailed, masterpiece"
	for b.Loop() {
		tok.Encode(prompt)
	}
}

// bpeReference is CLIP's BPE loop as written in openai/CLIP (rescan after
// every merge), kept to check the heap version against.
func bpeReference(t *Tokenizer, word string) []string {
	var syms []string
	for _, r := range word {
		syms = append(syms, string(r))
	}
	syms[len(syms)-1] += wordEnd
	for len(syms) > 1 {
		best, bestRank := pair{}, -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := t.ranks[pair{syms[i], syms[i+1]}]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = pair{syms[i], syms[i+1]}, r
			}
		}
		if bestRank < 0 {
			break
		}
		var merged []string
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == best.a && syms[i+1] == best.b {
				merged = append(merged, best.a+best.b)
				i++
				continue
			}
			merged = append(merged, syms[i])
		}
		syms = merged
	}
	return syms
}

func TestTokenizerBPEMatchesReference(t *testing.T) {
	tok := tokenizer(t)
	rng := rand.New(rand.NewPCG(7, 11))
	alphabets := []string{"abcdefghijklmnopqrstuvwxyz", "aaab", "eeinnrsst", "!?.,-_", "äöüßéèçñ東京大阪"}
	for i := range 3000 {
		letters := []rune(alphabets[i%len(alphabets)])
		n := 1 + rng.IntN(40)
		var sb strings.Builder
		for range n {
			sb.WriteRune(letters[rng.IntN(len(letters))])
		}
		var enc strings.Builder
		word := sb.String()
		for j := 0; j < len(word); j++ {
			enc.WriteString(tok.byteEnc[word[j]])
		}
		got, want := tok.bpe(enc.String()), bpeReference(tok, enc.String())
		if !slices.Equal(got, want) {
			t.Fatalf("bpe(%q) = %q, reference %q", word, got, want)
		}
	}
}
