// Package sample turns one step's logits into the next token (Sampler) and
// watches streamed text for stop sequences (Stopper).
//
// # The sampling chain
//
// Sampler.Sample runs these stages, in the order of llama.cpp's default
// sampler chain (common_sampler_init: logit-bias, penalties, top-k, top-p,
// min-p, temperature, dist; the stages mnemo does not implement — DRY,
// top-n-sigma, typical-p, XTC — are skipped):
//
//  1. NaN logits count as -Inf; LogitBias is added (-Inf bans a token).
//  2. Penalties over the last PenaltyLastN history tokens: RepeatPenalty
//     (positive logits divided, others multiplied), then FrequencyPenalty ×
//     count + PresencePenalty subtracted.
//  3. Temperature 0: the highest logit wins, ties to the lowest id. Done.
//  4. Top-k, ties broken towards the lower id.
//  5. Top-p, on the softmax at temperature 1.
//  6. Min-p, relative to the top token, at temperature 1.
//  7. Temperature: the survivors' logits are divided by it, then softmax
//     and one uniform draw.
//
// As in llama.cpp, temperature comes after the truncations: it reshapes the
// distribution over the survivors but never changes which tokens survive.
// (Hugging Face transformers and vLLM apply temperature first, so at
// temperatures other than 1 their top-p and min-p sets differ from these.)
// Tokens at -Inf (banned, or NaN) are never drawn. A +Inf logit takes all the
// probability, shared equally with any other +Inf logits.
//
// When nothing is left to draw from — every logit is NaN or -Inf after bias
// and penalties — Sample falls back to the lowest token id that LogitBias does
// not ban (0 if it bans every id): the result is always a valid id and never a
// banned one when any id is allowed.
package sample

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/mnemo-ai/mnemo/kernels"
)

// ErrBadState is wrapped by the error Restore returns for state bytes that are
// truncated, corrupted or of an unknown version.
var ErrBadState = errors.New("sample: bad sampler state")

// pcgStream is the second PCG seed word; the first is Options.Seed.
const pcgStream = 0x9e3779b97f4a7c15

var negInf = float32(math.Inf(-1))

// cand is one surviving token and its current logit.
type cand struct {
	id    int32
	logit float32
}

// Sampler picks tokens from logits for one sequence. Its only state between
// calls is the random number generator, which State and Restore persist; the
// token history the penalties need is passed to each Sample call.
//
// A Sampler is not safe for concurrent use. It allocates its scratch buffers
// on first use and reuses them, so Sample does not allocate in steady state:
// 4 bytes per vocabulary entry when LogitBias or a penalty is set, 4 more
// with a penalty, and 16 more when sampling without top-k. A session that is
// idle can keep just State and build a new Sampler when it resumes.
type Sampler struct {
	opts  Options
	vocab int

	rng rand.PCG

	// biasIDs/biasVals are LogitBias as parallel slices sorted by id, so
	// the per-token path does not range over a map.
	biasIDs  []int32
	biasVals []float32
	// fallback is the token Sample returns when no candidate is left.
	fallback int32

	repeat     float32 // RepeatPenalty with 0 mapped to 1
	topP       float64 // TopP with 0 mapped to 1
	penalties  bool    // any penalty enabled
	invTemp    float64 // 1 / Temperature, 0 when greedy
	logMinP    float64 // ln(MinP), unused when MinP is 0
	topKActive bool    // 0 < TopK < vocab

	// Scratch, allocated lazily and reused.
	buf    []float32 // logits after bias and penalties
	counts []int32   // per-token counts in the penalty window, all 0 between calls
	seen   []int32   // distinct tokens in the penalty window
	cands  []cand
	w      []float64
}

