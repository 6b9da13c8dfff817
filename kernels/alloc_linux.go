package kernels

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks for transparent huge pages on the whole 2 MB pages of b.
// It is advice: where the kernel has them disabled, or b is already
// backed, nothing changes, and an error is ignored for the same reason.
func adviseHuge(b []byte) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := int((hugePage - p%hugePage) % hugePage)
	hi := lo + (len(b)-lo)/hugePage*hugePage
	if hi <= lo {
		return
	}
	_ = unix.Madvise(b[lo:hi], unix.MADV_HUGEPAGE)
}
