package sample

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		name  string
		opts  Options
		field string // "" means valid
	}{
		{"zero value", Options{}, ""},
		{"typical", Options{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1,
			PresencePenalty: -2, FrequencyPenalty: 2, PenaltyLastN: 64, MaxTokens: 10, Stop: []string{"\n\n"},
			LogitBias: map[int32]float32{0: float32(math.Inf(-1)), 5: -100, 7: 3}}, ""},
		{"context window", Options{PenaltyLastN: -1}, ""},
		{"temperature NaN", Options{Temperature: nan}, "Temperature"},
		{"temperature negative", Options{Temperature: -0.1}, "Temperature"},
		{"temperature inf", Options{Temperature: inf}, "Temperature"},
		{"top-k negative", Options{TopK: -1}, "TopK"},
		{"top-p above 1", Options{TopP: 1.01}, "TopP"},
		{"top-p negative", Options{TopP: -0.5}, "TopP"},
		{"top-p NaN", Options{TopP: nan}, "TopP"},
		{"min-p above 1", Options{MinP: 2}, "MinP"},
		{"min-p NaN", Options{MinP: nan}, "MinP"},
		{"repeat negative", Options{RepeatPenalty: -1}, "RepeatPenalty"},
		{"repeat inf", Options{RepeatPenalty: inf}, "RepeatPenalty"},
		{"presence out of range", Options{PresencePenalty: 2.5}, "PresencePenalty"},
		{"frequency out of range", Options{FrequencyPenalty: -3}, "FrequencyPenalty"},
		{"frequency NaN", Options{FrequencyPenalty: nan}, "FrequencyPenalty"},
		{"last-n below -1", Options{PenaltyLastN: -2}, "PenaltyLastN"},
		{"bias NaN", Options{LogitBias: map[int32]float32{3: nan}}, "LogitBias[3]"},
		{"bias +inf", Options{LogitBias: map[int32]float32{3: inf}}, "LogitBias[3]"},
		{"bias negative id", Options{LogitBias: map[int32]float32{-4: 1}}, "LogitBias token id -4"},
		{"max tokens negative", Options{MaxTokens: -1}, "MaxTokens"},
		{"empty stop", Options{Stop: []string{"x", ""}}, "Stop[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.field == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidOption)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		vocab int
		want  string
	}{
		{"zero vocabulary", Options{}, 0, "vocabulary size 0"},
		{"negative vocabulary", Options{}, -3, "vocabulary size -3"},
		{"invalid option", Options{TopK: -1}, 10, "TopK"},
		{"bias id beyond vocabulary", Options{LogitBias: map[int32]float32{10: 1}}, 10, "LogitBias token id 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts, tt.vocab)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.ErrorIs(t, err, ErrInvalidOption)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