// New returns a Sampler for a vocabulary of vocab tokens. It validates opts
// and checks that every LogitBias key is below vocab.
func New(opts Options, vocab int) (*Sampler, error) {
	if vocab <= 0 || vocab > math.MaxInt32 {
		return nil, fmt.Errorf("%w: vocabulary size %d out of range", ErrInvalidOption, vocab)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Sampler{
		opts:      opts,
		vocab:     vocab,
		rng:       *rand.NewPCG(opts.Seed, pcgStream),
		repeat:    opts.RepeatPenalty,
		topP:      float64(opts.TopP),
		logMinP:   math.Log(float64(opts.MinP)),
		penalties: (opts.RepeatPenalty != 0 && opts.RepeatPenalty != 1) || opts.PresencePenalty != 0 || opts.FrequencyPenalty != 0,
	}
	if s.repeat == 0 {
		s.repeat = 1
	}
	if s.topP == 0 {
		s.topP = 1
	}
	if opts.Temperature > 0 {
		s.invTemp = 1 / float64(opts.Temperature)
	}
	s.topKActive = opts.TopK > 0 && opts.TopK < vocab

	for id := range opts.LogitBias {
		if int(id) >= vocab {
			return nil, fmt.Errorf("%w: LogitBias token id %d not below vocabulary size %d", ErrInvalidOption, id, vocab)
		}
		s.biasIDs = append(s.biasIDs, id)
	}
	slices.Sort(s.biasIDs)
	s.biasVals = make([]float32, len(s.biasIDs))
	for i, id := range s.biasIDs {
		s.biasVals[i] = opts.LogitBias[id]
	}
	for id := int32(0); int(id) < vocab; id++ {
		if b, ok := opts.LogitBias[id]; !ok || !math.IsInf(float64(b), -1) {
			s.fallback = id
			break
		}
	}
	return s, nil
}

// Sample returns the next token for logits (one per vocabulary entry, not
// modified) given the sequence's token history (the context so far, oldest
// first; ids outside the vocabulary are ignored). It follows the chain in the
// package documentation. Unless Temperature is 0 it consumes exactly one
// 64-bit value from the random number generator, whatever the logits.
//
// Sample panics if len(logits) is not the vocabulary size.
func (s *Sampler) Sample(logits []float32, history []int32) int32 {
	if len(logits) != s.vocab {
		panic("sample: logits length does not match the vocabulary size")
	}
	buf := s.prepare(logits, history)
	if s.invTemp == 0 {
		return s.greedy(buf)
	}
	u := s.uniform()

	c, lmax := s.candidates(buf)
	if len(c) == 0 {
		return s.fallback
	}
	// The top token survives every truncation, so lmax stays the maximum.
	if s.topP < 1 {
		c = s.truncateTopP(c, lmax)
	}
	if s.opts.MinP > 0 {
		c = minP(c, lmax, s.logMinP)
	}
	return s.draw(c, lmax, u)
}

// prepare returns the logits after the logit bias and the penalties: the
// caller's slice itself when neither applies, else a copy in the scratch
// buffer. NaN logits are left in place: every later stage only takes logits
// that compare greater than something (v > -Inf at least), which treats NaN
// as -Inf without a separate pass.
func (s *Sampler) prepare(logits []float32, history []int32) []float32 {
	if len(s.biasIDs) == 0 && !s.penalties {
		return logits
	}
	if len(s.buf) != s.vocab {
		s.buf = make([]float32, s.vocab)
	}
	buf := s.buf
	copy(buf, logits)
	for i, id := range s.biasIDs {
		buf[id] = noNaN(buf[id] + s.biasVals[i]) // +Inf + -Inf: the ban wins
	}
	if s.penalties {
		s.penalize(buf, history)
	}
	return buf
}

// penalize applies the repeat, frequency and presence penalties to the
// tokens in the history window.
func (s *Sampler) penalize(buf []float32, history []int32) {
	if n := s.opts.PenaltyLastN; n > 0 && len(history) > n {
		history = history[len(history)-n:]
	}
	if len(s.counts) != s.vocab {
		s.counts = make([]int32, s.vocab)
	}
	counts, seen := s.counts, s.seen[:0]
	for _, t := range history {
		if t < 0 || int(t) >= s.vocab {
			continue
		}
		if counts[t] == 0 {
			seen = append(seen, t)
		}
		counts[t]++
	}
	rp, freq, pres := s.repeat, s.opts.FrequencyPenalty, s.opts.PresencePenalty
	for _, t := range seen {
		n := counts[t]
		counts[t] = 0
		v := buf[t]
		if v <= 0 {
			v *= rp
		} else {
			v /= rp
		}
		v -= float32(n)*freq + pres
		buf[t] = noNaN(v)
	}
	s.seen = seen
}

// greedy returns the lowest id with the highest logit, or the fallback when
// every logit is NaN or -Inf (kernels.Argmax: SIMD where the CPU has it).
func (s *Sampler) greedy(buf []float32) int32 {
	i := kernels.Argmax(buf)
	if i < 0 || buf[i] == negInf {
		return s.fallback
	}
	return int32(i)
}

// candidates returns the tokens that survive top-k (all tokens above -Inf
// when top-k is off; sorted by descending logit then ascending id when it is
// on) and the highest logit among them.
func (s *Sampler) candidates(buf []float32) ([]cand, float32) {
	if s.topKActive {
		if cap(s.cands) < s.opts.TopK {
			s.cands = make([]cand, 0, s.opts.TopK)
		}
		c := topK(buf, s.opts.TopK, s.cands[:0])
		if len(c) == 0 {
			return c, negInf
		}
		return c, c[0].logit
	}
	if cap(s.cands) < s.vocab {
		s.cands = make([]cand, 0, s.vocab)
	}
	c, lmax := s.cands[:0], negInf
	for i, v := range buf {
		if v > negInf { // false for NaN
			c = append(c, cand{int32(i), v})
			if v > lmax {
				lmax = v
			}
		}
	}
	return c, lmax
}

// uniform returns a uniform float64 in [0, 1) from one 64-bit PCG output.
func (s *Sampler) uniform() float64 {
	return float64(s.rng.Uint64()>>11) * 0x1p-53
}

// draw applies the temperature to c (non-empty, all above -Inf, highest
// logit lmax), takes the softmax and returns the token at cumulative
// probability u.
func (s *Sampler) draw(c []cand, lmax float32, u float64) int32 {
	w := s.weights(len(c))
	var total float64
	for i, x := range c {
		w[i] = weight(x.logit, lmax, s.invTemp)
		total += w[i]
	}
	target := u * total
	var cum float64
	for i, wi := range w {
		cum += wi
		if target < cum {
			return c[i].id
		}
	}
	// Rounding left target at or above the sum: take the last token with
	// any weight (the top one always has weight 1).
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] > 0 {
			return c[i].id
		}
	}
	return c[0].id
}

