package backend

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Leaks records a backend's open buffers and programs, so that Close can
// report the ones never closed. The zero value is ready to use; it is safe
// for concurrent use.
type Leaks struct {
	mu   sync.Mutex
	live map[any]string
}

// Track records x as open, described by what.
func (l *Leaks) Track(x any, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live == nil {
		l.live = map[any]string{}
	}
	l.live[x] = what
}

// Untrack records x as closed.
func (l *Leaks) Untrack(x any) {
	l.mu.Lock()
	delete(l.live, x)
	l.mu.Unlock()
}

// Drain forgets everything still open and returns an error naming it (at
// most 8, sorted), prefixed by the backend's name; nil if nothing is open.
func (l *Leaks) Drain(backend string) error {
	l.mu.Lock()
	leaks := make([]string, 0, len(l.live))
	for _, what := range l.live {
		leaks = append(leaks, what)
	}
	clear(l.live)
	l.mu.Unlock()
	if len(leaks) == 0 {
		return nil
	}
	slices.Sort(leaks)
	shown := leaks[:min(len(leaks), 8)]
	more := ""
	if len(leaks) > len(shown) {
		more = fmt.Sprintf(", and %d more", len(leaks)-len(shown))
	}
	return fmt.Errorf("%s: closed with %d buffers or programs still open: %s%s",
		backend, len(leaks), strings.Join(shown, "; "), more)
}
