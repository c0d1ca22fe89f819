package bench

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// memStats is the part of a process's runtime.MemStats the benchmark
// reports: exact allocation counts, where the allocation profile only
// samples.
type memStats struct {
	mallocs, bytes, numGC uint64
}

// readMemStats reads the runtime.MemStats a Go process prints at the end
// of its net/http/pprof heap profile in text form (debug=1).
func readMemStats(port int) (memStats, error) {
	var ms memStats
	if port == 0 {
		return ms, fmt.Errorf("no pprof port")
	}
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?debug=1", port))
	if err != nil {
		return ms, err
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<22)
	for sc.Scan() {
		name, val, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok {
			continue
		}
		var dst *uint64
		switch name {
		case "Mallocs":
			dst = &ms.mallocs
		case "TotalAlloc":
			dst = &ms.bytes
		case "NumGC":
			dst = &ms.numGC
		default:
			continue
		}
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return ms, fmt.Errorf("heap profile line %q: %w", sc.Text(), err)
		}
		*dst = v
		found++
	}
	if err := sc.Err(); err != nil {
		return ms, err
	}
	if found != 3 {
		return ms, fmt.Errorf("heap profile of port %d: found %d of Mallocs, TotalAlloc and NumGC", port, found)
	}
	return ms, nil
}

// perMsg turns the difference b-a into allocations, bytes and GC cycles
// per n messages (GC cycles per 1,000 messages).
func (a memStats) perMsg(b memStats, n int) (allocs, bytes, gcPerK float64) {
	if n <= 0 {
		return 0, 0, 0
	}
	f := float64(n)
	return float64(b.mallocs-a.mallocs) / f, float64(b.bytes-a.bytes) / f, float64(b.numGC-a.numGC) * 1000 / f
}
