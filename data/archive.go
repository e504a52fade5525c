package data

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Readers accept their root as a directory, a .tar archive or a gzipped
// .tar.gz / .tgz archive, all through io/fs: a directory is opened with
// os.DirFS, an archive is read once, entirely, into an in-memory fs.FS.
//
// When an archive holds a single top-level folder (cifar10.tar.gz holds
// cifar10/...), that folder is stripped, so that root
// "/data/cifar10.tar.gz" with split "train" reads cifar10/train. A root may
// also continue past the archive into it, as in "/data/cifar10.tar.gz/cifar10"
// or "/data/cifar10.tar.gz/train": the part after the archive is looked up
// first in the archive as stored, then with the single top-level folder
// stripped. Only regular files and directories of an archive are kept;
// symbolic and hard links are ignored.

// archiveExtensions are the file name suffixes recognised as archives.
var archiveExtensions = [...]string{".tar.gz", ".tgz", ".tar"}

// IsArchive reports whether name ends in .tar, .tar.gz or .tgz (any case).
func IsArchive(name string) bool {
	lower := strings.ToLower(name)
	for _, ext := range archiveExtensions {
		if strings.HasSuffix(lower, ext) {
			return true
		}
	}
	return false
}

// OpenFS opens root, a directory or a .tar / .tar.gz / .tgz archive (possibly
// followed by a path inside the archive), as a read-only file system. See the
// package notes above on archive roots.
func OpenFS(root string) (fs.FS, error) {
	src, err := openRoot("root", root)
	if err != nil {
		return nil, err
	}
	return src.fsys, nil
}

// rootFS is an opened reader root: the file system and the root as the user
// wrote it, to name files in error messages and Sample.Path. A file inside an
// archive is named by the archive's path followed by its path in the
// (stripped) tree, e.g. /data/cifar10.tar.gz/train/cat/0001.jpg.
type rootFS struct {
	fsys fs.FS
	root string
}

// display returns the human-readable path of name inside the root.
func (r *rootFS) display(name string) string {
	if name == "" || name == "." {
		return r.root
	}
	return strings.TrimSuffix(r.root, "/") + "/" + name
}

// readFile reads name, with an error naming its display path.
func (r *rootFS) readFile(name string) ([]byte, error) {
	b, err := fs.ReadFile(r.fsys, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", r.display(name), pathErrorCause(err))
	}
	return b, nil
}

// pathErrorCause strips the *fs.PathError wrapper (whose path is relative
// to the file system and so confusing in messages) from err.
func pathErrorCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// openRoot opens root for a reader; what names the reader's root in errors,
// e.g. "image folder root".
func openRoot(what, root string) (*rootFS, error) {
	if root == "" {
		return nil, fmt.Errorf("%s not set", what)
	}
	fi, err := os.Stat(root)
	if err == nil {
		switch {
		case fi.IsDir():
			return &rootFS{fsys: os.DirFS(root), root: root}, nil
		case fi.Mode().IsRegular():
			afs, err := loadArchive(root)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", what, root, err)
			}
			return &rootFS{fsys: stripSingleRoot(afs), root: root}, nil
		default:
			return nil, fmt.Errorf("%s %s: not a directory or an archive", what, root)
		}
	}
	// root may continue past an archive into it.
	clean := filepath.Clean(root)
	for dir := filepath.Dir(clean); ; dir = filepath.Dir(dir) {
		fi, serr := os.Stat(dir)
		if serr == nil {
			if !fi.Mode().IsRegular() || !IsArchive(dir) {
				break // an existing directory: root really is missing
			}
			afs, err := loadArchive(dir)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", what, dir, err)
			}
			inner := filepath.ToSlash(strings.TrimPrefix(clean[len(dir):], string(filepath.Separator)))
			for _, cand := range []fs.FS{afs, stripSingleRoot(afs)} {
				if st, err := fs.Stat(cand, inner); err == nil && st.IsDir() {
					sub, err := fs.Sub(cand, inner)
					if err != nil {
						return nil, fmt.Errorf("%s %s: %w", what, root, err)
					}
					return &rootFS{fsys: sub, root: root}, nil
				}
			}
			return nil, fmt.Errorf("%s %s: no folder %s in archive %s: %w", what, root, inner, dir, errNoSuchFile)
		}
		if next := filepath.Dir(dir); next == dir {
			break
		}
	}
	return nil, fmt.Errorf("%s %s: %w", what, root, pathErrorCause(err))
}

