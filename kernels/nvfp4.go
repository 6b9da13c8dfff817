package kernels

import (
	"math"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// NVFP4 weights run on the int8 path (act_int8.go): nibbles map to
// 2·E2M1 + 12 through fp4Lut, the E4M3 block scale bytes are stored as
// they are (scaleE4, 9 bytes per 16 weights as in the file; their value
// is halved for the doubled codes, exact; NaN codes and codes with the
// sign bit set are NaN), and the tensor scale multiplies the finished
// outputs.
var nvfp4Int8 = newInt8Format(int8Format{
	t:        format.NVFP4,
	nibbles:  true,
	scaleE4:  true,
	order:    orderNV,
	spc:      8,
	off:      12,
	hdrBytes: 1,
	lut:      fp4Lut,
	scale: func(hdr []byte) float32 {
		if hdr[0]&0x80 != 0 || hdr[0] == 0x7F {
			return float32(math.NaN())
		}
		return format.E4M3ToFloat32(hdr[0]) / 2
	},
})

func init() { registerInt8(nvfp4Int8) }
