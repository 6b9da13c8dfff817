package kernels

import (
	"math"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// MXFP4 weights run on the int8 path (act_int8.go): nibbles map to
// 2·E2M1 + 12 through fp4Lut, and the E8M0 block scale byte e is stored as
// it is (scale8), one byte per 32 weights as in the file. Its value is
// 2^(e-128) (halved for the doubled codes; exact; 0xFF is NaN).
var mxfp4Int8 = newInt8Format(int8Format{
	t:        format.MXFP4,
	nibbles:  true,
	scale8:   true,
	order:    orderMX,
	spc:      4,
	off:      12,
	hdrBytes: 1,
	lut:      fp4Lut,
	scale: func(hdr []byte) float32 {
		if hdr[0] == 0xFF {
			return float32(math.NaN())
		}
		return format.E8M0ToFloat32(hdr[0]) / 2
	},
})

func init() { registerInt8(mxfp4Int8) }