// weights returns the weight scratch buffer with length n.
func (s *Sampler) weights(n int) []float64 {
	if cap(s.w) < n {
		s.w = make([]float64, n, max(n, cap(s.cands)))
	}
	return s.w[:n]
}

// weight is exp((l-lmax)·invTemp), the unnormalised probability of logit l
// when the highest logit is lmax. When lmax is +Inf, the +Inf logits share
// all the weight.
func weight(l, lmax float32, invTemp float64) float64 {
	if math.IsInf(float64(lmax), 1) {
		if l == lmax {
			return 1
		}
		return 0
	}
	return math.Exp((float64(l) - float64(lmax)) * invTemp)
}

// truncateTopP keeps the smallest set of best candidates (by descending
// logit, then ascending id) whose softmax probability at temperature 1
// reaches TopP; as in llama.cpp, the token that crosses TopP is kept. Sorted
// candidates (from top-k) are scanned in order. Unsorted ones are never
// fully sorted: while computing the V exponentials the softmax needs anyway,
// the pass adds each weight into a bucket of width 1/topPBucketScale in
// logit distance from the top, which locates the bucket holding the boundary;
// the candidates up to that bucket are moved to the front and a quickselect
// on probability mass finds the exact boundary among them. The result keeps
// the input's sortedness.
func (s *Sampler) truncateTopP(c []cand, lmax float32) []cand {
	if s.topKActive {
		var total float64
		for _, x := range c {
			total += weight(x.logit, lmax, 1)
		}
		target := s.topP * total
		var cum float64
		for i, x := range c {
			cum += weight(x.logit, lmax, 1)
			if cum >= target {
				return c[:i+1]
			}
		}
		return c // rounding: the whole set falls just short of TopP
	}
	w := s.weights(len(c))
	var total float64
	if math.IsInf(float64(lmax), 1) {
		for i, x := range c {
			w[i] = weight(x.logit, lmax, 1)
			total += w[i]
		}
		return c[:massSelect(c, w, lmax, s.topP*total)]
	}
	var mass [topPBuckets]float64
	top := float64(lmax)
	for i, x := range c {
		d := top - float64(x.logit)
		wi := math.Exp(-d)
		w[i] = wi
		total += wi
		mass[topPBucket(d)] += wi
	}
	target := s.topP * total
	last, acc := topPBuckets-1, 0.0
	for b, m := range mass {
		if acc+m >= target {
			last = b
			break
		}
		acc += m
	}
	n := 0
	for i, x := range c {
		if topPBucket(top-float64(x.logit)) <= last {
			c[i], c[n] = c[n], c[i]
			w[i], w[n] = w[n], w[i]
			n++
		}
	}
	return c[:massSelect(c[:n], w[:n], lmax, target)]
}

