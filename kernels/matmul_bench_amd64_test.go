//go:build amd64 && gc && !noasm

package kernels

func init() {
	mmRoof = func(impl *Impl, path Path) (func(int), float64) {
		switch {
		case impl.Tier == AVX512 && path == PathBF16Dot:
			return roofBF16AVX512, 1536
		case impl.Tier == AVX512 && path == PathF32FMA:
			return roofFMAAVX512, 768
		case impl.Tier == AVX2 && path == PathF32FMA:
			return roofFMAAVX2, 192
		}
		return nil, 0
	}
	if supported(allImpls[AVX512]) {
		mmStream = func(b []byte) uint64 {
			if len(b) < 256 {
				return 0
			}
			return readStreamAVX512(&b[0], len(b)/256)
		}
	}
}
