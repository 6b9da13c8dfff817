package sample

import (
	"strings"
	"unicode/utf8"
)

// Stopper finds stop sequences in text that arrives in pieces (one decoded
// token at a time), so that a stop sequence split across tokens is still
// caught and no part of it is ever emitted.
//
// Push holds back the longest tail of the text that could still grow into a
// stop sequence, plus an incomplete UTF-8 sequence at the end, and emits the
// rest. Generation stops at the first stop sequence to complete, reading the
// text byte by byte (when two complete at the same byte, the longer one,
// which starts earlier): a stop sequence that started earlier but is still
// incomplete is not waited for. The concatenation of everything Push and
// Flush return is exactly the input up to the start of that stop sequence
// (all of the input if none occurs), whatever the chunking. Emitted pieces never end inside a
// multi-byte UTF-8 character when the input and the stop sequences are valid
// UTF-8; invalid bytes are passed through. Matching is byte-wise.
//
// The zero value has no stop sequences. A Stopper is not safe for concurrent
// use.
type Stopper struct {
	stops   []string
	held    string
	stopped bool
	matched string
}

// NewStopper returns a Stopper for the given stop sequences. Empty strings
// are ignored; the slice is copied.
func NewStopper(stops []string) *Stopper {
	s := &Stopper{}
	for _, t := range stops {
		if t != "" {
			s.stops = append(s.stops, t)
		}
	}
	return s
}

// Push adds the next piece of text. It returns the text that is now safe to
// emit and whether a stop sequence has been found; once it has, emit holds
// the text before the stop sequence and every later Push returns "", true.
func (s *Stopper) Push(text string) (emit string, stopped bool) {
	if s.stopped {
		return "", true
	}
	buf := s.held + text
	at, which := firstMatch(buf, s.stops)
	if at >= 0 {
		s.stopped, s.matched, s.held = true, which, ""
		return buf[:at], true
	}
	cut := runeBoundary(buf, len(buf)-s.holdLen(buf))
	s.held = buf[cut:]
	return buf[:cut], false
}

// Flush returns the text still held back and clears it: call it when the
// generation ends for another reason (end of sequence, token limit). It
// returns "" after a stop sequence was found.
func (s *Stopper) Flush() string {
	h := s.held
	s.held = ""
	return h
}

// Stopped reports whether a stop sequence has been found.
func (s *Stopper) Stopped() bool { return s.stopped }

// Matched returns the stop sequence that was found, or "" if none was.
func (s *Stopper) Matched() string { return s.matched }

// firstMatch returns the start of the stop sequence occurrence in buf that
// ends first (the longest one when several end at the same byte) and which
// sequence it is, or -1.
func firstMatch(buf string, stops []string) (int, string) {
	at, end, which := -1, 0, ""
	for _, t := range stops {
		i := strings.Index(buf, t)
		if i < 0 {
			continue
		}
		if e := i + len(t); at < 0 || e < end || (e == end && i < at) {
			at, end, which = i, e, t
		}
	}
	return at, which
}

// holdLen returns the length of the longest proper suffix of buf that is a
// prefix of some stop sequence.
func (s *Stopper) holdLen(buf string) int {
	n := 0
	for _, t := range s.stops {
		for l := min(len(t)-1, len(buf)); l > n; l-- {
			if strings.HasSuffix(buf, t[:l]) {
				n = l
				break
			}
		}
	}
	return n
}

// runeBoundary moves cut back to the start of an incomplete UTF-8 sequence
// that ends buf[:cut], if there is one.
func runeBoundary(buf string, cut int) int {
	for i := cut - 1; i >= 0 && i >= cut-utf8.UTFMax; i-- {
		if utf8.RuneStart(buf[i]) {
			if utf8.FullRuneInString(buf[i:cut]) {
				return cut
			}
			return i
		}
	}
	return cut
}
