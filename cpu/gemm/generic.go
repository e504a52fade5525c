package gemm

// MatMul is the generic (simple, correct, not fast) version for other dtypes, same layout rules.
//
// It computes C[b] = op(A[b]) x op(B[b]) for b in [0, batch) on the calling
// goroutine, accumulating in T (integer overflow wraps). C is overwritten;
// k == 0 zeroes C. It panics if a dimension is negative or a slice is too
// short.
func MatMul[T float32 | float64 | int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](batch, m, n, k int, a []T, transA bool, b []T, transB bool, c []T) {
	checkDims(batch, m, n, k, len(a), len(b), len(c))
	for bi := range batch {
		ab := a[bi*m*k : (bi+1)*m*k]
		bb := b[bi*k*n : (bi+1)*k*n]
		cb := c[bi*m*n : (bi+1)*m*n]
		for i := range m {
			row := cb[i*n : (i+1)*n]
			if transB {
				// B is [n][k]: each C element is a dot product of contiguous
				// rows (A row too, unless transA).
				for j := range n {
					bj := bb[j*k : (j+1)*k]
					var s T
					if transA {
						for p, v := range bj {
							s += ab[p*m+i] * v
						}
					} else {
						ai := ab[i*k : (i+1)*k]
						for p, v := range bj {
							s += ai[p] * v
						}
					}
					row[j] = s
				}
				continue
			}
			// B is [k][n]: accumulate scaled rows of B into the C row.
			clear(row)
			for p := range k {
				var av T
				if transA {
					av = ab[p*m+i]
				} else {
					av = ab[i*k+p]
				}
				bp := bb[p*n : (p+1)*n]
				for j, v := range bp {
					row[j] += av * v
				}
			}
		}
	}
}
