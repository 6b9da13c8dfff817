package tokenizer

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// byteToRune is GPT-2's bytes_to_unicode: printable bytes stand for
// themselves, the others are shifted to U+0100 and up, so every byte is a
// visible character.
var byteToRune = func() (m [256]rune) {
	n := rune(0)
	for b := range 256 {
		switch {
		case b >= 0x21 && b <= 0x7E, b >= 0xA1 && b <= 0xAC, b >= 0xAE && b <= 0xFF:
			m[b] = rune(b)
		default:
			m[b] = 256 + n
			n++
		}
	}
	return m
}()

// decodeByteLevel maps a byte-level token text back to the bytes it stands
// for; characters outside the map are kept as UTF-8.
func (t *Tokenizer) decodeByteLevel(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if c, ok := t.byteDecode[r]; ok {
			b.WriteByte(c)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

type bpeBigram struct {
	rank        int32
	left, right int32
	lid, rid    int32 // ids of the two sides when pushed
	result      int32
}

// bpeLess orders bigrams as llama.cpp's llm_bigram_bpe::comparator: lowest
// rank first, then the leftmost.
func bpeLess(a, b bpeBigram) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
}

// bpeState holds scratch buffers reused across words.
type bpeState struct {
	cpts  []rune
	word  []byte
	syms  []symbol
	heap  heap[bpeBigram]
	wordB strings.Builder
	// cache of short words already merged during this Encode call
	cache map[string][]int32
}

const (
	bpeCacheWordLen = 64
	bpeCacheEntries = 1 << 14
)

// encodeBPE is llama.cpp's llm_tokenizer_bpe_session::tokenize for one raw
// text fragment.
func (t *Tokenizer) encodeBPE(text string, out []int32, st *bpeState) []int32 {
	if text == "" {
		return out
	}
	st.cpts = st.cpts[:0]
	for _, r := range text { // invalid bytes become U+FFFD, as in llama.cpp
		st.cpts = append(st.cpts, r)
	}
	lens, err := t.pre.split(st.cpts)
	if err != nil {
		// The regexes are fixed and compiled in New; a failure here is a
		// regexp2 timeout, which is not configured. Fall back to one word.
		lens = []int{len(st.cpts)}
	}
	st.heap.less = bpeLess
	pos := 0
	for _, n := range lens {
		st.word = st.word[:0]
		for _, r := range st.cpts[pos : pos+n] {
			st.word = utf8.AppendRune(st.word, r)
		}
		pos += n
		if len(st.word) > bpeCacheWordLen {
			out = t.mergeWord(st, out)
			continue
		}
		if cached, ok := st.cache[string(st.word)]; ok {
			out = append(out, cached...)
			continue
		}
		before := len(out)
		out = t.mergeWord(st, out)
		if st.cache == nil {
			st.cache = make(map[string][]int32)
		}
		if len(st.cache) < bpeCacheEntries {
			st.cache[string(st.word)] = slices.Clone(out[before:])
		}
	}
	return out
}

// mergeWord applies the BPE merges to st.word (raw bytes) and appends the
// resulting tokens.
func (t *Tokenizer) mergeWord(st *bpeState, out []int32) []int32 {
	w := st.word
	if len(w) == 0 {
		return out
	}
	if t.ignoreMerges {
		st.wordB.Reset()
		for _, c := range w {
			st.wordB.WriteRune(byteToRune[c])
		}
		if id, ok := t.toID[st.wordB.String()]; ok {
			return append(out, id)
		}
	}
	if len(w) == 1 {
		if id := t.byteSym[w[0]]; id >= 0 {
			out = append(out, id)
		}
		return out
	}
	syms := st.syms[:0]
	for i, c := range w {
		next := int32(i + 1)
		if i == len(w)-1 {
			next = -1
		}
		syms = append(syms, symbol{start: i, n: 1, prev: int32(i - 1), next: next, id: t.byteSym[c]})
	}
	st.syms = syms
	h := &st.heap
	h.items = h.items[:0]
	add := func(l, r int32) {
		if l < 0 || r < 0 {
			return
		}
		a, b := syms[l].id, syms[r].id
		if a < 0 || b < 0 {
			return
		}
		m, ok := t.ranks[pairKey(a, b)]
		if !ok {
			return
		}
		h.push(bpeBigram{rank: m.rank, left: l, right: r, lid: a, rid: b, result: m.result})
	}
	for i := 1; i < len(syms); i++ {
		add(int32(i-1), int32(i))
	}
	for len(h.items) > 0 {
		b := h.pop()
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.id != b.lid || r.id != b.rid || l.next != b.right {
			continue
		}
		l.n += r.n
		l.id = b.result
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		add(l.prev, b.left)
		add(b.left, l.next)
	}
	for i := int32(0); i != -1; i = syms[i].next {
		if id := syms[i].id; id >= 0 {
			out = append(out, id)
		}
	}
	return out
}
