// Package evex encodes the AVX-512 instructions that Go's assembler does not
// know (the AVX512_BF16 group: VDPBF16PS, VCVTNE2PS2BF16, VCVTNEPS2BF16) as
// machine code, for use as BYTE sequences in Go assembly.
//
// Instructions are written in Go assembler syntax, sources first and
// destination last, with an optional write mask just before the destination
// and a ".Z" suffix for zeroing:
//
//	VDPBF16PS Z2, Z1, Z0           // Z0 += bf16 dot(Z1, Z2)
//	VDPBF16PS 64(SI), Z1, K1, Z0   // memory source, merge mask K1
//	VDPBF16PS.Z (SI)(CX*4), Y1, K2, Y0
//	VDPBF16PS.BCST 8(DI), Z1, Z0   // 32-bit broadcast source
//	VCVTNEPS2BF16 Z1, Y0           // 16 fp32 -> 16 bf16
//
// Every assembly file that embeds such bytes names the instruction in a
// comment of the form
//
//	// EVEX: VDPBF16PS Z2, Z1, Z0
//	BYTE $0x62; BYTE $0xf2; ...
//
// and CheckAsm verifies each of those pairs, so a test can hold the committed
// bytes to the encoder. The evexgen command (internal/evex/evexgen) prints the
// lines for an instruction.
package evex

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSyntax reports an instruction this package cannot parse or encode.
var ErrSyntax = errors.New("evex: bad instruction")

type opInfo struct {
	pp, opc byte
	// unary ops have no vvvv source (VCVTNEPS2BF16) and a half-width
	// destination.
	unary bool
}

// ops are EVEX.F3/F2.0F38.W0 instructions from the AVX512_BF16 extension.
var ops = map[string]opInfo{
	"VDPBF16PS":      {pp: 0b10, opc: 0x52},              // EVEX.F3.0F38.W0 52 /r
	"VCVTNE2PS2BF16": {pp: 0b11, opc: 0x72},              // EVEX.F2.0F38.W0 72 /r
	"VCVTNEPS2BF16":  {pp: 0b10, opc: 0x72, unary: true}, // EVEX.F3.0F38.W0 72 /r
}

// Ops returns the instruction names Encode knows.
func Ops() []string {
	return []string{"VCVTNE2PS2BF16", "VCVTNEPS2BF16", "VDPBF16PS"}
}

// operand is a parsed register or memory operand.
type operand struct {
	kind  byte // 'X', 'Y', 'Z' vector, 'K' mask, 'M' memory
	reg   int  // register number for vector/mask
	base  int  // memory base register (0..15)
	index int  // memory index register, -1 if none
	scale int  // 1, 2, 4, 8
	disp  int64
}

var gpr = map[string]int{
	"AX": 0, "CX": 1, "DX": 2, "BX": 3, "SP": 4, "BP": 5, "SI": 6, "DI": 7,
	"R8": 8, "R9": 9, "R10": 10, "R11": 11, "R12": 12, "R13": 13, "R14": 14, "R15": 15,
}

func parseOperand(s string) (operand, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return operand{}, fmt.Errorf("%w: empty operand", ErrSyntax)
	}
	switch s[0] {
	case 'X', 'Y', 'Z', 'K':
		n, err := strconv.Atoi(s[1:])
		if err == nil {
			hi := 31
			if s[0] == 'K' {
				hi = 7
			}
			if n < 0 || n > hi {
				return operand{}, fmt.Errorf("%w: register %s out of range", ErrSyntax, s)
			}
			return operand{kind: s[0], reg: n}, nil
		}
	}
	// Memory: [disp](BASE)[(INDEX*SCALE)]
	op := operand{kind: 'M', index: -1, scale: 1}
	i := strings.IndexByte(s, '(')
	if i < 0 || !strings.HasSuffix(s, ")") {
		return operand{}, fmt.Errorf("%w: operand %q", ErrSyntax, s)
	}
	if i > 0 {
		d, err := strconv.ParseInt(s[:i], 0, 32)
		if err != nil {
			return operand{}, fmt.Errorf("%w: displacement in %q", ErrSyntax, s)
		}
		op.disp = d
	}
	rest := s[i:]
	j := strings.IndexByte(rest, ')')
	b, ok := gpr[rest[1:j]]
	if !ok {
		return operand{}, fmt.Errorf("%w: base register in %q", ErrSyntax, s)
	}
	op.base = b
	rest = rest[j+1:]
	if rest != "" {
		if rest[0] != '(' || !strings.HasSuffix(rest, ")") {
			return operand{}, fmt.Errorf("%w: index in %q", ErrSyntax, s)
		}
		name, sc, found := strings.Cut(rest[1:len(rest)-1], "*")
		if !found {
			return operand{}, fmt.Errorf("%w: index in %q needs a scale", ErrSyntax, s)
		}
		x, ok := gpr[name]
		if !ok || x == 4 {
			return operand{}, fmt.Errorf("%w: index register in %q", ErrSyntax, s)
		}
		switch sc {
		case "1", "2", "4", "8":
			op.scale = int(sc[0] - '0')
		default:
			return operand{}, fmt.Errorf("%w: scale in %q", ErrSyntax, s)
		}
		op.index = x
	}
	return op, nil
}

