// Ground-truth Go net/http server. Prints "LISTENING <port>" once bound.
//
// Every response carries X-Thread-Cpu-Ns: the handler's own on-CPU time, read from
// CLOCK_THREAD_CPUTIME_ID. The handler locks its goroutine to its OS thread for its whole
// run, so the thread clock only counts this handler's work (plus any GC assist it is charged).
// It also carries X-Vm-Rss-Bytes: VmRSS from /proc/self/status just before the head is written.
//
// Note: net/http reads the request head on the connection goroutine before the handler
// runs, possibly on another OS thread; that parsing cost is not in X-Thread-Cpu-Ns.
package main

import (
	"sync"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

const clockThreadCputimeID = 3 // CLOCK_THREAD_CPUTIME_ID

func threadCPUNs() int64 {
	var ts syscall.Timespec
	_, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCputimeID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic(errno)
	}
	return ts.Nano()
}

func vmRSSBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

var sink float64

// burnCPU spins until this thread has consumed ms milliseconds of CPU.
func burnCPU(ms float64) {
	until := threadCPUNs() + int64(ms*1e6)
	x := 0.0
	for threadCPUNs() < until {
		for i := 0; i < 100; i++ {
			x += float64(i) * 1.0000001
		}
	}
	sink = x
}

func handle(w http.ResponseWriter, r *http.Request) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPUNs()

	q := r.URL.Query()
	status := 200
	if s := q.Get("status"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			status = n
		}
	}
	payload, _ := io.ReadAll(r.Body)
	var body []byte
	switch r.URL.Path {
	case "/compute":
		ms := 1.0
		if s := q.Get("ms"); s != "" {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				ms = f
			}
		}
		burnCPU(ms)
		body = []byte("computed\n")
	case "/echo":
		body = payload
	case "/size":
		n, _ := strconv.Atoi(q.Get("bytes"))
		if n < 0 {
			n = 0
		}
		body = bytes.Repeat([]byte{'x'}, n)
	default:
		body = []byte("hello " + r.URL.Path + "\n")
	}

	cpu := threadCPUNs() - t0
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Thread-Cpu-Ns", strconv.FormatInt(cpu, 10))
	h.Set("X-Vm-Rss-Bytes", strconv.FormatInt(vmRSSBytes(), 10))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	// Ground truth for the tests: CPU until the response has been handed to the kernel.
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if id := r.Header.Get("X-Correlation-Id"); truth != nil && id != "" {
		rss := vmRSSBytes() // before the clock: the bookkeeping is in the window
		line := fmt.Sprintf("%s %d %d\n", id, threadCPUNs()-t0, rss)
		truthMu.Lock()
		_, _ = truth.WriteString(line)
		truthMu.Unlock()
	}
}

// With PERFCATCH_TRUTH_FILE set, each request appends "<x-correlation-id> <cpu_ns> <rss>".
var (
	truth   *os.File
	truthMu sync.Mutex
)

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if path := os.Getenv("PERFCATCH_TRUTH_FILE"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		truth = f
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:     http.HandlerFunc(handle), // no ServeMux: no path cleaning or redirects
		IdleTimeout: 60 * time.Second,
	}
	fmt.Fprintf(os.Stdout, "LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port)
	_ = os.Stdout.Sync()
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
