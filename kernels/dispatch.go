// Package kernels holds mnemo's CPU compute kernels: matrix multiplication
// over every weight format in package format, and the other ops of a forward
// pass. Each hot kernel has a generic pure-Go implementation (always
// compiled; the reference) and AVX2 and AVX-512 implementations in Go
// assembly, chosen at run time from the CPU's features.
//
// An Impl names one tier of implementations. Impls lists those this CPU can
// run; Active is the one used by default: the best available, or the one
// named by the MNEMO_KERNELS environment variable (generic, avx2, avx512),
// which lets every tier be tested on one machine. Building with the noasm tag
// compiles the generic tier only.
package kernels

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/klauspost/cpuid/v2"
)

// Tier identifies an implementation tier. Higher tiers need more CPU features.
type Tier uint8

// The implementation tiers.
const (
	// Generic is portable Go: the reference for every other tier.
	Generic Tier = iota
	// AVX2 needs AVX2, FMA3 and F16C.
	AVX2
	// AVX512 needs AVX-512 F/BW/DQ/VL plus VNNI, BF16 and VBMI (Zen 4,
	// Sapphire Rapids and later); CPUs with an older AVX-512 use AVX2.
	AVX512

	numTiers
)

// EnvVar is the environment variable that overrides the default Impl.
const EnvVar = "MNEMO_KERNELS"

// Impl is one tier of kernel implementations.
type Impl struct {
	// Name is the tier's name: "generic", "avx2" or "avx512".
	Name string
	// Tier is the implementation tier.
	Tier Tier
	// Features are the CPU features the tier needs.
	Features []cpuid.FeatureID
}

func (impl *Impl) String() string { return impl.Name }

var allImpls = [numTiers]*Impl{
	{Name: "generic", Tier: Generic},
	{Name: "avx2", Tier: AVX2, Features: []cpuid.FeatureID{cpuid.AVX2, cpuid.FMA3, cpuid.F16C}},
	{Name: "avx512", Tier: AVX512, Features: []cpuid.FeatureID{
		cpuid.AVX2, cpuid.FMA3, cpuid.F16C,
		cpuid.AVX512F, cpuid.AVX512BW, cpuid.AVX512DQ, cpuid.AVX512VL,
		cpuid.AVX512VNNI, cpuid.AVX512BF16, cpuid.AVX512VBMI,
	}},
}

// supported reports whether this build and CPU can run impl.
func supported(impl *Impl) bool {
	if impl.Tier != Generic && !haveAsm {
		return false
	}
	return cpuid.CPU.Supports(impl.Features...)
}

// Impls returns every Impl this build can run on this CPU, generic first.
// Tests and benchmarks iterate over it.
func Impls() []*Impl {
	var out []*Impl
	for _, impl := range allImpls {
		if supported(impl) {
			out = append(out, impl)
		}
	}
	return out
}

// Lookup returns the Impl with the given name, or an error if there is no
// such tier or this CPU or build cannot run it.
func Lookup(name string) (*Impl, error) {
	for _, impl := range allImpls {
		if impl.Name != name {
			continue
		}
		if !supported(impl) {
			if !haveAsm {
				return nil, fmt.Errorf("kernels: %s: this build has no assembly kernels (noasm or %s)", name, goarch)
			}
			return nil, fmt.Errorf("kernels: %s: CPU lacks one of %v", name, impl.Features)
		}
		return impl, nil
	}
	names := make([]string, len(allImpls))
	for i, impl := range allImpls {
		names[i] = impl.Name
	}
	return nil, fmt.Errorf("kernels: unknown implementation %q (want one of %s)", name, strings.Join(names, ", "))
}

// Best returns the highest tier this build and CPU can run.
func Best() *Impl {
	impls := Impls()
	return impls[len(impls)-1]
}

var active = sync.OnceValues(func() (*Impl, error) {
	if name := os.Getenv(EnvVar); name != "" {
		impl, err := Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", EnvVar, name, err)
		}
		return impl, nil
	}
	return Best(), nil
})

// Select returns the Impl used by default: the one named by MNEMO_KERNELS
// if set, else Best. It is resolved once, on first use (not at init, so
// cpuid.Flags can disable features first). Programs call it at start-up to
// report a bad MNEMO_KERNELS value as an error.
func Select() (*Impl, error) { return active() }

// Active returns Select's Impl. It panics if MNEMO_KERNELS names a tier
// that cannot run here; call Select first to turn that into an error.
func Active() *Impl {
	impl, err := active()
	if err != nil {
		panic(err.Error())
	}
	return impl
}
