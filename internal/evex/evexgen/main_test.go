package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mnemo-ai/mnemo/internal/evex"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no args", nil, 2},
		{"bad instruction", []string{"VDPBF16PS Z1"}, 1},
		{"two instructions", []string{"VDPBF16PS Z2, Z1, Z0", "VCVTNEPS2BF16 Z1, Y0"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			assert.Equal(t, tt.code, run(tt.args, &out, &errb))
			if tt.code != 0 {
				assert.NotEmpty(t, errb.String())
				return
			}
			n, err := evex.CheckAsm(out.Bytes())
			assert.NoError(t, err)
			assert.Equal(t, len(tt.args), n)
		})
	}
}
