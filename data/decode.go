package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"path"
	"strings"

	"golang.org/x/image/bmp"
)

// ColorMode selects the channel layout DecodeImageMode produces.
type ColorMode int

const (
	// ColorNative keeps grayscale images as 1 channel and converts every
	// other image (RGB, YCbCr, CMYK, paletted, with or without alpha) to 3
	// channels RGB. Alpha is dropped, not composited.
	ColorNative ColorMode = iota
	// ColorRGB always produces 3 channels RGB; gray is replicated.
	ColorRGB
	// ColorGray always produces 1 channel; color is converted to luma with the
	// ITU-R BT.601 weights of image/color.GrayModel.
	ColorGray
)

// MaxDecodePixels bounds the width*height an image header may declare: 64 Mpx
// (e.g. 8192x8192). DecodeImage and DecodeLabelMap read the header first
// (image.DecodeConfig) and refuse a larger image before allocating anything,
// so that a corrupt header or a decompression bomb (a small file declaring
// 100000x100000 pixels) cannot make the decoder allocate gigabytes. It is the
// same for every reader; images above it must be downscaled beforehand.
const MaxDecodePixels = 1 << 26

// imageFormat is a file format DecodeImage understands.
type imageFormat struct {
	name   string
	magic  []byte
	decode func(io.Reader) (image.Image, error)
	config func(io.Reader) (image.Config, error)
}

// imageFormats are the formats DecodeImage recognises, by magic bytes.
var imageFormats = [...]imageFormat{
	{"JPEG", []byte{0xff, 0xd8, 0xff}, jpeg.Decode, jpeg.DecodeConfig},
	{"PNG", []byte("\x89PNG\r\n\x1a\n"), png.Decode, png.DecodeConfig},
	{"BMP", []byte("BM"), bmp.Decode, bmp.DecodeConfig},
}

// imageExtensions are the file name extensions (lower case) readers accept as
// images.
var imageExtensions = [...]string{".jpg", ".jpeg", ".png", ".bmp"}

// IsImageFile reports whether name has an image extension DecodeImage
// handles: .jpg, .jpeg, .png or .bmp, in any letter case.
func IsImageFile(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	for _, e := range imageExtensions {
		if ext == e {
			return true
		}
	}
	return false
}

// DecodeImage decodes a JPEG, PNG or BMP file (recognised by its content,
// not its name) into an HWC image with ColorNative channels: grayscale images
// give 1 channel, all others 3 channels RGB. name only labels errors, which
// read "decoding NAME: ...".
func DecodeImage(name string, b []byte) (*Image, error) {
	return DecodeImageMode(name, b, ColorNative)
}

// DecodeImageMode is DecodeImage with an explicit channel layout.
func DecodeImageMode(name string, b []byte, mode ColorMode) (*Image, error) {
	m, err := decodeStd(b)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	return fromStdImage(m, mode), nil
}

// decodeStd sniffs the format of b and decodes it with the standard decoders.
func decodeStd(b []byte) (image.Image, error) {
	if len(b) == 0 {
		return nil, errors.New("empty file")
	}
	for _, f := range imageFormats {
		if !bytes.HasPrefix(b, f.magic) {
			continue
		}
		cfg, err := f.config(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s header: %w", f.name, err)
		}
		if err := checkDecodeSize(f.name, cfg.Width, cfg.Height); err != nil {
			return nil, err
		}
		m, err := f.decode(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		return m, nil
	}
	return nil, errors.New("unknown image format (want JPEG, PNG or BMP)")
}

// checkDecodeSize refuses a header's declared size (width x height) that is
// empty or above MaxDecodePixels; format names the header in the error.
func checkDecodeSize(format string, w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%s header declares an empty size %dx%d (width x height)", format, w, h)
	}
	if int64(w)*int64(h) > MaxDecodePixels {
		return fmt.Errorf("%s header declares %dx%d pixels (width x height), more than the %d Mpx limit (data.MaxDecodePixels): refused before decoding (a corrupt header or a decompression bomb; downscale larger images)",
			format, w, h, MaxDecodePixels>>20)
	}
	return nil
}

// isGrayImage reports whether m stores grayscale pixels.
func isGrayImage(m image.Image) bool {
	switch m.(type) {
	case *image.Gray, *image.Gray16:
		return true
	}
	return false
}