// Encode returns the machine code for one instruction in Go assembler
// syntax (see the package comment).
func Encode(inst string) ([]byte, error) {
	inst = strings.TrimSpace(inst)
	mnem, args, _ := strings.Cut(inst, " ")
	name, suffix, _ := strings.Cut(mnem, ".")
	info, ok := ops[name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown op %q", ErrSyntax, name)
	}
	zero, bcst := false, false
	for _, s := range strings.Split(suffix, ".") {
		switch s {
		case "":
		case "Z":
			zero = true
		case "BCST":
			bcst = true
		default:
			return nil, fmt.Errorf("%w: suffix %q in %q", ErrSyntax, s, inst)
		}
	}
	var opnds []operand
	for _, a := range strings.Split(args, ",") {
		o, err := parseOperand(a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", inst, err)
		}
		opnds = append(opnds, o)
	}
	mask := 0
	if n := len(opnds); n >= 2 && opnds[n-2].kind == 'K' {
		mask = opnds[n-2].reg
		if mask == 0 {
			return nil, fmt.Errorf("%w: K0 cannot be a write mask in %q", ErrSyntax, inst)
		}
		opnds = append(opnds[:n-2], opnds[n-1])
	}
	if zero && mask == 0 {
		return nil, fmt.Errorf("%w: zeroing needs a write mask in %q", ErrSyntax, inst)
	}
	want := 3
	if info.unary {
		want = 2
	}
	if len(opnds) != want {
		return nil, fmt.Errorf("%w: %q needs %d operands", ErrSyntax, inst, want)
	}
	src2, dst := opnds[0], opnds[len(opnds)-1]
	src1 := operand{kind: dst.kind} // vvvv unused: encodes as 1111, V' = 1
	if !info.unary {
		src1 = opnds[1]
	}
	for _, o := range []operand{src1, dst} {
		if o.kind == 'M' || o.kind == 'K' {
			return nil, fmt.Errorf("%w: operand kinds in %q", ErrSyntax, inst)
		}
	}
	if src2.kind == 'K' {
		return nil, fmt.Errorf("%w: operand kinds in %q", ErrSyntax, inst)
	}
	if bcst && src2.kind != 'M' {
		return nil, fmt.Errorf("%w: broadcast needs a memory source in %q", ErrSyntax, inst)
	}

	// Vector length comes from the wide operands; for the unary narrowing
	// convert the destination is half the source width.
	vl := dst.kind
	if info.unary {
		switch dst.kind {
		case 'Y':
			vl = 'Z'
		case 'X':
			vl = 'Y' // from a YMM source, or XMM (checked below)
		default:
			return nil, fmt.Errorf("%w: narrowing destination must be X or Y in %q", ErrSyntax, inst)
		}
		if src2.kind != 'M' {
			if src2.kind != vl && !(dst.kind == 'X' && src2.kind == 'X') {
				return nil, fmt.Errorf("%w: register widths in %q", ErrSyntax, inst)
			}
			vl = src2.kind
		} else if dst.kind == 'X' {
			return nil, fmt.Errorf("%w: memory source width is ambiguous in %q", ErrSyntax, inst)
		}
	} else {
		if src1.kind != dst.kind || (src2.kind != 'M' && src2.kind != dst.kind) {
			return nil, fmt.Errorf("%w: register widths in %q", ErrSyntax, inst)
		}
	}
	ll := map[byte]byte{'X': 0, 'Y': 1, 'Z': 2}[vl]
	vlBytes := map[byte]int64{'X': 16, 'Y': 32, 'Z': 64}[vl]

	inv := func(b int) byte { return byte(^b & 1) }
	v := 0
	if !info.unary {
		v = src1.reg
	}
	// P0: R X B R' 0 0 m m (mm = 10: 0F38).
	var x, b byte = 1, 1
	if src2.kind == 'M' {
		b = inv(src2.base >> 3)
		if src2.index >= 0 {
			x = inv(src2.index >> 3)
		}
	} else {
		b = inv(src2.reg >> 3)
		x = inv(src2.reg >> 4)
	}
	p0 := inv(dst.reg>>3)<<7 | x<<6 | b<<5 | inv(dst.reg>>4)<<4 | 0b10
	// P1: W vvvv 1 pp.
	vvvv := byte(^v & 15)
	p1 := vvvv<<3 | 1<<2 | info.pp
	// P2: z L'L b V' aaa.
	var z, bb byte
	if zero {
		z = 1
	}
	if bcst {
		bb = 1
	}
	p2 := z<<7 | ll<<5 | bb<<4 | inv(v>>4)<<3 | byte(mask)
	out := []byte{0x62, p0, p1, p2, info.opc}
	reg := byte(dst.reg & 7)
	if src2.kind != 'M' {
		return append(out, 0b11<<6|reg<<3|byte(src2.reg&7)), nil
	}
	// Memory operand: ModRM, optional SIB, displacement with EVEX disp8*N
	// compression (N = vector bytes, or 4 for a 32-bit broadcast).
	n := vlBytes
	if bcst {
		n = 4
	}
	m := src2
	var mod byte
	var disp []byte
	switch {
	case m.disp == 0 && m.base&7 != 5: // BP/R13 need an explicit displacement
		mod = 0
	case m.disp%n == 0 && m.disp/n >= -128 && m.disp/n <= 127:
		mod = 1
		disp = []byte{byte(int8(m.disp / n))}
	default:
		mod = 2
		d := uint32(int32(m.disp))
		disp = []byte{byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24)}
	}
	if m.index < 0 && m.base&7 != 4 {
		out = append(out, mod<<6|reg<<3|byte(m.base&7))
	} else {
		idx := byte(4) // none
		if m.index >= 0 {
			idx = byte(m.index & 7)
		}
		ss := map[int]byte{1: 0, 2: 1, 4: 2, 8: 3}[m.scale]
		out = append(out, mod<<6|reg<<3|4, ss<<6|idx<<3|byte(m.base&7))
	}
	return append(out, disp...), nil
}

