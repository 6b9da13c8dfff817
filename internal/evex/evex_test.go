package evex_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/internal/evex"
)

// The expected bytes were produced by GNU as 2.40 from the Intel-syntax
// form in the second column (as -o t.o t.s; objdump -d t.o).
func TestEncodeMatchesGNUAs(t *testing.T) {
	tests := []struct {
		goSyntax, intel, bytes string
	}{
		{"VDPBF16PS Z2, Z1, Z0", "vdpbf16ps zmm0, zmm1, zmm2", "62 f2 76 48 52 c2"},
		{"VDPBF16PS Z31, Z30, Z29", "vdpbf16ps zmm29, zmm30, zmm31", "62 02 0e 40 52 ef"},
		{"VDPBF16PS Z8, Z17, Z3", "vdpbf16ps zmm3, zmm17, zmm8", "62 d2 76 40 52 d8"},
		{"VDPBF16PS Z20, Z9, Z16", "vdpbf16ps zmm16, zmm9, zmm20", "62 a2 36 48 52 c4"},
		{"VDPBF16PS Z2, Z1, K1, Z0", "vdpbf16ps zmm0{k1}, zmm1, zmm2", "62 f2 76 49 52 c2"},
		{"VDPBF16PS.Z Z2, Z1, K7, Z0", "vdpbf16ps zmm0{k7}{z}, zmm1, zmm2", "62 f2 76 cf 52 c2"},
		{"VDPBF16PS Y2, Y1, Y0", "vdpbf16ps ymm0, ymm1, ymm2", "62 f2 76 28 52 c2"},
		{"VDPBF16PS X12, X11, X10", "vdpbf16ps xmm10, xmm11, xmm12", "62 52 26 08 52 d4"},
		{"VDPBF16PS (SI), Z1, Z0", "vdpbf16ps zmm0, zmm1, [rsi]", "62 f2 76 48 52 06"},
		{"VDPBF16PS 64(SI), Z1, Z0", "vdpbf16ps zmm0, zmm1, [rsi+64]", "62 f2 76 48 52 46 01"},
		{"VDPBF16PS -8192(SI), Z1, Z0", "vdpbf16ps zmm0, zmm1, [rsi-8192]", "62 f2 76 48 52 46 80"},
		{"VDPBF16PS 8128(R9), Z1, Z0", "vdpbf16ps zmm0, zmm1, [r9+8128]", "62 d2 76 48 52 41 7f"},
		{"VDPBF16PS 8192(R9), Z1, Z0", "vdpbf16ps zmm0, zmm1, [r9+8192]", "62 d2 76 48 52 81 00 20 00 00"},
		{"VDPBF16PS 4(SI), Z1, Z0", "vdpbf16ps zmm0, zmm1, [rsi+4]", "62 f2 76 48 52 86 04 00 00 00"},
		{"VDPBF16PS (SP), Z1, Z0", "vdpbf16ps zmm0, zmm1, [rsp]", "62 f2 76 48 52 04 24"},
		{"VDPBF16PS (R12), Z1, Z0", "vdpbf16ps zmm0, zmm1, [r12]", "62 d2 76 48 52 04 24"},
		{"VDPBF16PS (BP), Z1, Z0", "vdpbf16ps zmm0, zmm1, [rbp]", "62 f2 76 48 52 45 00"},
		{"VDPBF16PS (R13), Z1, Z0", "vdpbf16ps zmm0, zmm1, [r13]", "62 d2 76 48 52 45 00"},
		{"VDPBF16PS 128(SI)(CX*4), Z1, Z0", "vdpbf16ps zmm0, zmm1, [rsi+rcx*4+128]", "62 f2 76 48 52 44 8e 02"},
		{"VDPBF16PS (AX)(R11*8), Z25, Z18", "vdpbf16ps zmm18, zmm25, [rax+r11*8]", "62 a2 36 40 52 14 d8"},
		{"VDPBF16PS (R8)(R12*1), Z1, Z0", "vdpbf16ps zmm0, zmm1, [r8+r12*1]", "62 92 76 48 52 04 20"},
		{"VDPBF16PS.BCST 8(DI), Z1, Z0", "vdpbf16ps zmm0, zmm1, dword bcst [rdi+8]", "62 f2 76 58 52 47 02"},
		{"VDPBF16PS.BCST 2(DI), Z1, Z0", "vdpbf16ps zmm0, zmm1, dword bcst [rdi+2]", "62 f2 76 58 52 87 02 00 00 00"},
		{"VDPBF16PS 32(DX), Y5, K3, Y14", "vdpbf16ps ymm14{k3}, ymm5, [rdx+32]", "62 72 56 2b 52 72 01"},
		{"VCVTNE2PS2BF16 Z2, Z1, Z0", "vcvtne2ps2bf16 zmm0, zmm1, zmm2", "62 f2 77 48 72 c2"},
		{"VCVTNE2PS2BF16 Z28, Z19, Z10", "vcvtne2ps2bf16 zmm10, zmm19, zmm28", "62 12 67 40 72 d4"},
		{"VCVTNE2PS2BF16 64(AX), Z1, Z0", "vcvtne2ps2bf16 zmm0, zmm1, [rax+64]", "62 f2 77 48 72 40 01"},
		{"VCVTNEPS2BF16 Z1, Y0", "vcvtneps2bf16 ymm0, zmm1", "62 f2 7e 48 72 c1"},
		{"VCVTNEPS2BF16 Z30, Y17", "vcvtneps2bf16 ymm17, zmm30", "62 82 7e 48 72 ce"},
		{"VCVTNEPS2BF16 Y3, X2", "vcvtneps2bf16 xmm2, ymm3", "62 f2 7e 28 72 d3"},
		{"VCVTNEPS2BF16 X3, X2", "vcvtneps2bf16 xmm2, xmm3", "62 f2 7e 08 72 d3"},
		{"VCVTNEPS2BF16 128(SI), Y0", "vcvtneps2bf16 ymm0, zmmword ptr [rsi+128]", "62 f2 7e 48 72 46 02"},
		{"VCVTNEPS2BF16.Z Z1, K2, Y0", "vcvtneps2bf16 ymm0{k2}{z}, zmm1", "62 f2 7e ca 72 c1"},
	}
	for _, tt := range tests {
		t.Run(tt.goSyntax, func(t *testing.T) {
			want, err := hex.DecodeString(strings.ReplaceAll(tt.bytes, " ", ""))
			require.NoError(t, err)
			got, err := evex.Encode(tt.goSyntax)
			require.NoError(t, err, "intel: %s", tt.intel)
			assert.Equal(t, want, got, "intel: %s", tt.intel)
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct{ name, inst string }{
		{"unknown op", "VFMADD231PS Z2, Z1, Z0"},
		{"too few operands", "VDPBF16PS Z1, Z0"},
		{"too many operands", "VDPBF16PS Z3, Z2, Z1, Z0"},
		{"register out of range", "VDPBF16PS Z32, Z1, Z0"},
		{"mask out of range", "VDPBF16PS Z2, Z1, K8, Z0"},
		{"K0 as write mask", "VDPBF16PS Z2, Z1, K0, Z0"},
		{"zeroing without mask", "VDPBF16PS.Z Z2, Z1, Z0"},
		{"broadcast from register", "VDPBF16PS.BCST Z2, Z1, Z0"},
		{"mixed widths", "VDPBF16PS Y2, Z1, Z0"},
		{"memory destination", "VDPBF16PS Z2, Z1, (SI)"},
		{"bad suffix", "VDPBF16PS.Q Z2, Z1, Z0"},
		{"bad base", "VDPBF16PS (XX), Z1, Z0"},
		{"SP index", "VDPBF16PS (AX)(SP*2), Z1, Z0"},
		{"bad scale", "VDPBF16PS (AX)(CX*3), Z1, Z0"},
		{"missing scale", "VDPBF16PS (AX)(CX), Z1, Z0"},
		{"bad displacement", "VDPBF16PS x(AX), Z1, Z0"},
		{"narrowing width", "VCVTNEPS2BF16 Z1, Z0"},
		{"empty operand", "VDPBF16PS , Z1, Z0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := evex.Encode(tt.inst)
			assert.ErrorIs(t, err, evex.ErrSyntax)
		})
	}
}

func TestLinesAndCheckAsm(t *testing.T) {
	l, err := evex.Lines("VDPBF16PS Z2, Z1, Z0")
	require.NoError(t, err)
	assert.Equal(t, "\t// EVEX: VDPBF16PS Z2, Z1, Z0\n\tBYTE $0x62; BYTE $0xf2; BYTE $0x76; BYTE $0x48; BYTE $0x52; BYTE $0xc2\n", l)

	l2, err := evex.Lines("VCVTNEPS2BF16 Z1, Y0")
	require.NoError(t, err)
	src := "TEXT ·f(SB), 0, $0\n" + l + "\tVZEROUPPER\n" + l2 + "\tRET\n"
	n, err := evex.CheckAsm([]byte(src))
	require.NoError(t, err)
	assert.Equal(t, 2, n)

	bad := strings.Replace(src, "$0xc2", "$0xc3", 1)
	_, err = evex.CheckAsm([]byte(bad))
	assert.ErrorContains(t, err, "VDPBF16PS Z2, Z1, Z0")

	_, err = evex.CheckAsm([]byte("\t// EVEX: VDPBF16PS Z2, Z1, Z0\n"))
	assert.ErrorContains(t, err, "no BYTE line")

	_, err = evex.CheckAsm([]byte("\t// EVEX: VDPBF16PS Z2, Z1\n\tBYTE $0x62\n"))
	assert.ErrorIs(t, err, evex.ErrSyntax)
}

func TestOpsAllEncode(t *testing.T) {
	for _, op := range evex.Ops() {
		inst := op + " Z2, Z1, Z0"
		if op == "VCVTNEPS2BF16" {
			inst = op + " Z1, Y0"
		}
		code, err := evex.Encode(inst)
		require.NoError(t, err, inst)
		assert.Len(t, code, 6, inst)
		assert.Equal(t, byte(0x62), code[0], inst)
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("VDPBF16PS Z2, Z1, Z0")
	f.Add("VDPBF16PS.BCST 8(DI), Z1, K1, Z0")
	f.Add("VCVTNEPS2BF16 128(SI)(CX*8), Y0")
	f.Add("VDPBF16PS (AX)(")
	f.Fuzz(func(t *testing.T, inst string) {
		code, err := evex.Encode(inst)
		if err != nil {
			assert.ErrorIs(t, err, evex.ErrSyntax)
			return
		}
		assert.GreaterOrEqual(t, len(code), 6)
		assert.Equal(t, byte(0x62), code[0])
	})
}
