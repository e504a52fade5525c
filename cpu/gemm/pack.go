package gemm

// packA copies the mc x kc block of op(A) starting at row ic, depth pc into dst
// as consecutive micro-panels of mr rows; micro-panel i holds, for each depth p
// in [0, kc), the mr values op(A)[ic+i*mr+r][pc+p]. Rows past mc are zero.
//
// a is [m][k] row-major, or [k][m] when transA.
func packA(dst, a []float32, transA bool, m, k, ic, mc, pc, kc int) {
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		panel := dst[ir*kc : ir*kc+kc*mr]
		i0 := ic + ir
		switch {
		case rows == mr && !transA && useAVX2:
			src := a[i0*k+pc : (i0+mr-1)*k+pc+kc]
			packA6N(kc, &src[0], k, &panel[0])
		case rows == mr && transA && useAVX2:
			src := a[pc*m+i0 : (pc+kc-1)*m+i0+mr]
			packA6T(kc, &src[0], m, &panel[0])
		case rows == mr && !transA:
			r0 := a[(i0+0)*k+pc : (i0+0)*k+pc+kc]
			r1 := a[(i0+1)*k+pc : (i0+1)*k+pc+kc]
			r2 := a[(i0+2)*k+pc : (i0+2)*k+pc+kc]
			r3 := a[(i0+3)*k+pc : (i0+3)*k+pc+kc]
			r4 := a[(i0+4)*k+pc : (i0+4)*k+pc+kc]
			r5 := a[(i0+5)*k+pc : (i0+5)*k+pc+kc]
			for p := range kc {
				d := (*[mr]float32)(panel[p*mr : p*mr+mr])
				d[0], d[1], d[2], d[3], d[4], d[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
			}
		case rows == mr && transA:
			for p := range kc {
				s := (*[mr]float32)(a[(pc+p)*m+i0 : (pc+p)*m+i0+mr])
				*(*[mr]float32)(panel[p*mr : p*mr+mr]) = *s
			}
		case transA:
			// Partial panel: rows are contiguous per depth.
			for p := range kc {
				d := panel[p*mr : p*mr+mr]
				copy(d, a[(pc+p)*m+i0:(pc+p)*m+i0+rows])
				clear(d[rows:])
			}
		default:
			// Partial panel: one row (contiguous in k) at a time.
			for r := range mr {
				if r >= rows {
					for p := range kc {
						panel[p*mr+r] = 0
					}
					continue
				}
				src := a[(i0+r)*k+pc : (i0+r)*k+pc+kc]
				for p, v := range src {
					panel[p*mr+r] = v
				}
			}
		}
	}
}

// packB copies the kc x nc block of op(B) starting at depth pc, column jc into
// dst as consecutive micro-panels of nr columns; micro-panel j holds, for each
// depth p in [0, kc), the nr values op(B)[pc+p][jc+j*nr+c]. Columns past nc are
// zero.
//
// b is [k][n] row-major, or [n][k] when transB.
func packB(dst, b []float32, transB bool, n, k, pc, kc, jc, nc int) {
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		panel := dst[jr*kc : jr*kc+kc*nr]
		j0 := jc + jr
		switch {
		case cols == nr && !transB && useAVX2:
			src := b[pc*n+j0 : (pc+kc-1)*n+j0+nr]
			packB16N(kc, &src[0], n, &panel[0])
		case cols == nr && !transB:
			for p := range kc {
				s := (*[nr]float32)(b[(pc+p)*n+j0 : (pc+p)*n+j0+nr])
				*(*[nr]float32)(panel[p*nr : p*nr+nr]) = *s
			}
		case cols == nr && transB && useAVX2:
			src := b[j0*k+pc : (j0+nr-1)*k+pc+kc]
			packB16T(kc, &src[0], k, &panel[0])
		case transB:
			for col := range cols {
				s := b[(j0+col)*k+pc : (j0+col)*k+pc+kc]
				for p, v := range s {
					panel[p*nr+col] = v
				}
			}
			for col := cols; col < nr; col++ {
				for p := range kc {
					panel[p*nr+col] = 0
				}
			}
		default:
			for p := range kc {
				d := panel[p*nr : p*nr+nr]
				copy(d, b[(pc+p)*n+j0:(pc+p)*n+j0+cols])
				clear(d[cols:])
			}
		}
	}
}