// Asm returns code as one line of Go assembler BYTE directives
// ("BYTE $0x62; BYTE $0xf2; ...").
func Asm(code []byte) string {
	var sb strings.Builder
	for i, c := range code {
		if i > 0 {
			sb.WriteString("; ")
		}
		fmt.Fprintf(&sb, "BYTE $0x%02x", c)
	}
	return sb.String()
}

// Lines returns the two assembly lines for inst: the "// EVEX: inst"
// comment CheckAsm looks for, and the BYTE directives, both indented by a
// tab.
func Lines(inst string) (string, error) {
	code, err := Encode(inst)
	if err != nil {
		return "", err
	}
	return "\t// EVEX: " + strings.TrimSpace(inst) + "\n\t" + Asm(code) + "\n", nil
}

// CheckAsm verifies every "// EVEX: inst" comment in a Go assembly source:
// the next line must hold exactly the BYTE directives Encode produces for
// inst. It returns the number of instructions checked.
func CheckAsm(src []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(src))
	line, n := 0, 0
	pending := ""
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if pending != "" {
			code, err := Encode(pending)
			if err != nil {
				return n, fmt.Errorf("line %d: %w", line-1, err)
			}
			if want := Asm(code); t != want {
				return n, fmt.Errorf("line %d: bytes for %q are %q, want %q", line, pending, t, want)
			}
			n++
			pending = ""
			continue
		}
		if inst, ok := strings.CutPrefix(t, "// EVEX:"); ok {
			pending = strings.TrimSpace(inst)
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("scan assembly: %w", err)
	}
	if pending != "" {
		return n, fmt.Errorf("line %d: %q has no BYTE line after it", line, pending)
	}
	return n, nil
}
