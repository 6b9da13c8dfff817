package kernels

// hugePage is the transparent huge page size the packed weights are
// advised to use.
const hugePage = 2 << 20

// allocPacked returns n zeroed bytes for packed weights. On Linux, the huge
// pages inside them are advised to be transparent huge pages (adviseHuge):
// a decode step streams every matrix once, and with 4 KB pages each
// kernel's prefetches run into a TLB miss every 4 KB. The MXFP4 one-row
// kernel over 192 MB on Zen 5: 36-39 against 33-35 GB/s on one thread,
// 39-49 against 34-46 on two. Memory the heap has used before keeps its
// small pages, so the advice mostly helps at model load.
func allocPacked(n int) []byte {
	b := make([]byte, n)
	if n >= 2*hugePage {
		adviseHuge(b)
	}
	return b
}
