package images

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Media types and annotations of the OCI image spec (v1.1) and containerd.
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	// annotationRefName is the OCI tag of an index.json entry.
	annotationRefName = "org.opencontainers.image.ref.name"
	// annotationImageName is the full reference `ctr images import` names
	// the image by (containerd's images.AnnotationImageName).
	annotationImageName = "io.containerd.image.name"
)

// Platform is an OCI platform (os/architecture[/variant]).
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// Descriptor points at a blob (OCI content descriptor).
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Index is an OCI image index (index.json, or a multi-arch index blob).
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Config is the OCI image configuration (the fields Weft sets).
type Config struct {
	Created      string       `json:"created"`
	Architecture string       `json:"architecture"`
	OS           string       `json:"os"`
	Variant      string       `json:"variant,omitempty"`
	Config       RunConfig    `json:"config"`
	RootFS       RootFS       `json:"rootfs"`
	History      []HistoryRow `json:"history,omitempty"`
}

// RunConfig is how a container of the image runs by default.
type RunConfig struct {
	User         string              `json:"User,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
}

// RootFS lists the layers' uncompressed digests, bottom first.
type RootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

// HistoryRow says where a layer came from.
type HistoryRow struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

// jsonBlob is a small blob kept in memory (config, manifest, index).
func jsonBlob(mediaType string, v any) (blob, []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return blob{}, nil, err
	}
	sum := sha256.Sum256(b)
	return blob{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(b))}, b, nil
}

func (b blob) descriptor() Descriptor {
	return Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}
}

// archive is one image tarball in OCI image layout: oci-layout, index.json
// and blobs/sha256/*. Small blobs are held in memory, layers on disk.
type archive struct {
	index  []byte
	small  map[string][]byte // digest → content
	layers map[string]string // digest → path
}

func newArchive() *archive {
	return &archive{small: map[string][]byte{}, layers: map[string]string{}}
}

func (a *archive) addJSON(mediaType string, v any) (Descriptor, error) {
	b, data, err := jsonBlob(mediaType, v)
	if err != nil {
		return Descriptor{}, err
	}
	a.small[b.Digest] = data
	return b.descriptor(), nil
}

// writeTo writes the layout tar. Entries are sorted, so the same blobs
// give the same bytes.
func (a *archive) writeTo(w io.Writer) error {
	tw := tar.NewWriter(w)
	hdr := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
	}
	put := func(name string, data []byte) error {
		if err := hdr(name, int64(len(data))); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	var digests []string
	for d := range a.small {
		digests = append(digests, d)
	}
	for d := range a.layers {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, d := range digests {
		name := "blobs/sha256/" + d[len("sha256:"):]
		if data, ok := a.small[d]; ok {
			if err := put(name, data); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(tw, &tar.Header{Name: name, Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}, a.layers[d]); err != nil {
			return err
		}
	}
	if err := put("index.json", a.index); err != nil {
		return err
	}
	return tw.Close()
}

// writeFile writes the archive to path atomically (temp file + rename), so
// a reader never sees half a tarball.
func (a *archive) writeFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := a.writeTo(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
