package gemm

// kernelGo is the portable microkernel: it computes the full mr x nr tile
// c = a x b (acc == false) or c += a x b (acc == true) from a packed A
// micro-panel a (kc groups of mr values) and a packed B micro-panel b (kc
// groups of nr values); ldc is the row stride of c.
//
// It walks the tile in 2x4 register blocks (8 accumulators), which keeps every
// value in a register on amd64 and arm64; the packed panels are re-read from
// L1 for each block.
func kernelGo(kc int, a, b, c []float32, ldc int, acc bool) {
	a = a[:kc*mr]
	b = b[:kc*nr]
	for r := 0; r < mr; r += 2 {
		for j := 0; j < nr; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 float32
			for p := range kc {
				ap := a[p*mr+r : p*mr+r+2]
				bp := b[p*nr+j : p*nr+j+4]
				a0, a1 := ap[0], ap[1]
				b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
				c00 += a0 * b0
				c01 += a0 * b1
				c02 += a0 * b2
				c03 += a0 * b3
				c10 += a1 * b0
				c11 += a1 * b1
				c12 += a1 * b2
				c13 += a1 * b3
			}
			d0 := c[r*ldc+j : r*ldc+j+4]
			d1 := c[(r+1)*ldc+j : (r+1)*ldc+j+4]
			if acc {
				d0[0] += c00
				d0[1] += c01
				d0[2] += c02
				d0[3] += c03
				d1[0] += c10
				d1[1] += c11
				d1[2] += c12
				d1[3] += c13
			} else {
				d0[0], d0[1], d0[2], d0[3] = c00, c01, c02, c03
				d1[0], d1[1], d1[2], d1[3] = c10, c11, c12, c13
			}
		}
	}
}
