package kernels

import "github.com/mnemo-ai/mnemo/kernels/format"

// Q4_0 weights run on the int8 path (act_int8.go): a nibble is its own
// unsigned weight (value nibble-8, offset 8), the f16 d is kept as it is.
var q40Int8 = newInt8Format(int8Format{
	t:        format.Q4_0,
	nibbles:  true,
	order:    orderMX,
	spc:      4,
	off:      8,
	hdrBytes: 2,
	scaleF16: true,
	lut:      [16]uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	scale:    f16Scale,
})

func init() { registerInt8(q40Int8) }
