package sample

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidOption is wrapped by every error Options.Validate and New return
// for a bad setting; the message names the field.
var ErrInvalidOption = errors.New("sample: invalid option")

// Options configures a Sampler (and, through Stop, a Stopper). The zero value
// is valid and means greedy decoding with nothing else enabled: every
// setting's zero value either is its "off" value or is documented as meaning
// "off".
type Options struct {
	// Temperature divides the logits of the surviving candidates before the
	// final softmax. 0 means greedy: the highest logit wins, ties go to the
	// lowest token id, and the random number generator is not used. Must be
	// finite and >= 0.
	Temperature float32

	// TopK keeps the K highest-logit tokens (ties broken towards the lower
	// id). 0 turns it off. Must be >= 0.
	TopK int

	// TopP keeps the smallest set of highest-probability tokens whose
	// probabilities (softmax at temperature 1, as in llama.cpp) sum to at
	// least TopP. 1 turns it off; so does 0, the zero value (callers that
	// want top_p=0 to mean greedy must say Temperature 0). Must be in [0, 1].
	TopP float32

	// MinP keeps the tokens whose probability is at least MinP times the
	// top token's probability (at temperature 1, as in llama.cpp). 0 turns
	// it off. Must be in [0, 1].
	MinP float32

	// RepeatPenalty (llama.cpp semantics) applies to every token that occurs
	// in the penalty window: a positive logit is divided by it, a zero or
	// negative logit multiplied by it. 1 turns it off; so does 0, the zero
	// value. Must be finite and >= 0.
	RepeatPenalty float32

	// PresencePenalty (OpenAI semantics) is subtracted once from the logit of
	// every token that occurs in the penalty window. Must be in [-2, 2].
	PresencePenalty float32

	// FrequencyPenalty (OpenAI semantics) is subtracted from a token's logit
	// once per occurrence in the penalty window. Must be in [-2, 2].
	FrequencyPenalty float32

	// PenaltyLastN is how many of the most recent history tokens the
	// penalties look at. 0 means all of the history passed to Sample and -1
	// means the context; since the history a caller passes is the context,
	// both mean the whole history slice. (llama.cpp uses 0 for "penalties
	// off"; here the penalties are off when RepeatPenalty is 0 or 1 and both
	// OpenAI penalties are 0.) Must be >= -1.
	PenaltyLastN int

	// LogitBias is added to the named tokens' logits before anything else.
	// A bias of -Inf bans the token. Values must be finite or -Inf; keys must
	// be token ids in [0, vocab), which New checks.
	LogitBias map[int32]float32

	// Seed seeds the Sampler's random number generator (PCG). Equal seeds give
	// equal token streams for equal inputs; callers that want variety pick a
	// random seed themselves.
	Seed uint64

	// MaxTokens is the most tokens a generation may produce; 0 means no limit.
	// The Sampler does not enforce it: it is here so that one value carries a
	// request's whole sampling configuration. Must be >= 0.
	MaxTokens int

	// Stop lists stop sequences matched on the generated text (see Stopper).
	// Each must be non-empty.
	Stop []string
}

// Validate reports the first setting that is out of range, NaN or infinite,
// as an error wrapping ErrInvalidOption that names the field.
func (o Options) Validate() error {
	if err := checkFloat("Temperature", o.Temperature, 0, math.MaxFloat32); err != nil {
		return err
	}
	if o.TopK < 0 {
		return fmt.Errorf("%w: TopK %d is negative", ErrInvalidOption, o.TopK)
	}
	if err := checkFloat("TopP", o.TopP, 0, 1); err != nil {
		return err
	}
	if err := checkFloat("MinP", o.MinP, 0, 1); err != nil {
		return err
	}
	if err := checkFloat("RepeatPenalty", o.RepeatPenalty, 0, math.MaxFloat32); err != nil {
		return err
	}
	if err := checkFloat("PresencePenalty", o.PresencePenalty, -2, 2); err != nil {
		return err
	}
	if err := checkFloat("FrequencyPenalty", o.FrequencyPenalty, -2, 2); err != nil {
		return err
	}
	if o.PenaltyLastN < -1 {
		return fmt.Errorf("%w: PenaltyLastN %d is below -1", ErrInvalidOption, o.PenaltyLastN)
	}
	for id, b := range o.LogitBias {
		if id < 0 {
			return fmt.Errorf("%w: LogitBias token id %d is negative", ErrInvalidOption, id)
		}
		if b != b || math.IsInf(float64(b), 1) {
			return fmt.Errorf("%w: LogitBias[%d] is %v (want finite or -Inf)", ErrInvalidOption, id, b)
		}
	}
	if o.MaxTokens < 0 {
		return fmt.Errorf("%w: MaxTokens %d is negative", ErrInvalidOption, o.MaxTokens)
	}
	for i, s := range o.Stop {
		if s == "" {
			return fmt.Errorf("%w: Stop[%d] is empty", ErrInvalidOption, i)
		}
	}
	return nil
}

// checkFloat reports v outside [lo, hi], including NaN and infinities; hi =
// math.MaxFloat32 means no upper bound.
func checkFloat(field string, v, lo, hi float32) error {
	if v != v || math.IsInf(float64(v), 0) {
		return fmt.Errorf("%w: %s is %v (want a finite number)", ErrInvalidOption, field, v)
	}
	if v < lo && hi == math.MaxFloat32 {
		return fmt.Errorf("%w: %s %v is below %v", ErrInvalidOption, field, v, lo)
	}
	if v < lo || v > hi {
		return fmt.Errorf("%w: %s %v not in [%v, %v]", ErrInvalidOption, field, v, lo, hi)
	}
	return nil
}
