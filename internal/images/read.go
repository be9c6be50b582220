package images

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Archive is an image tarball read back: its index.json, and per platform
// the manifest, config and the files of every layer. Read checks every
// digest and size on the way.
type Archive struct {
	Index  Index
	Images []ArchImage
}

// ArchImage is one platform's image in an archive.
type ArchImage struct {
	Platform Platform
	Manifest Manifest
	Config   Config
	// Files maps a path in the image (no leading slash) to its tar header
	// in the topmost layer that has it.
	Files map[string]*tar.Header
	// Content holds the bytes of small regular files (at most 64 KiB),
	// for tests to read /etc/passwd and the like.
	Content map[string][]byte
}

// Read opens an image tarball written by Build (or any OCI image layout
// tar) and checks it.
func Read(path string) (*Archive, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	blobs := map[string]int64{} // digest → offset of content
	var indexJSON []byte
	layout := false
	tr := tar.NewReader(fh)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		switch {
		case h.Name == "oci-layout":
			layout = true
		case h.Name == "index.json":
			if indexJSON, err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
				return nil, err
			}
		case strings.HasPrefix(h.Name, "blobs/sha256/") && h.Typeflag == tar.TypeReg:
			off, err := fh.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			blobs["sha256:"+strings.TrimPrefix(h.Name, "blobs/sha256/")] = off
		}
	}
	if !layout || indexJSON == nil {
		return nil, fmt.Errorf("%s: not an OCI image layout (oci-layout or index.json missing)", path)
	}
	r := &blobReader{fh: fh, offsets: blobs}
	a := &Archive{}
	if err := json.Unmarshal(indexJSON, &a.Index); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	var manifests []Descriptor
	seen := map[string]bool{} // several names (tags) may share one manifest
	for _, d := range a.Index.Manifests {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		switch d.MediaType {
		case mediaManifest:
			manifests = append(manifests, d)
		case mediaIndex:
			var sub Index
			if err := r.json(d, &sub); err != nil {
				return nil, err
			}
			manifests = append(manifests, sub.Manifests...)
		default:
			return nil, fmt.Errorf("index.json: unknown media type %q", d.MediaType)
		}
	}
	for _, d := range manifests {
		im := ArchImage{Files: map[string]*tar.Header{}, Content: map[string][]byte{}}
		if err := r.json(d, &im.Manifest); err != nil {
			return nil, err
		}
		if err := r.json(im.Manifest.Config, &im.Config); err != nil {
			return nil, err
		}
		im.Platform = Platform{OS: im.Config.OS, Architecture: im.Config.Architecture, Variant: im.Config.Variant}
		if len(im.Config.RootFS.DiffIDs) != len(im.Manifest.Layers) {
			return nil, fmt.Errorf("%s: %d layers but %d diff_ids", d.Digest, len(im.Manifest.Layers), len(im.Config.RootFS.DiffIDs))
		}
		for i, l := range im.Manifest.Layers {
			if err := r.layer(l, im.Config.RootFS.DiffIDs[i], &im); err != nil {
				return nil, err
			}
		}
		a.Images = append(a.Images, im)
	}
	return a, nil
}

type blobReader struct {
	fh      *os.File
	offsets map[string]int64
}

// open returns the blob's content, checked against its descriptor when
// fully read by the caller (see verify).
func (r *blobReader) open(d Descriptor) (*verifyReader, error) {
	off, ok := r.offsets[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s missing", d.Digest)
	}
	return &verifyReader{r: io.NewSectionReader(r.fh, off, d.Size), h: sha256.New(), d: d}, nil
}

func (r *blobReader) json(d Descriptor, v any) error {
	vr, err := r.open(d)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(vr)
	if err != nil {
		return err
	}
	if err := vr.verify(); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return nil
}

func (r *blobReader) layer(d Descriptor, diffID string, im *ArchImage) error {
	vr, err := r.open(d)
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(vr)
	if err != nil {
		return fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	uh := sha256.New()
	tr := tar.NewReader(io.TeeReader(zr, uh))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		im.Files[name] = h
		if h.Typeflag == tar.TypeReg && h.Size <= 64<<10 {
			b, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			im.Content[name] = b
		}
	}
	// Drain the gzip stream (tar padding) so both digests cover it all.
	if _, err := io.Copy(io.Discard, io.TeeReader(zr, uh)); err != nil {
		return err
	}
	if err := vr.verify(); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(uh.Sum(nil)); got != diffID {
		return fmt.Errorf("layer %s: diff_id %s, content %s", d.Digest, diffID, got)
	}
	return nil
}

type verifyReader struct {
	r io.Reader
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
	d Descriptor
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	return n, err
}

func (v *verifyReader) verify() error {
	if _, err := io.Copy(io.Discard, v); err != nil {
		return err
	}
	if v.n != v.d.Size {
		return fmt.Errorf("blob %s: %d bytes, descriptor says %d", v.d.Digest, v.n, v.d.Size)
	}
	if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != v.d.Digest {
		return fmt.Errorf("blob %s: content digest %s", v.d.Digest, got)
	}
	return nil
}
