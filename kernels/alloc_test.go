package kernels

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAllocPacked checks that the packed-weight buffers are zeroed and of
// the asked size, and that advising huge pages takes any slice: shorter
// than a huge page, unaligned at either end, empty.
func TestAllocPacked(t *testing.T) {
	for _, n := range []int{0, 1, hugePage - 1, 2 * hugePage, 5*hugePage + 123} {
		b := allocPacked(n)
		require.Len(t, b, n)
		for i, v := range b {
			if v != 0 {
				t.Fatalf("allocPacked(%d)[%d] = %d", n, i, v)
			}
		}
	}
	b := make([]byte, 3*hugePage)
	for _, s := range [][]byte{b[:0], b[1:100], b[7 : 2*hugePage+7], b[hugePage-1:]} {
		adviseHuge(s)
	}
}
