package kernels

// The packed layout shared by the formats: rows are taken in groups of
// `group` rows; each row's byte stream (padded to rowBytes) is cut into
// chunks of `chunk` bytes, and a group stores chunk 0 of each of its rows,
// then chunk 1 of each, and so on. A kernel computing a group of outputs
// therefore reads one linear stream, and each load of `chunk` bytes feeds one
// row's accumulator. Rows past N in the last group are zero.
//
//	offset(row i, chunk c) = ((i/group)*chunks + c)*group*chunk + (i%group)*chunk
//	chunks = rowBytes / chunk
type layout struct {
	group    int // rows per group
	chunk    int // bytes per chunk
	rowBytes int // padded bytes per row, a multiple of chunk
}

// groupBytes is the size of one group of rows.
func (l layout) groupBytes() int { return l.group * l.rowBytes }

// offset returns the byte offset of chunk c of row i.
func (l layout) offset(i, c int) int {
	chunks := l.rowBytes / l.chunk
	return ((i/l.group)*chunks+c)*l.group*l.chunk + (i%l.group)*l.chunk
}

// interleave packs n rows, row i being src(i) (at most rowBytes bytes; the
// rest is zero), into a new buffer of np = ceil(n/group)*group rows.
func (l layout) interleave(n int, src func(i int) []byte) (data []byte, np int) {
	np = (n + l.group - 1) / l.group * l.group
	data = allocPacked(np * l.rowBytes)
	chunks := l.rowBytes / l.chunk
	for i := range n {
		row := src(i)
		for c := range chunks {
			lo := c * l.chunk
			if lo >= len(row) {
				break
			}
			copy(data[l.offset(i, c):l.offset(i, c)+l.chunk], row[lo:min(len(row), lo+l.chunk)])
		}
	}
	return data, np
}

// gather copies row i's bytes back out of the packed data into dst
// (len rowBytes).
func (l layout) gather(data []byte, i int, dst []byte) {
	for c := range l.rowBytes / l.chunk {
		copy(dst[c*l.chunk:(c+1)*l.chunk], data[l.offset(i, c):])
	}
}

// roundUp rounds n up to a multiple of m.
func roundUp(n, m int) int { return (n + m - 1) / m * m }