// stripSingleRoot returns the single top-level folder of fsys as the file
// system when there is exactly one top-level entry (ignoring dot files) and
// it is a folder; otherwise fsys itself.
func stripSingleRoot(fsys *archiveFS) fs.FS {
	top := fsys.entries["."]
	var only string
	n := 0
	for _, name := range top.children {
		if strings.HasPrefix(name, ".") || name == "__MACOSX" {
			continue
		}
		only = name
		n++
	}
	if n != 1 || !fsys.entries[only].isDir() {
		return fsys
	}
	sub, err := fs.Sub(fsys, only)
	if err != nil {
		return fsys
	}
	return sub
}

// maxArchiveEntry bounds the size of one archive member, guarding against
// corrupt headers.
const maxArchiveEntry = 1 << 32

// loadArchive reads a .tar or gzipped tar file into memory. Gzip is detected
// from the content, whatever the extension.
func loadArchive(name string) (*archiveFS, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, pathErrorCause(err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading archive: %w", err)
		}
		defer zr.Close()
		r = zr
	} else if !IsArchive(name) {
		return nil, errors.New("not a directory or a .tar/.tar.gz/.tgz archive")
	}
	afs := newArchiveFS()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading archive: %w", err)
		}
		entry := path.Clean(strings.TrimLeft(hdr.Name, "/"))
		if entry == "." {
			continue
		}
		if !fs.ValidPath(entry) {
			return nil, fmt.Errorf("reading archive: invalid member name %q", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := afs.addDir(entry, hdr.ModTime); err != nil {
				return nil, fmt.Errorf("reading archive: %w", err)
			}
		case tar.TypeReg, '\x00':
			if hdr.Size < 0 || hdr.Size > maxArchiveEntry {
				return nil, fmt.Errorf("reading archive: member %s has unreasonable size %d", entry, hdr.Size)
			}
			data := make([]byte, hdr.Size)
			if _, err := io.ReadFull(tr, data); err != nil {
				return nil, fmt.Errorf("reading archive member %s: %w", entry, err)
			}
			if err := afs.addFile(entry, data, hdr.ModTime); err != nil {
				return nil, fmt.Errorf("reading archive: %w", err)
			}
		}
	}
	if len(afs.entries) == 1 {
		return nil, errors.New("empty archive")
	}
	return afs, nil
}

// errNoSuchFile is the not-found error of archives, worded like the operating
// system's so that directory and archive roots give the same messages; it
// matches fs.ErrNotExist.
var errNoSuchFile error = noSuchFileError{}

// noSuchFileError is the type of errNoSuchFile.
type noSuchFileError struct{}

func (noSuchFileError) Error() string        { return "no such file or directory" }
func (noSuchFileError) Is(target error) bool { return target == fs.ErrNotExist }

// archiveEntry is a file or folder of an archiveFS.
type archiveEntry struct {
	name     string // base name
	data     []byte // file content; nil for folders
	dir      bool
	modTime  time.Time
	children []string // sorted base names, folders only
}

func (e *archiveEntry) isDir() bool { return e != nil && e.dir }

// archiveInfo implements fs.FileInfo for an archiveEntry.
type archiveInfo struct{ e *archiveEntry }

