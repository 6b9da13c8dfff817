package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// symbol is a run of the word being merged, linked to its neighbours.
type symbol struct {
	start, n   int
	prev, next int32
	id         int32 // BPE: token of the run, -1 if none
}

// heap is a binary heap ordered by less.
type heap[T any] struct {
	items []T
	less  func(a, b T) bool
}

func (h *heap[T]) push(x T) {
	h.items = append(h.items, x)
	i := len(h.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.items[i], h.items[p]) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *heap[T]) pop() T {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.less(h.items[l], h.items[m]) {
			m = l
		}
		if r < last && h.less(h.items[r], h.items[m]) {
			m = r
		}
		if m == i {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return top
}

type spmBigram struct {
	score       float32
	left, right int32
	size        int
}

// spmLess orders bigrams as llama.cpp's llm_bigram_spm::comparator: higher
// score first, then the leftmost.
func spmLess(a, b spmBigram) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

// utf8Len is llama.cpp's unicode_len_utf8: the length a lead byte claims.
func utf8Len(c byte) int {
	switch c >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

const spmSpace = "▁"

// spmInnerSpace reports whether s holds "▁" right after another character.
func spmInnerSpace(s string) bool {
	for i := 1; i < len(s); i++ {
		if strings.HasPrefix(s[i:], spmSpace) && !strings.HasSuffix(s[:i], spmSpace) {
			return true
		}
	}
	return false
}

// encodeSPMWords runs encodeSPM on text, word by word when no merge can
// cross the start of a "▁" run (the result is the same, the merge queues
// are just smaller).
func (t *Tokenizer) encodeSPMWords(text string, out []int32) []int32 {
	if !t.spmSplit {
		return t.encodeSPM(text, out)
	}
	start := 0
	for i := 1; i < len(text); i++ {
		if strings.HasPrefix(text[i:], spmSpace) && !strings.HasSuffix(text[:i], spmSpace) {
			out = t.encodeSPM(text[start:i], out)
			start = i
			i += len(spmSpace) - 1
		}
	}
	return t.encodeSPM(text[start:], out)
}

// encodeSPM is llama.cpp's llm_tokenizer_spm_session::tokenize on text
// whose spaces are already "▁".
func (t *Tokenizer) encodeSPM(text string, out []int32) []int32 {
	if text == "" {
		return out
	}
	syms := make([]symbol, 0, utf8.RuneCountInString(text))
	for off := 0; off < len(text); {
		n := min(utf8Len(text[off]), len(text)-off)
		idx := int32(len(syms))
		next := idx + 1
		if off+n == len(text) {
			next = -1
		}
		syms = append(syms, symbol{start: off, n: n, prev: idx - 1, next: next})
		off += n
	}
	h := heap[spmBigram]{less: spmLess, items: make([]spmBigram, 0, len(syms))}
	try := func(l, r int32) {
		if l < 0 || r < 0 {
			return
		}
		s := text[syms[l].start : syms[l].start+syms[l].n+syms[r].n]
		id, ok := t.toID[s]
		if !ok {
			return
		}
		h.push(spmBigram{score: t.scores[id], left: l, right: r, size: len(s)})
	}
	for i := 1; i < len(syms); i++ {
		try(int32(i-1), int32(i))
	}
	for len(h.items) > 0 {
		b := h.pop()
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		try(l.prev, b.left)
		try(b.left, l.next)
	}
	for i := int32(0); i != -1; i = syms[i].next {
		s := syms[i]
		piece := text[s.start : s.start+s.n]
		if id, ok := t.toID[piece]; ok {
			out = append(out, id)
			continue
		}
		for k := 0; k < len(piece); k++ {
			id := t.byteTok[piece[k]]
			if id < 0 {
				id = t.unk
			}
			if id >= 0 {
				out = append(out, id)
			}
		}
	}
	return out
}
