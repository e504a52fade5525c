package tflite

import ("testing";"fmt")

func TestDump(t *testing.T) {
	for _, f := range []string{"mobilenet_v2_1.0_224_quant.tflite","mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"} {
	m, err := ReadFile("/work/shared/weights/mobilenet-tflite/"+f)
	if err != nil { t.Fatal(err) }
	g := m.Main()
	fmt.Println(f, m.Version, m.Description, len(g.Tensors), g.Inputs, g.Outputs, len(g.Operators))
	fmt.Println(g.Input(0), g.Input(0).Quant, g.Output(0), g.Output(0).Quant)
	for _, op := range g.Operators {
		fmt.Printf("%d %s %+v in=%v out=%v\n", op.Index, op.Code, op.Options, op.Inputs, op.Outputs)
		for _, i := range append(append([]int{}, op.Inputs...), op.Outputs...) { tt := g.Tensor(i); if tt==nil {continue}; q:=""; if tt.Quant!=nil {q=fmt.Sprintf("s=%v z=%v d=%d", tt.Quant.Scale[:min(2,len(tt.Quant.Scale))], tt.Quant.ZeroPoint[:min(2,len(tt.Quant.ZeroPoint))], tt.Quant.Dimension)}; fmt.Println("   ", tt, len(tt.Data), q) }
		if op.Index > 6 && op.Index < len(g.Operators)-4 { continue }
	}
	}
}