func (i archiveInfo) Name() string       { return i.e.name }
func (i archiveInfo) Size() int64        { return int64(len(i.e.data)) }
func (i archiveInfo) ModTime() time.Time { return i.e.modTime }
func (i archiveInfo) IsDir() bool        { return i.e.dir }
func (i archiveInfo) Sys() any           { return nil }
func (i archiveInfo) Mode() fs.FileMode {
	if i.e.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

// archiveFS is a read-only in-memory file system, keyed by slash-separated
// paths; "." is the root folder. It is immutable once built, hence safe for
// concurrent use.
type archiveFS struct {
	entries map[string]*archiveEntry
}

// newArchiveFS returns an archiveFS holding only its root folder.
func newArchiveFS() *archiveFS {
	return &archiveFS{entries: map[string]*archiveEntry{".": {name: ".", dir: true}}}
}

// addDir adds folder name and its missing parents.
func (a *archiveFS) addDir(name string, mod time.Time) error {
	if e, ok := a.entries[name]; ok {
		if !e.dir {
			return fmt.Errorf("%s is both a file and a folder", name)
		}
		if !mod.IsZero() {
			e.modTime = mod
		}
		return nil
	}
	parent := path.Dir(name)
	if err := a.addDir(parent, time.Time{}); err != nil {
		return err
	}
	a.entries[name] = &archiveEntry{name: path.Base(name), dir: true, modTime: mod}
	a.link(parent, path.Base(name))
	return nil
}

// addFile adds (or replaces, as tar does) file name and its missing parents.
func (a *archiveFS) addFile(name string, data []byte, mod time.Time) error {
	if e, ok := a.entries[name]; ok {
		if e.dir {
			return fmt.Errorf("%s is both a file and a folder", name)
		}
		e.data, e.modTime = data, mod
		return nil
	}
	parent := path.Dir(name)
	if err := a.addDir(parent, time.Time{}); err != nil {
		return err
	}
	a.entries[name] = &archiveEntry{name: path.Base(name), data: data, modTime: mod}
	a.link(parent, path.Base(name))
	return nil
}

// link records child in folder dir's sorted children.
func (a *archiveFS) link(dir, child string) {
	d := a.entries[dir]
	i, found := slices.BinarySearch(d.children, child)
	if !found {
		d.children = slices.Insert(d.children, i, child)
	}
}

func (a *archiveFS) lookup(op, name string) (*archiveEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	e, ok := a.entries[name]
	if !ok {
		return nil, &fs.PathError{Op: op, Path: name, Err: errNoSuchFile}
	}
	return e, nil
}

// Open implements fs.FS.
func (a *archiveFS) Open(name string) (fs.File, error) {
	e, err := a.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if e.dir {
		return &archiveDir{fsys: a, path: name, e: e}, nil
	}
	return &archiveFile{e: e, r: bytes.NewReader(e.data)}, nil
}

// ReadFile implements fs.ReadFileFS; the result is a copy the caller may
// modify.
func (a *archiveFS) ReadFile(name string) ([]byte, error) {
	e, err := a.lookup("read", name)
	if err != nil {
		return nil, err
	}
	if e.dir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	return bytes.Clone(e.data), nil
}

// Stat implements fs.StatFS.
func (a *archiveFS) Stat(name string) (fs.FileInfo, error) {
	e, err := a.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return archiveInfo{e}, nil
}

// ReadDir implements fs.ReadDirFS: the entries of folder name, sorted.
func (a *archiveFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := a.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !e.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return a.dirEntries(name, e), nil
}

func (a *archiveFS) dirEntries(dir string, e *archiveEntry) []fs.DirEntry {
	out := make([]fs.DirEntry, len(e.children))
	for i, c := range e.children {
		child := c
		if dir != "." {
			child = dir + "/" + c
		}
		out[i] = fs.FileInfoToDirEntry(archiveInfo{a.entries[child]})
	}
	return out
}

// archiveFile is an open regular file of an archiveFS.
type archiveFile struct {
	e *archiveEntry
	r *bytes.Reader
}

func (f *archiveFile) Stat() (fs.FileInfo, error) { return archiveInfo{f.e}, nil }
func (f *archiveFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *archiveFile) Close() error               { return nil }

// ReadAt implements io.ReaderAt.
func (f *archiveFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }

// Seek implements io.Seeker.
func (f *archiveFile) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }

// archiveDir is an open folder of an archiveFS.
type archiveDir struct {
	fsys *archiveFS
	path string
	e    *archiveEntry
	off  int
}

func (d *archiveDir) Stat() (fs.FileInfo, error) { return archiveInfo{d.e}, nil }
func (d *archiveDir) Close() error               { return nil }
func (d *archiveDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *archiveDir) ReadDir(n int) ([]fs.DirEntry, error) {
	all := d.fsys.dirEntries(d.path, d.e)
	rest := all[d.off:]
	if n <= 0 {
		d.off = len(all)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return rest[:n], nil
}
