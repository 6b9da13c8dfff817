package kernels

import "github.com/mnemo-ai/mnemo/kernels/format"

// Q8_0 weights run on the int8 path (act_int8.go): the int8 values are kept
// signed in the packed layout (the AVX-512 kernel flips their top bit to get
// w+128), the f16 d is kept as it is.
var q80Int8 = newInt8Format(int8Format{
	t:        format.Q8_0,
	order:    orderMX,
	spc:      4,
	off:      128,
	hdrBytes: 2,
	scaleF16: true,
	scale:    f16Scale,
})

func init() { registerInt8(q80Int8) }
