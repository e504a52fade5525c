package run

import (
	"math"
)

// Non-finite numbers in metrics.jsonl and meta.json: JSON has no NaN or
// infinity, so a record holding one is written with the string "NaN",
// "+Inf" or "-Inf" in its place (a diverged loss is still logged, and the
// file stays valid JSON). ReadMetrics returns those strings as they are.
const (
	jsonNaN    = "NaN"
	jsonPosInf = "+Inf"
	jsonNegInf = "-Inf"
)

// jsonSafe returns v with every NaN or infinite float (also inside maps and
// slices of the types metrics and summaries hold) replaced by its string.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case float64:
		return safeFloat(x)
	case float32:
		return safeFloat(float64(x))
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonSafe(e)
		}
		return out
	case map[string]float64:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = safeFloat(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonSafe(e)
		}
		return out
	case []float64:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = safeFloat(e)
		}
		return out
	case []float32:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = safeFloat(float64(e))
		}
		return out
	}
	return v
}

// safeFloat is f, or its string when f is NaN or infinite.
func safeFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return jsonNaN
	case math.IsInf(f, 1):
		return jsonPosInf
	case math.IsInf(f, -1):
		return jsonNegInf
	}
	return f
}
