package images

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// epoch is every file's modification time and the images' creation time:
// fixed, so the same inputs give byte-identical layers (and digests), as
// reproducible builds use SOURCE_DATE_EPOCH.
var epoch = time.Unix(0, 0).UTC()

// file is one entry of a layer. Exactly one of Data, Src or Link is used;
// a Dir entry uses none.
type file struct {
	Name     string // absolute path in the image, e.g. /usr/local/bin/weft
	Mode     int64  // permission bits (and sticky), e.g. 0o755
	UID, GID int
	Dir      bool
	Link     string // symlink target
	Data     []byte // content given inline
	Src      string // content read from this host path
}

// layer is the uncompressed tar of files (parents created as needed, sorted
// by name). Its diffID is the sha256 of that tar; the blob is its gzip.
type layer struct {
	files []file
}

// write streams the layer's tar to w.
func (l layer) write(w io.Writer) error {
	tw := tar.NewWriter(w)
	entries := map[string]file{}
	for _, f := range l.files {
		name := strings.TrimPrefix(path.Clean(f.Name), "/")
		for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if _, ok := entries[dir]; !ok {
				entries[dir] = file{Name: dir, Dir: true, Mode: 0o755}
			}
		}
		f.Name = name
		entries[name] = f
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := entries[n]
		h := &tar.Header{Name: n, Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		if f.Src == "" {
			h.Size = int64(len(f.Data))
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := tw.Write(f.Data); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(tw, h, f.Src); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(tw *tar.Writer, h *tar.Header, src string) error {
	fh, err := os.Open(src)
	if err != nil {
		return err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := io.Copy(tw, fh); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return nil
}

// blob is a content-addressed file on disk.
type blob struct {
	MediaType string
	Digest    string // sha256:<hex>
	Size      int64
	Path      string
}

// layerBlob returns the gzip blob of l and its diffID. Compressed blobs are
// cached in cacheDir by diffID, so a layer whose content did not change
// (a binary Go did not relink, the base files) is compressed only once.
func layerBlob(l layer, cacheDir string) (blob, string, error) {
	h := sha256.New()
	if err := l.write(h); err != nil {
		return blob{}, "", err
	}
	diffID := "sha256:" + hex.EncodeToString(h.Sum(nil))
	cached := filepath.Join(cacheDir, strings.TrimPrefix(diffID, "sha256:")+".tar.gz")
	if b, err := hashFile(cached); err == nil {
		b.MediaType = mediaLayer
		return b, diffID, nil
	}
	tmp, err := os.CreateTemp(cacheDir, "layer-*")
	if err != nil {
		return blob{}, "", err
	}
	defer os.Remove(tmp.Name())
	zh := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, zh)}
	zw, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return blob{}, "", err
	}
	uh := sha256.New()
	err = l.write(io.MultiWriter(zw, uh))
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err != nil {
		return blob{}, "", fmt.Errorf("compressing layer: %w", err)
	}
	// The inputs must not change between the two passes.
	if got := "sha256:" + hex.EncodeToString(uh.Sum(nil)); got != diffID {
		return blob{}, "", fmt.Errorf("layer content changed while it was written (%s, then %s)", diffID, got)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return blob{}, "", err
	}
	if err := os.Rename(tmp.Name(), cached); err != nil {
		return blob{}, "", err
	}
	return blob{MediaType: mediaLayer, Digest: "sha256:" + hex.EncodeToString(zh.Sum(nil)), Size: cw.n, Path: cached}, diffID, nil
}

func hashFile(p string) (blob, error) {
	fh, err := os.Open(p)
	if err != nil {
		return blob{}, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return blob{}, err
	}
	return blob{Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n, Path: p}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
