//go:build !(goexperiment.simd && amd64)

package elem

// Without GOEXPERIMENT=simd (or off amd64) Exp and Erf run the scalar code.

func expVec(o, x []float32) int { return 0 }

func erfVec(o, x []float32) int { return 0 }

func logisticVec(o, x []float32) int { return 0 }

func tanhVec(o, x []float32) int { return 0 }

func logVec(o, x []float32) int { return 0 }