// fromStdImage converts a standard library image to an HWC Image.
func fromStdImage(m image.Image, mode ColorMode) *Image {
	gray := isGrayImage(m)
	switch {
	case gray && mode == ColorRGB:
		return ToRGB(stdToGray(m))
	case gray:
		return stdToGray(m)
	case mode == ColorGray:
		return ToGray(stdToRGB(m))
	default:
		return stdToRGB(m)
	}
}

// stdToGray copies a grayscale image into a 1-channel Image.
func stdToGray(m image.Image) *Image {
	b := m.Bounds()
	out := NewImage(b.Dy(), b.Dx(), 1)
	if g, ok := m.(*image.Gray); ok {
		for y := 0; y < out.H; y++ {
			off := g.PixOffset(b.Min.X, b.Min.Y+y)
			copy(out.Pix[y*out.W:(y+1)*out.W], g.Pix[off:off+out.W])
		}
		return out
	}
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			out.Pix[i] = color.GrayModel.Convert(m.At(x, y)).(color.Gray).Y
			i++
		}
	}
	return out
}

// stdToRGB converts any image to 3-channel RGB, dropping alpha (colors are
// taken un-premultiplied, as PIL's convert("RGB") does).
func stdToRGB(m image.Image) *Image {
	b := m.Bounds()
	out := NewImage(b.Dy(), b.Dx(), 3)
	p := out.Pix
	i := 0
	switch m := m.(type) {
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				yi, ci := m.YOffset(x, y), m.COffset(x, y)
				p[i], p[i+1], p[i+2] = color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				i += 3
			}
		}
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				copy(p[i:i+3], row[4*x:4*x+3])
				i += 3
			}
		}
	case *image.RGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				r, g, bl, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				if a != 0xff && a != 0 {
					r = unpremultiply8(r, a)
					g = unpremultiply8(g, a)
					bl = unpremultiply8(bl, a)
				}
				p[i], p[i+1], p[i+2] = r, g, bl
				i += 3
			}
		}
	case *image.Paletted:
		pal := make([][3]uint8, len(m.Palette))
		for k, c := range m.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			pal[k] = [3]uint8{n.R, n.G, n.B}
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				var c [3]uint8
				if int(row[x]) < len(pal) {
					c = pal[row[x]]
				}
				p[i], p[i+1], p[i+2] = c[0], c[1], c[2]
				i += 3
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(m.At(x, y)).(color.NRGBA)
				p[i], p[i+1], p[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	}
	return out
}

// unpremultiply8 undoes alpha premultiplication of one 8-bit channel.
func unpremultiply8(c, a uint8) uint8 {
	v := (uint32(c)*0xff + uint32(a)/2) / uint32(a)
	if v > 0xff {
		v = 0xff
	}
	return uint8(v)
}

// ToRGB returns im as a 3-channel image: 1- and 2-channel (gray, gray+alpha)
// images have their first channel replicated, images with more than 3
// channels (RGBA) keep their first three. An image that already has 3
// channels is returned as is, not copied.
func ToRGB(im *Image) *Image {
	if im.C == 3 {
		return im
	}
	out := NewImage(im.H, im.W, 3)
	n := im.H * im.W
	for i := 0; i < n; i++ {
		src := im.Pix[i*im.C : (i+1)*im.C]
		if im.C < 3 {
			out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = src[0], src[0], src[0]
		} else {
			copy(out.Pix[3*i:3*i+3], src[:3])
		}
	}
	return out
}

// ToGray returns im as a 1-channel image. Images with at least 3 channels are
// converted to luma with the BT.601 weights of image/color.GrayModel; 2-channel
// (gray+alpha) images keep their first channel. A 1-channel image is returned
// as is, not copied.
func ToGray(im *Image) *Image {
	if im.C == 1 {
		return im
	}
	out := NewImage(im.H, im.W, 1)
	n := im.H * im.W
	for i := 0; i < n; i++ {
		src := im.Pix[i*im.C : (i+1)*im.C]
		if im.C < 3 {
			out.Pix[i] = src[0]
			continue
		}
		r, g, b := uint32(src[0]), uint32(src[1]), uint32(src[2])
		out.Pix[i] = uint8((19595*r + 38470*g + 7471*b + 1<<15) >> 16)
	}
	return out
}