// The unsorted top-p stage buckets logits by their distance d below the top
// logit, topPBucketScale buckets per unit, the last bucket taking the rest.
const (
	topPBuckets     = 64
	topPBucketScale = 2
)

// topPBucket returns the bucket for distance d >= 0 below the top logit.
func topPBucket(d float64) int {
	b := d * topPBucketScale
	if b >= topPBuckets-1 {
		return topPBuckets - 1
	}
	return int(b)
}

// massSelect reorders c (with its weights w, computed from lmax at
// temperature 1) so that c[:n] are its n best candidates, for the smallest n
// whose weights sum to at least target, and returns n. c[:n] is not sorted.
func massSelect(c []cand, w []float64, lmax float32, target float64) int {
	lo, hi := 0, len(c)
	var acc float64 // weight of c[:lo], all better than c[lo:hi]
	for rounds := 0; hi-lo > massSelectSmall && rounds < massSelectMaxRounds; rounds++ {
		m, mass := partition(c, w, lo, hi)
		switch {
		case acc+mass >= target:
			hi = m
		case acc+mass+w[m] >= target:
			return m + 1
		default:
			acc += mass + w[m]
			lo = m + 1
		}
	}
	// A small range left (or pivots kept going wrong): sort it and scan.
	// Sorting moves c without w, so the weights are recomputed.
	sortDesc(c[lo:hi])
	for i := lo; i < hi; i++ {
		acc += weight(c[i].logit, lmax, 1)
		if acc >= target {
			return i + 1
		}
	}
	return hi // rounding: the range falls just short of target
}

const (
	massSelectSmall     = 32
	massSelectMaxRounds = 64
)

// partition reorders c[lo:hi] (and w with it) around a median-of-three pivot:
// better candidates first, then the pivot at the returned index m, then the
// worse ones. mass is the weight of c[lo:m].
func partition(c []cand, w []float64, lo, hi int) (m int, mass float64) {
	swap := func(i, j int) {
		c[i], c[j] = c[j], c[i]
		w[i], w[j] = w[j], w[i]
	}
	// Median of three into c[hi-1].
	a, b, z := lo, lo+(hi-lo)/2, hi-1
	if worse(c[a], c[b]) {
		a, b = b, a
	}
	// now c[a] is better than c[b]
	switch {
	case worse(c[z], c[b]):
		swap(b, z) // b is the median
	case worse(c[z], c[a]):
		// z is the median, already in place
	default:
		swap(a, z) // a is the median
	}
	p := c[hi-1]
	m = lo
	for j := lo; j < hi-1; j++ {
		if worse(p, c[j]) {
			swap(j, m)
			mass += w[m]
			m++
		}
	}
	swap(m, hi-1)
	return m, mass
}

// minP keeps, in order, the candidates whose probability is at least MinP
// times the top one's: logit >= lmax + ln(MinP).
func minP(c []cand, lmax float32, logMinP float64) []cand {
	threshold := float64(lmax) + logMinP
	kept := c[:0]
	for _, x := range c {
		if float64(x.logit) >= threshold {
			kept = append(kept, x)
		}
	}
	return kept
}

