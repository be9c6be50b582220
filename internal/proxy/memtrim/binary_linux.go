package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
)

// span is one mapping of the executable: [lo, hi).
type span struct{ lo, hi uintptr }

// binarySpans finds the executable's read-only mappings once: they do
// not move while the process runs.
var binarySpans = sync.OnceValues(func() ([]span, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	pc, _, _, _ := runtime.Caller(0)
	return readOnlySpans(maps, pc)
})

// readOnlySpans returns the private, read-only mappings in maps (the
// format of /proc/PID/maps) of the file that maps pc: the executable's
// code, read-only data and pc tables when pc is one of its functions.
// Writable mappings (initialised data) are never among them: their pages
// may hold what the process wrote, which MADV_DONTNEED would discard.
func readOnlySpans(maps []byte, pc uintptr) ([]span, error) {
	type mapping struct {
		span
		perms, file string
	}
	var all []mapping
	var exe string
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode [path]
		f := bytes.Fields(sc.Bytes())
		if len(f) < 5 {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			continue
		}
		l, err1 := strconv.ParseUint(string(lo), 16, 64)
		h, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || h <= l {
			continue
		}
		m := mapping{span: span{uintptr(l), uintptr(h)}, perms: string(f[1]), file: string(f[3]) + " " + string(f[4])}
		if f[4][0] == '0' && len(f[4]) == 1 {
			m.file = "" // anonymous
		}
		all = append(all, m)
		if m.lo <= pc && pc < m.hi {
			exe = m.file
		}
	}
	if exe == "" {
		return nil, fmt.Errorf("no file mapping holds pc %#x", pc)
	}
	var out []span
	for _, m := range all {
		if m.file == exe && len(m.perms) == 4 && m.perms[1] == '-' && m.perms[3] == 'p' {
			out = append(out, m.span)
		}
	}
	return out, nil
}

// UnmapBinary drops the executable's read-only pages (code, read-only
// data, the runtime's pc tables) from the process's page tables and
// returns how many bytes of mappings it advised. The pages stay in the
// kernel's page cache, shared by every process running the binary; the
// ones the process touches again are mapped again on their first access
// (a minor fault). RSS counts mapped pages, and start-up (package
// initialisation, protobuf's registration of the xDS types, decoding the
// first config) touches nearly all of a 16 MB binary, of which an idle
// proxy then uses about 6 MB (issue 17).
func UnmapBinary() (uint64, error) {
	spans, err := binarySpans()
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, s := range spans {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, s.lo, s.hi-s.lo, syscall.MADV_DONTNEED); e != 0 {
			return n, fmt.Errorf("madvise %#x-%#x: %w", s.lo, s.hi, e)
		}
		n += uint64(s.hi - s.lo)
	}
	return n, nil
}
