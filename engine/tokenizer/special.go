package tokenizer

import (
	"cmp"
	"slices"
	"strings"
)

// specialTrie is a byte trie over the texts of the special tokens; node 0
// is the root. It only answers which special tokens occur in a text.
type specialTrie struct {
	root  [256]int32 // child of the root per byte, 0 if none
	nodes []trieNode
}

type trieNode struct {
	keys []byte
	kids []int32
	rank int32 // rank of the special token ending here, -1 if none
}

func (tr *specialTrie) child(node int32, c byte) int32 {
	if node == 0 {
		return tr.root[c]
	}
	n := &tr.nodes[node]
	for i, k := range n.keys {
		if k == c {
			return n.kids[i]
		}
	}
	return 0
}

func (tr *specialTrie) insert(s string, rank int32) {
	if len(tr.nodes) == 0 {
		tr.nodes = []trieNode{{rank: -1}}
	}
	node := int32(0)
	for i := 0; i < len(s); i++ {
		nx := tr.child(node, s[i])
		if nx == 0 {
			nx = int32(len(tr.nodes))
			tr.nodes = append(tr.nodes, trieNode{rank: -1})
			if node == 0 {
				tr.root[s[i]] = nx
			} else {
				tr.nodes[node].keys = append(tr.nodes[node].keys, s[i])
				tr.nodes[node].kids = append(tr.nodes[node].kids, nx)
			}
		}
		node = nx
	}
	if r := tr.nodes[node].rank; r < 0 || r > rank {
		tr.nodes[node].rank = rank
	}
}

// buildSpecial lists the special tokens in llama.cpp's order
// (cache_special_tokens: longest text first) and indexes their texts.
func (t *Tokenizer) buildSpecial() {
	for id, a := range t.attrs {
		if a&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.special = append(t.special, int32(id))
		}
	}
	slices.SortStableFunc(t.special, func(a, b int32) int {
		return cmp.Compare(len(t.tokens[b]), len(t.tokens[a]))
	})
	for rank, id := range t.special {
		t.trie.insert(t.tokens[id], int32(rank))
	}
}

// present returns the ranks of the special tokens that occur in text,
// ascending; control and unknown tokens only with parseSpecial.
func (t *Tokenizer) present(text string, parseSpecial bool) []int32 {
	if len(t.special) == 0 {
		return nil
	}
	var seen map[int32]bool
	for i := 0; i < len(text); i++ {
		node := t.trie.root[text[i]]
		for j := i + 1; node != 0; j++ {
			if r := t.trie.nodes[node].rank; r >= 0 && !seen[r] {
				if parseSpecial || t.attrs[t.special[r]]&(attrControl|attrUnknown) == 0 {
					if seen == nil {
						seen = map[int32]bool{}
					}
					seen[r] = true
				}
			}
			if j == len(text) {
				break
			}
			node = t.trie.child(node, text[j])
		}
	}
	ranks := make([]int32, 0, len(seen))
	for r := range seen {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	return ranks
}

// partition splits text into raw fragments and special tokens as
// llama.cpp's tokenizer_st_partition does: special tokens are tried in
// order (longest text first), each matched left to right in the raw text
// that is left, stripping whitespace beside it when its attributes say
// so. Only the tokens the text holds are tried.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	if text == "" {
		return nil
	}
	frags := []fragment{{0, len(text), -1}}
	var next []fragment
	for _, r := range t.present(text, parseSpecial) {
		id := t.special[r]
		s, a := t.tokens[id], t.attrs[id]
		next = next[:0]
		for _, f := range frags {
			if f.id >= 0 || f.end-f.start < len(s) {
				next = append(next, f)
				continue
			}
			start := f.start
			for start < f.end {
				k := strings.Index(text[start:f.end], s)
				if k < 0 {
					break
				}
				m := start + k
				left := m
				if a&attrLStrip != 0 {
					for left > start && isSpaceC(text[left-1]) {
						left--
					}
				}
				if left > start {
					next = append(next, fragment{start, left, -1})
				}
				next = append(next, fragment{m, m + len(s), id})
				start = m + len(s)
				if a&attrRStrip != 0 {
					for start < f.end && isSpaceC(text[start]) {
						start++
					}
				}
			}
			if start < f.end {
				next = append(next, fragment{start, f.end, -1})
			}
		}
		frags, next = next, frags
	}
	return frags
}

// isSpaceC is C's isspace in the "C" locale.
func isSpaceC(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }
