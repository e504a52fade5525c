package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"runtime"
	"strings"
	"testing"
)

// pngHeader returns a PNG file holding only a valid IHDR chunk (correct CRC)
// declaring w x h 8-bit RGB pixels, followed by IEND: a decompression bomb's
// header, with no pixel data behind it.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(data)))
		b.Write(n[:])
		body := append([]byte(typ), data...)
		b.Write(body)
		binary.BigEndian.PutUint32(n[:], crc32.ChecksumIEEE(body))
		b.Write(n[:])
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // bit depth 8, color type RGB; compression, filter, interlace 0
	chunk("IHDR", ihdr)
	chunk("IEND", nil)
	return b.Bytes()
}

// grayPNGHeader is pngHeader for an 8-bit gray image (a label map).
func grayPNGHeader(w, h uint32) []byte {
	b := pngHeader(w, h)
	b[25] = 0 // color type gray
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// jpegHeader returns a JPEG file holding SOI, a JFIF APP0 segment and a
// baseline SOF0 segment declaring w x h pixels in 3 components, nothing more.
func jpegHeader(w, h uint16) []byte {
	b := []byte{0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
	b = append(b, 0xff, 0xc0, 0, 17, 8)
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	b = append(b, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1)
	return b
}

// bmpHeader returns a BMP file header (BITMAPINFOHEADER, 24 bits) declaring
// w x h pixels, without pixel data.
func bmpHeader(w, h int32) []byte {
	b := []byte("BM")
	b = binary.LittleEndian.AppendUint32(b, 54)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 54)
	b = binary.LittleEndian.AppendUint32(b, 40)
	b = binary.LittleEndian.AppendUint32(b, uint32(w))
	b = binary.LittleEndian.AppendUint32(b, uint32(h))
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 24)
	return append(b, make([]byte, 24)...)
}

// TestDecodeRefusesBombs decodes crafted headers declaring huge sizes: each
// is refused, naming the file, the format, the declared size and the limit,
// before any pixel buffer is allocated.
func TestDecodeRefusesBombs(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"bomb.png", pngHeader(100000, 100000), "PNG header declares 100000x100000 pixels"},
		{"wide.png", pngHeader(1<<30, 1), "PNG header declares 1073741824x1 pixels"},
		{"bomb.jpg", jpegHeader(60000, 60000), "JPEG header declares 60000x60000 pixels"},
		{"bomb.bmp", bmpHeader(100000, 100000), "BMP header declares 100000x100000 pixels"},
		{"limit.png", pngHeader(8193, 8192), "PNG header declares 8193x8192 pixels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			im, err := DecodeImage("dir/"+tc.name, tc.data)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("decoded %dx%d, want the header refused", im.W, im.H)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "decoding dir/"+tc.name+": ") || !strings.Contains(msg, tc.want) ||
				!strings.Contains(msg, "64 Mpx limit") {
				t.Errorf("error %q, want it to name the file, say %q and the 64 Mpx limit", msg, tc.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("refusing the header allocated %d bytes, want < 1 MiB", alloc)
			}
		})
	}
	// At the limit the header is accepted: the error is then the missing
	// pixel data, not the size.
	if _, err := DecodeImage("ok.png", pngHeader(8192, 8192)); err == nil || strings.Contains(err.Error(), "limit") {
		t.Errorf("8192x8192 header: error %v, want a decoding error that is not the size limit", err)
	}
	// Label maps go through the same check.
	_, err := DecodeLabelMap("ann/bomb.png", grayPNGHeader(100000, 100000))
	if err == nil || !strings.Contains(err.Error(), "label map ann/bomb.png") || !strings.Contains(err.Error(), "100000x100000 pixels") {
		t.Errorf("label map bomb: error %v, want the size refused, naming the file", err)
	}
}
