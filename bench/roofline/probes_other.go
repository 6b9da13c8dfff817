//go:build !amd64 || !gc || noasm

package roofline

func readImpls() []readImpl { return []readImpl{{"go", sumGo}} }

func computeProbes() []computeProbe { return nil }
