package tokenizer

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/dlclark/regexp2"
)

// The pre-tokenizer splits text into words before BPE runs, as llama.cpp's
// unicode_regex_split does: each regex of the list splits every piece the
// previous one produced, and both matches and the text between them become
// pieces. Two regexes have hand-written splitters in llama.cpp (and here):
// the GPT-2 one and the Llama 3 one; the others run through a backtracking
// engine. Regexes using \p{..} classes run on a "collapsed" copy of the text
// in which every non-ASCII code point is replaced by one stand-in per
// Unicode category, exactly as llama.cpp does, so that category boundaries
// (and not a particular engine's Unicode tables) decide the split.

const (
	reGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`

	reLlama3 = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

	reQwen2 = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

	reChatGLM4 = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

	reTekken = `[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`

	reGPT4o = `[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`

	reBloom = ` ?[^(\s|.,!?…。，、।۔،)]+`

	reCJK = "[一-龥ࠀ-一가-퟿]+"

	// deepseek-llm's letter class (Unicode's cased letters), from llama.cpp;
	// code points that Unicode normalization would rewrite are escaped.
	reDeepseekLetters = `\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+`
)

// preRegexes returns llama.cpp's regex list for a tokenizer.ggml.pre value
// (llm_tokenizer_bpe's constructor), and whether the vocabulary ignores
// merges for words that are whole tokens.
func preRegexes(pre string) ([]string, error) {
	switch pre {
	case "", "default":
		return []string{`[\p{P}\$\+<=>\^~\|]+`, reGPT2, `\p{N}+`, `[0-9][0-9][0-9]`}, nil
	case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
		"dbrx", "smaug-bpe":
		return []string{reLlama3}, nil
	case "deepseek-llm":
		return []string{"[\r\n]", reDeepseekLetters, `\s?[!-/:-~！-／：-～‘-‟　-。]+`, `\s+$`, reCJK, `\p{N}+`}, nil
	case "deepseek-coder":
		return []string{"[\r\n]", `\s?\p{L}+`, `\s?\p{P}+`, reCJK, `\p{N}`}, nil
	case "falcon":
		return []string{`[\p{P}\$\+<=>\^~\|` + "`" + `]+`, reGPT2, `[0-9][0-9][0-9]`}, nil
	case "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b":
		return []string{`\p{N}`, reGPT2}, nil
	case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
		"jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "exaone4", "trillion":
		return []string{reGPT2}, nil
	case "qwen2", "deepseek-r1-qwen", "kormo", "stablelm2", "megrez", "hunyuan":
		return []string{reQwen2}, nil
	case "glm4", "chatglm-bpe":
		return []string{reChatGLM4}, nil
	case "tekken":
		return []string{reTekken}, nil
	case "gpt-4o", "llama4":
		return []string{reGPT4o}, nil
	case "poro-chat", "bloom", "gpt3-finnish":
		return []string{reBloom}, nil
	case "viking":
		return []string{reBloom, `\p{N}`}, nil
	}
	return nil, fmt.Errorf("%w: unknown pre-tokenizer %q", ErrInvalidVocab, pre)
}

// ignoresMerges reports whether llama.cpp sets ignore_merges for pre: a
// word that is a whole token is emitted as that token without merging.
func ignoresMerges(pre string) bool {
	switch pre {
	case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "tekken":
		return true
	}
	return false
}

// Code point classification, as llama.cpp's unicode_cpt_flags.
const (
	cfNumber uint8 = 1 << iota
	cfLetter
	cfPunct
	cfMark
	cfSymbol
	cfSpace
	cfValid // set for every code point in the text (flags of "out of range" are 0)
)

var asciiFlags = func() (t [128]uint8) {
	for r := range rune(128) {
		t[r] = classifySlow(r)
	}
	return t
}()

func classifySlow(r rune) uint8 {
	f := cfValid
	switch {
	case unicode.IsLetter(r):
		f |= cfLetter
	case unicode.IsNumber(r):
		f |= cfNumber
	case unicode.IsPunct(r):
		f |= cfPunct
	case unicode.IsMark(r):
		f |= cfMark
	case unicode.IsSymbol(r):
		f |= cfSymbol
	}
	if unicode.IsSpace(r) {
		f |= cfSpace
	}
	return f
}

func classify(r rune) uint8 {
	if r >= 0 && r < 128 {
		return asciiFlags[r]
	}
	return classifySlow(r)
}

// collapse maps a code point to llama.cpp's one-byte stand-in.
func collapse(r rune, f uint8) rune {
	if r < 128 {
		return r
	}
	switch {
	case f&cfSpace != 0:
		return 0x0B
	case f&cfNumber != 0:
		return 0xD1
	case f&cfLetter != 0:
		return 0xD2
	case f&cfPunct != 0:
		return 0xD3
	case f&cfMark != 0:
		return 0xD4
	case f&cfSymbol != 0:
		return 0xD5
	}
	return 0xD0
}

// ucat maps the \p{..} classes llama.cpp collapses to their stand-in and
// the ASCII members of the class (written for use inside [..]).
var ucat = map[string]struct {
	cpt   rune
	ascii string
}{
	`\p{N}`:  {0xD1, `0-9`},
	`\p{L}`:  {0xD2, `A-Za-z`},
	`\p{P}`:  {0xD3, `!-#%-*,-/:-;?-@\[-\]_\{\}`},
	`\p{M}`:  {0xD4, ``},
	`\p{S}`:  {0xD5, `\$\+<->^` + "`" + `\|`},
	`\p{Lu}`: {0xD2, `A-Za-z`},
	`\p{Ll}`: {0xD2, `A-Za-z`},
	`\p{Lt}`: {0xD2, `A-Za-z`},
	`\p{Lm}`: {0xD2, `A-Za-z`},
	`\p{Lo}`: {0xD2, `A-Za-z`},
}

func usesCategories(expr string) bool {
	for k := range ucat {
		if strings.Contains(expr, k) {
			return true
		}
	}
	return false
}

// collapseRegex rewrites \p{..} classes into their stand-ins, as llama.cpp
// does (nested brackets are not supported there either).
func collapseRegex(expr string) string {
	var b strings.Builder
	inside := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c == '[' && (i == 0 || expr[i-1] != '\\') {
			b.WriteByte('[')
			inside = true
			continue
		}
		if inside && c == ']' && expr[i-1] != '\\' {
			b.WriteByte(']')
			inside = false
			continue
		}
		if c == '\\' && i+3 < len(expr) && expr[i+1] == 'p' && expr[i+2] == '{' {
			if j := strings.IndexByte(expr[i+3:], '}'); j >= 0 && i+3+j <= i+10 {
				end := i + 3 + j
				if u, ok := ucat[expr[i:end+1]]; ok {
					if !inside {
						b.WriteByte('[')
					}
					b.WriteRune(u.cpt)
					b.WriteString(u.ascii)
					if !inside {
						b.WriteByte(']')
					}
					i = end
					continue
				}
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

type splitKind uint8

const (
	splitRegex splitKind = iota
	splitGPT2
	splitLlama3
	splitQwen2
)

type splitStep struct {
	kind      splitKind
	re        *regexp2.Regexp
	collapsed bool
	// nonEmpty: the regex never matches the empty string, so a piece of
	// one code point comes out unchanged and need not be searched
	nonEmpty bool
}

// pretokenizer is a compiled regex list.
type pretokenizer struct {
	steps        []splitStep
	needCollapse bool
}

func newPretokenizer(pre string) (*pretokenizer, error) {
	return compilePretokenizer(pre, true)
}

// compilePretokenizer compiles the regex list of pre. With custom, the
// regexes that have hand-written splitters use them (llama.cpp does so
// for GPT-2 and Llama 3; the Qwen2 splitter is this package's, tested
// equal to the regex). Without, every regex runs in regexp2 (tests only).
func compilePretokenizer(pre string, custom bool) (*pretokenizer, error) {
	exprs, err := preRegexes(pre)
	if err != nil {
		return nil, err
	}
	p := &pretokenizer{}
	for _, e := range exprs {
		kind := splitRegex
		switch {
		case e == reGPT2 && custom:
			kind = splitGPT2
		case e == reLlama3 && custom:
			kind = splitLlama3
		case e == reQwen2 && custom:
			kind = splitQwen2
		}
		if kind != splitRegex {
			p.steps = append(p.steps, splitStep{kind: kind})
			continue
		}
		st := splitStep{kind: splitRegex, collapsed: usesCategories(e)}
		src := e
		if st.collapsed {
			src = collapseRegex(e)
			p.needCollapse = true
		}
		// std::regex's $ matches only at the very end; .NET's also
		// before a final newline.
		src = strings.ReplaceAll(src, `+$`, `+\z`)
		re, err := regexp2.Compile(src, regexp2.None)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: compile pre-tokenizer regex %q: %w", e, err)
		}
		st.re = re
		empty, err := re.MatchString("")
		st.nonEmpty = err == nil && !empty
		p.steps = append(p.steps, st)
	}
	return p, nil
}

// split returns the lengths (in code points) of the words of cpts.
func (p *pretokenizer) split(cpts []rune) ([]int, error) {
	flags := make([]uint8, len(cpts))
	for i, r := range cpts {
		flags[i] = classify(r)
	}
	var collapsed, wide []rune
	offsets := []int{len(cpts)}
	if len(cpts) == 0 {
		return nil, nil
	}
	for _, st := range p.steps {
		var err error
		switch st.kind {
		case splitGPT2:
			offsets = splitCustomGPT2(cpts, flags, offsets)
		case splitLlama3:
			offsets = splitCustomLlama3(cpts, flags, offsets, 3)
		case splitQwen2:
			offsets = splitCustomLlama3(cpts, flags, offsets, 1)
		default:
			var text []rune
			if st.collapsed {
				if collapsed == nil {
					collapsed = make([]rune, len(cpts))
					for i, r := range cpts {
						collapsed[i] = collapse(r, flags[i])
					}
				}
				text = collapsed
			} else {
				if wide == nil {
					wide = make([]rune, len(cpts))
					for i, r := range cpts {
						if r > 0x7F && flags[i]&cfSpace != 0 {
							r = 0x0B
						}
						wide[i] = r
					}
				}
				text = wide
			}
			offsets, err = splitRegexp(st.re, text, offsets, st.nonEmpty)
			if err != nil {
				return nil, err
			}
		}
	}
	return offsets, nil
}

func splitRegexp(re *regexp2.Regexp, text []rune, offsets []int, nonEmpty bool) ([]int, error) {
	out := make([]int, 0, len(offsets))
	start := 0
	for _, n := range offsets {
		if n == 1 && nonEmpty {
			out = append(out, 1)
			start++
			continue
		}
		piece := text[start : start+n]
		prev := 0
		m, err := re.FindRunesMatch(piece)
		for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
			if m.Index > prev {
				out = append(out, m.Index-prev)
			}
			if m.Length > 0 {
				out = append(out, m.Length)
			}
			prev = m.Index + m.Length
		}
		if err != nil {
			return nil, fmt.Errorf("tokenizer: pre-tokenizer regex: %w", err)
		}
		if prev < n {
			out = append(out, n-prev)
		}
		start += n
	}
	return out, nil
}

// segment is one piece [ini, end) of a pre-split text, read with
// llama.cpp's conventions (out-of-range positions give codepoint -1 and
// no flags), and the cut lengths the custom splitters emit for it.
type segment struct {
	cpts     []rune
	flags    []uint8
	ini, end int
	prevEnd  int
	out      *[]int
}

// outOfRange is what segment.cpt returns past the segment's ends.
const outOfRange rune = -1

func (s *segment) cpt(pos int) rune {
	if pos >= s.ini && pos < s.end {
		return s.cpts[pos]
	}
	return outOfRange
}

func (s *segment) fl(pos int) uint8 {
	if pos >= s.ini && pos < s.end {
		return s.flags[pos]
	}
	return 0
}

// add cuts the piece ending at e and returns its length (0: nothing cut).
func (s *segment) add(e int) int {
	n := e - s.prevEnd
	if n > 0 {
		*s.out = append(*s.out, n)
	}
	s.prevEnd = e
	return n
}

// splitCustomGPT2 is llama.cpp's unicode_regex_split_custom_gpt2:
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitCustomGPT2(cpts []rune, flags []uint8, offsets []int) []int {
	out := make([]int, 0, len(offsets))
	start := 0
	for _, off := range offsets {
		ini, end := start, start+off
		start = end
		sg := &segment{cpts: cpts, flags: flags, ini: ini, end: end, prevEnd: ini, out: &out}
		cpt, fl, add := sg.cpt, sg.fl, sg.add
		for pos := ini; pos < end; {
			c := cpt(pos)
			f := fl(pos)
			if c == '\'' && pos+1 < end {
				n := cpt(pos + 1)
				if n == 's' || n == 't' || n == 'm' || n == 'd' {
					pos += add(pos + 2)
					continue
				}
				if pos+2 < end {
					nn := cpt(pos + 2)
					if (n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l') {
						pos += add(pos + 3)
						continue
					}
				}
			}
			f2 := f
			if c == ' ' {
				f2 = fl(pos + 1)
			}
			if f2&cfLetter != 0 {
				if c == ' ' {
					pos++
				}
				for f2&cfLetter != 0 {
					pos++
					f2 = fl(pos)
				}
				add(pos)
				continue
			}
			if f2&cfNumber != 0 {
				if c == ' ' {
					pos++
				}
				for f2&cfNumber != 0 {
					pos++
					f2 = fl(pos)
				}
				add(pos)
				continue
			}
			if f2&(cfSpace|cfLetter|cfNumber) == 0 && f2 != 0 {
				if c == ' ' {
					pos++
				}
				for f2&(cfSpace|cfLetter|cfNumber) == 0 && f2 != 0 {
					pos++
					f2 = fl(pos)
				}
				add(pos)
				continue
			}
			ws := 0
			for fl(pos+ws)&cfSpace != 0 {
				ws++
			}
			if ws > 1 && cpt(pos+ws) != outOfRange {
				pos += ws - 1
				add(pos)
				continue
			}
			if ws > 0 {
				pos += ws
				add(pos)
				continue
			}
			pos++
			add(pos)
		}
	}
	return out
}

// splitCustomLlama3 is llama.cpp's unicode_regex_split_custom_llama3:
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// With maxDigits 1 it is the Qwen2 regex (\p{N} in place of \p{N}{1,3}).
func splitCustomLlama3(cpts []rune, flags []uint8, offsets []int, maxDigits int) []int {
	out := make([]int, 0, len(offsets))
	start := 0
	for _, off := range offsets {
		ini, end := start, start+off
		start = end
		sg := &segment{cpts: cpts, flags: flags, ini: ini, end: end, prevEnd: ini, out: &out}
		cpt, fl, add := sg.cpt, sg.fl, sg.add
		for pos := ini; pos < end; {
			c := cpt(pos)
			f := fl(pos)
			if c == '\'' && pos+1 < end {
				n := unicode.ToLower(cpt(pos + 1))
				if n == 's' || n == 't' || n == 'm' || n == 'd' {
					pos += add(pos + 2)
					continue
				}
				if pos+2 < end {
					nn := unicode.ToLower(cpt(pos + 2))
					if (n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l') {
						pos += add(pos + 3)
						continue
					}
				}
			}
			if !(c == '\r' || c == '\n' || f&cfNumber != 0) {
				if f&cfLetter != 0 || fl(pos+1)&cfLetter != 0 {
					pos++
					for fl(pos)&cfLetter != 0 {
						pos++
					}
					add(pos)
					continue
				}
			}
			if f&cfNumber != 0 {
				i0 := pos
				for fl(pos)&cfNumber != 0 {
					pos++
					if pos-i0 >= maxDigits {
						add(pos)
						i0 = pos
					}
				}
				add(pos)
				continue
			}
			f2 := f
			if c == ' ' {
				f2 = fl(pos + 1)
			}
			if f2&(cfSpace|cfLetter|cfNumber) == 0 && f != 0 {
				if c == ' ' {
					pos++
				}
				for f2&(cfSpace|cfLetter|cfNumber) == 0 && f2 != 0 {
					pos++
					f2 = fl(pos)
				}
				c2 := cpt(pos)
				for c2 == '\r' || c2 == '\n' {
					pos++
					c2 = cpt(pos)
				}
				add(pos)
				continue
			}
			ws, lastRN := 0, 0
			for fl(pos+ws)&cfSpace != 0 {
				c2 := cpt(pos + ws)
				if c2 == '\r' || c2 == '\n' {
					lastRN = pos + ws + 1
				}
				ws++
			}
			if lastRN > 0 {
				pos = lastRN
				add(pos)
				continue
			}
			if ws > 1 && cpt(pos+ws) != outOfRange {
				pos += ws - 1
				add(pos)
				continue
			}
			if ws > 0 {
				pos += ws
				add(pos)
				continue
			}
			pos++
			add(pos)
		}
	}
	return out
}
