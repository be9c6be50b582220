package memtrim

import (
	"encoding/binary"
	"os"
	"runtime"
	"testing"
)

// pagemap counts the pages of spans mapped in this process, from
// /proc/self/pagemap (bit 63: present). Its file and buffers are made
// beforehand, so that counting touches as little as it can.
type pagemap struct {
	f    *os.File
	bufs [][]byte
}

func openPagemap(t *testing.T, spans []span) *pagemap {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Skipf("no pagemap: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	pm := &pagemap{f: f}
	for _, s := range spans {
		pm.bufs = append(pm.bufs, make([]byte, (s.hi-s.lo)/4096*8))
	}
	return pm
}

func (pm *pagemap) present(spans []span) (int, error) {
	n := 0
	for i, s := range spans {
		buf := pm.bufs[i]
		if _, err := pm.f.ReadAt(buf, int64(s.lo/4096*8)); err != nil {
			return 0, err
		}
		for i := 0; i < len(buf); i += 8 {
			n += int(binary.LittleEndian.Uint64(buf[i:]) >> 63)
		}
	}
	return n, nil
}

// UnmapBinary takes most of the test binary's read-only pages out of the
// page tables; the code goes on running (its pages come back on use).
func TestUnmapBinaryDropsReadOnlyPages(t *testing.T) {
	spans, err := binarySpans()
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) < 2 {
		t.Fatalf("found %d read-only mappings of the executable, want code and read-only data", len(spans))
	}
	pm := openPagemap(t, spans)
	before, err := pm.present(spans)
	if err != nil {
		t.Fatal(err)
	}
	if before < 128 {
		t.Fatalf("only %d pages of the binary mapped before: the test proves nothing", before)
	}
	n, err := UnmapBinary()
	after, err2 := pm.present(spans)
	if err != nil || n == 0 || err2 != nil {
		t.Fatalf("UnmapBinary = %d, %v; pagemap: %v", n, err, err2)
	}
	if after > before/2 {
		t.Errorf("pages of the binary mapped: %d before, %d after", before, after)
	}
	t.Logf("pages mapped: %d before, %d after (%d KiB advised)", before, after, n>>10)
}

// written lives in the binary's initialised data, a private writable
// mapping of the file: dropping its pages would bring back the file's
// value and lose what the process wrote.
var written = [8192]byte{1}

func TestUnmapBinaryKeepsWrittenData(t *testing.T) {
	for i := range written {
		written[i] = 7
	}
	if _, err := UnmapBinary(); err != nil {
		t.Fatal(err)
	}
	for i, b := range written {
		if b != 7 {
			t.Fatalf("byte %d of initialised data is %d after UnmapBinary, want 7", i, b)
		}
	}
}

func TestReadOnlySpans(t *testing.T) {
	maps := []byte(`00400000-00a77000 r-xp 00000000 08:01 1234 /bin/proxy
00a77000-01308000 r--p 00677000 08:01 1234 /bin/proxy
01308000-01384000 rw-p 00f08000 08:01 1234 /bin/proxy
01384000-013b2000 rw-p 00000000 00:00 0
7f0000000000-7f0000100000 r--p 00000000 08:01 99 /usr/lib/locale/C.utf8
7f0000200000-7f0000300000 r-xs 00000000 08:01 1234 /bin/proxy
`)
	got, err := readOnlySpans(maps, 0x00500000)
	if err != nil {
		t.Fatal(err)
	}
	want := []span{{0x00400000, 0x00a77000}, {0x00a77000, 0x01308000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("spans %x, want %x (no writable, shared or other file's mapping)", got, want)
	}
	if _, err := readOnlySpans(maps, 0x01390000); err == nil {
		t.Error("pc in an anonymous mapping: no error")
	}
}

// An idle look after a collection (Go forces one every 2 minutes, and it
// maps pc tables and type data again) unmaps the binary's pages again,
// without trimming; the next idle look, with no collection between, does
// not.
func TestIdleLookUnmapsAfterGC(t *testing.T) {
	tr := &Trimmer{Threshold: DefaultThreshold}
	tr.Look()
	tr.Trim()
	runtime.GC()
	gcs := read().gcs
	if tr.unmapped == gcs {
		t.Fatal("no collection since the trim")
	}
	if tr.Look() {
		t.Fatal("trimmed with nothing to return")
	}
	if tr.unmapped != gcs {
		t.Fatalf("idle look after collection %d: binary last unmapped at collection %d", gcs, tr.unmapped)
	}
}