// noNaN maps NaN to -Inf.
func noNaN(v float32) float32 {
	if v != v {
		return negInf
	}
	return v
}

// State returns the Sampler's random number generator state: a magic, a
// version byte, the 128-bit PCG state and a CRC-32 of the preceding bytes.
// Restore on a Sampler continues the exact token stream from this point.
func (s *Sampler) State() []byte {
	pcg, err := s.rng.MarshalBinary()
	if err != nil || len(pcg) != len(pcgPrefix)+16 {
		panic("sample: unexpected PCG encoding")
	}
	b := make([]byte, 0, stateSize)
	b = append(b, stateMagic...)
	b = append(b, stateVersion)
	b = append(b, pcg[len(pcgPrefix):]...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// Restore replaces the random number generator state with one State
// returned, possibly by another Sampler or process. It checks the length,
// magic, version and checksum and leaves the Sampler unchanged on error.
func (s *Sampler) Restore(state []byte) error {
	if len(state) <= len(stateMagic) {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadState, len(state), stateSize)
	}
	if string(state[:len(stateMagic)]) != stateMagic {
		return fmt.Errorf("%w: bad magic %q", ErrBadState, state[:len(stateMagic)])
	}
	if v := state[len(stateMagic)]; v != stateVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrBadState, v, stateVersion)
	}
	if len(state) != stateSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadState, len(state), stateSize)
	}
	body, sum := state[:stateSize-4], binary.LittleEndian.Uint32(state[stateSize-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrBadState)
	}
	var rng rand.PCG
	pcg := append([]byte(pcgPrefix), body[len(stateMagic)+1:]...)
	if err := rng.UnmarshalBinary(pcg); err != nil {
		return fmt.Errorf("%w: %w", ErrBadState, err)
	}
	s.rng = rng
	return nil
}

const (
	stateMagic   = "mnsp"
	stateVersion = 1
	stateSize    = len(stateMagic) + 1 + 16 + 4
	pcgPrefix    = "pcg:"
)

// topK returns the k highest logits of buf above -Inf, NaN excluded (fewer
// if fewer are), sorted by descending logit then ascending id, using dst's
// storage (cap(dst) >= k). It keeps a size-k min-heap, so it costs O(V)
// compares plus O(log k) per heap replacement instead of sorting the
// vocabulary.
func topK(buf []float32, k int, dst []cand) []cand {
	h := dst[:0]
	i := 0
	for ; i < len(buf) && len(h) < k; i++ {
		if v := buf[i]; v > negInf { // false for NaN
			h = append(h, cand{int32(i), v})
			siftUp(h, len(h)-1)
		}
	}
	if len(h) == k {
		// Scanning in id order, an equal logit always has a higher id than
		// the heap's worst entry, so only a strictly greater logit enters.
		thr := h[0].logit
		for ; i < len(buf); i++ {
			// Skip blocks of four below the threshold, the common case.
			for i+4 <= len(buf) {
				b := buf[i : i+4 : i+4]
				if b[0] > thr || b[1] > thr || b[2] > thr || b[3] > thr {
					break
				}
				i += 4
			}
			if i == len(buf) {
				break
			}
			if v := buf[i]; v > thr {
				h[0] = cand{int32(i), v}
				siftDown(h, 0)
				thr = h[0].logit
			}
		}
	}
	sortDesc(h)
	return h
}

// worse orders candidates for selection: lower logit, then higher id, is
// worse.
func worse(a, b cand) bool {
	return a.logit < b.logit || (a.logit == b.logit && a.id > b.id)
}

// siftUp and siftDown maintain a heap whose root is the worst candidate.
func siftUp(h []cand, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !worse(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func siftDown(h []cand, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && worse(h[r], h[l]) {
			m = r
		}
		if !worse(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// sortDesc sorts by descending logit, then ascending id.
func sortDesc(c []cand) {
	slices.SortFunc(c, func(a, b cand) int {
		if a.logit != b.logit {
			return cmp.Compare(b.logit, a.logit)
		}
		return cmp.Compare(a.id, b.id)
	})
}
