package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// unknownPiece is what llama.cpp prints for an unknown token.
const unknownPiece = "\u2585"

// Piece returns the bytes token id stands for: "▁" turned back into spaces
// and byte tokens into their byte for SPM, the GPT-2 byte map undone for
// byte-level BPE. Control tokens render as their text. The result may be
// part of a UTF-8 sequence. An out-of-range id gives "".
func (t *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	s, a := t.tokens[id], t.attrs[id]
	switch {
	case a&(attrControl|attrUserDefined) != 0:
		return s
	case a&attrUnknown != 0:
		return unknownPiece
	}
	if t.model == ModelSPM {
		if a&attrByte != 0 {
			if b, ok := parseByteToken(s); ok {
				return string([]byte{b})
			}
		}
		return strings.ReplaceAll(s, "▁", " ")
	}
	return t.pieceBytesBPE[id]
}

// parseByteToken parses "<0xNN>".
func parseByteToken(s string) (byte, bool) {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range []byte(s[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			b = b<<4 | (c - '0')
		case c >= 'A' && c <= 'F':
			b = b<<4 | (c - 'A' + 10)
		case c >= 'a' && c <= 'f':
			b = b<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return b, true
}

// Decode turns ids back into text. Control tokens (BOS, EOS, chat markers)
// are left out, ids out of range are skipped, and for SPM vocabularies that
// add a space prefix the first space is removed, so that
// Decode(Encode(s)) == s. The result is raw bytes and may hold invalid
// UTF-8 when ids split a character.
func (t *Tokenizer) Decode(ids []int32) string {
	d := t.NewDecoder()
	var b strings.Builder
	for _, id := range ids {
		d.appendPiece(&b, id)
	}
	return b.String()
}

// Decoder turns a stream of ids into text, holding back the bytes of a
// UTF-8 character split across tokens until it is complete. The
// concatenation of everything Add and Flush return equals Decode of the
// same ids. A Decoder is not safe for concurrent use.
type Decoder struct {
	t       *Tokenizer
	started bool
	pending []byte
}

// NewDecoder returns a streaming decoder.
func (t *Tokenizer) NewDecoder() *Decoder { return &Decoder{t: t} }

func (d *Decoder) appendPiece(b *strings.Builder, id int32) {
	if id < 0 || int(id) >= len(d.t.tokens) || d.t.attrs[id]&attrControl != 0 {
		return
	}
	p := d.t.Piece(id)
	if !d.started && p != "" {
		d.started = true
		if d.t.addSpacePrefix && p[0] == ' ' {
			p = p[1:]
		}
	}
	b.WriteString(p)
}

// Add decodes one more id and returns the text that is now complete.
func (d *Decoder) Add(id int32) string {
	var b strings.Builder
	b.Write(d.pending)
	d.pending = d.pending[:0]
	d.appendPiece(&b, id)
	s := b.String()
	// hold back a trailing incomplete (but possibly valid) character
	for k := len(s) - 1; k >= 0 && k >= len(s)-utf8.UTFMax+1; k-- {
		if s[k]&0xC0 == 0x80 {
			continue
		}
		if !utf8.FullRuneInString(s[k:]) {
			d.pending = append(d.pending, s[k:]...)
			s = s[:k]
		}
		break
	}
	return s
}

// Flush returns whatever bytes are still held back (an incomplete
// character at the end of the stream) and resets the hold-back buffer.
func (d *Decoder) Flush() string {
	s := string(d.pending)
	d.pending = d.pending[:0]
	return s
}
