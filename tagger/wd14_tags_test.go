package tagger

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goldenSelection is one post-processing result of SmilingWolf's app.py.
type goldenSelection struct {
	GeneralThresh   float64            `json:"general_thresh_used"`
	CharacterThresh float64            `json:"character_thresh_used"`
	SortedGeneral   string             `json:"sorted_general_strings"`
	Rating          map[string]float64 `json:"rating"`
	Characters      map[string]float64 `json:"character_res"`
	General         map[string]float64 `json:"general_res"`
}

func TestSelectTagsGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(wd14Testdata, "golden_tags.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	labels, err := ReadLabels(filepath.Join(wd14Testdata, "tiny_vit", WD14LabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	configs := map[string]SelectOptions{
		"default_0.35_0.85": DefaultSelectOptions(),
		"mcut_both":         {GeneralMCut: true, CharacterMCut: true},
		"low_0.2_0.5":       {GeneralThreshold: 0.2, CharacterThreshold: 0.5},
	}
	for _, img := range []string{"a", "b"} {
		var probs []float32
		if err := json.Unmarshal(golden[img]["probs"], &probs); err != nil {
			t.Fatal(err)
		}
		for name, o := range configs {
			t.Run(img+"/"+name, func(t *testing.T) {
				var want goldenSelection
				if err := json.Unmarshal(golden[img][name], &want); err != nil {
					t.Fatal(err)
				}
				p := SelectTags(labels, probs, o)
				if math.Abs(float64(p.GeneralThreshold)-want.GeneralThresh) > 1e-6 ||
					math.Abs(float64(p.CharacterThreshold)-want.CharacterThresh) > 1e-6 {
					t.Errorf("thresholds %v %v, want %v %v", p.GeneralThreshold, p.CharacterThreshold, want.GeneralThresh, want.CharacterThresh)
				}
				sameSet := func(what string, got []ScoredTag, want map[string]float64) {
					t.Helper()
					if len(got) != len(want) {
						t.Errorf("%s: %v, want %v", what, got, want)
					}
					for _, g := range got {
						if w, ok := want[g.Tag]; !ok || math.Abs(float64(g.Prob)-w) > 1e-7 {
							t.Errorf("%s: %v not in %v", what, g, want)
						}
					}
				}
				sameSet("general", p.General, want.General)
				sameSet("characters", p.Characters, want.Characters)
				sameSet("ratings", p.Ratings, want.Rating)
				var general []string
				for _, g := range p.General {
					general = append(general, escapeParens(g.Tag))
				}
				if got := strings.Join(general, ", "); got != want.SortedGeneral {
					t.Errorf("sorted general %q, want %q", got, want.SortedGeneral)
				}
			})
		}
	}
}

func TestPredictionTags(t *testing.T) {
	labels := []Label{
		{"general", 9}, {"sensitive", 9}, {"questionable", 9}, {"explicit", 9},
		{"1girl", 0}, {"long_hair", 0}, {"^_^", 0}, {"solo", 0},
		{"ganyu_(genshin_impact)", 4}, {"hatsune_miku", 4},
	}
	probs := []float32{0.2, 0.7, 0.05, 0.05, 0.9, 0.6, 0.4, 0.35, 0.95, 0.85}
	tests := []struct {
		name string
		o    SelectOptions
		want []string
	}{
		{"defaults", DefaultSelectOptions(),
			[]string{"ganyu (genshin impact)", "1girl", "long hair", "^_^"}},
		{"rating tag, escaped", SelectOptions{GeneralThreshold: 0.35, CharacterThreshold: 0.85, Rating: RatingTag, EscapeParens: true},
			[]string{"sensitive", `ganyu \(genshin impact\)`, "1girl", "long hair", "^_^"}},
		{"underscores kept", SelectOptions{GeneralThreshold: 0.5, CharacterThreshold: 0.9, KeepUnderscores: true},
			[]string{"ganyu_(genshin_impact)", "1girl", "long_hair"}},
		{"undesired and always first", SelectOptions{GeneralThreshold: 0.35, CharacterThreshold: 0.85,
			Undesired: []string{"1girl", " Long_Hair"}, AlwaysFirst: []string{"^_^", "solo", "Ganyu_(genshin_impact)"}},
			[]string{"^_^", "ganyu (genshin impact)"}},
		{"always first with underscores kept", SelectOptions{GeneralThreshold: 0.35, CharacterThreshold: 0.85, KeepUnderscores: true,
			AlwaysFirst: []string{"long hair"}},
			[]string{"long_hair", "ganyu_(genshin_impact)", "1girl", "^_^"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SelectTags(labels, probs, tt.o).Tags(tt.o)
			if !slices.Equal(got, tt.want) {
				t.Errorf("tags %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMCutThreshold(t *testing.T) {
	tests := []struct {
		probs []float32
		want  float32
	}{
		{[]float32{0.9, 0.1, 0.8}, 0.45},
		{[]float32{0.5}, 0},
		{nil, 0},
		{[]float32{0.3, 0.3}, 0.3},
	}
	for _, tt := range tests {
		if got := mcutThreshold(tt.probs); math.Abs(float64(got-tt.want)) > 1e-7 {
			t.Errorf("mcut(%v) = %v, want %v", tt.probs, got, tt.want)
		}
	}
}

func TestMergeTags(t *testing.T) {
	existing, predicted := []string{"sks dog", "grass"}, []string{"dog", "grass", "outdoors"}
	if got := MergeTags(existing, predicted, true); !slices.Equal(got, []string{"sks dog", "grass", "dog", "outdoors"}) {
		t.Errorf("append: %q", got)
	}
	if got := MergeTags(existing, predicted, false); !slices.Equal(got, predicted) {
		t.Errorf("replace: %q", got)
	}
}

func FuzzParseLabels(f *testing.F) {
	csv, err := os.ReadFile(filepath.Join(wd14Testdata, "tiny_vit", WD14LabelsFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(csv))
	f.Add("tag_id,name,category,count\n1,a,x,2\n")
	f.Add("name,category\n\"a,b\",0\n")
	f.Fuzz(func(t *testing.T, s string) {
		labels, err := parseLabels(strings.NewReader(s))
		if err == nil && len(labels) == 0 {
			t.Fatal("no error and no labels")
		}
	})
}
