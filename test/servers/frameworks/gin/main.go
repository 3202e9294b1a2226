// gin (Go) for the framework matrix. Prints "LISTENING <port>" once bound.
//
// Routes (request id in X-Request-Id, which the agent reads as correlation_id):
//
//	GET /work/:us       burns :us microseconds of CPU on the handler's OS thread
//	GET /size/:bytes    answers a body of :bytes bytes
//	GET /parallel/:us   burns :us microseconds on each of 2 goroutines at once (really
//	                    parallel work: its CPU may exceed its wall time)
//	anything else       404 from the NoRoute handler (so it has a truth line too)
//
// net/http serves each connection on its own goroutine, and the runtime moves goroutines
// between OS threads. The handler's clock is its OS thread's CLOCK_THREAD_CPUTIME_ID with the
// goroutine locked to that thread for the handler's run (as test/servers/go does), so it
// counts only this handler; parsing and writing on the connection goroutine are outside it
// and belong to the calibrated overhead. One JSON truth line per request goes to
// PERFCATCH_TRUTH_FILE (TruthLine in test/harness/frameworks.ts).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gin-gonic/gin"
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

var sink float64

// burnUs spins until this OS thread has spent us microseconds on CPU.
func burnUs(us int64) {
	until := threadCPUNs() + us*1000
	x := 0.0
	for threadCPUNs() < until {
		for i := 0; i < 100; i++ {
			x += float64(i) * 1.0000001
		}
	}
	sink = x
}

type truthLine struct {
	ID          string `json:"id"`
	Pid         int    `json:"pid"`
	Tid         int    `json:"tid"`
	CPUNs       int64  `json:"cpu_ns"`
	WallStartNs string `json:"wall_start_ns"`
	WallEndNs   string `json:"wall_end_ns"`
	Parallel    bool   `json:"parallel"`
}

var (
	truth   *os.File
	truthMu sync.Mutex
)

// timed runs a handler locked to its OS thread and appends its truth line.
func timed(handler func(c *gin.Context) (cpuNs int64, parallel bool)) gin.HandlerFunc {
	return func(c *gin.Context) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		wallStart := time.Now().UnixNano()
		t0 := threadCPUNs()
		extra, parallel := handler(c)
		line := truthLine{
			ID: c.GetHeader("X-Request-Id"), Pid: os.Getpid(), Tid: syscall.Gettid(),
			CPUNs: threadCPUNs() - t0 + extra, WallStartNs: strconv.FormatInt(wallStart, 10),
			WallEndNs: strconv.FormatInt(time.Now().UnixNano(), 10), Parallel: parallel,
		}
		b, _ := json.Marshal(line)
		truthMu.Lock()
		_, _ = truth.Write(append(b, '\n'))
		truthMu.Unlock()
	}
}

func work(c *gin.Context) (int64, bool) {
	us, _ := strconv.ParseInt(c.Param("us"), 10, 64)
	burnUs(us)
	c.Data(http.StatusOK, "text/plain", []byte("worked\n"))
	return 0, false
}

func size(c *gin.Context) (int64, bool) {
	n, _ := strconv.Atoi(c.Param("bytes"))
	c.Data(http.StatusOK, "text/plain", bytes.Repeat([]byte{'x'}, max(n, 0)))
	return 0, false
}

// parallel burns on two helper goroutines, each locked to its own OS thread; their CPU is
// added to the handler's.
func parallel(c *gin.Context) (int64, bool) {
	us, _ := strconv.ParseInt(c.Param("us"), 10, 64)
	var wg sync.WaitGroup
	cpu := make([]int64, 2)
	for i := range cpu {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t0 := threadCPUNs()
			burnUs(us)
			cpu[i] = threadCPUNs() - t0
		}()
	}
	wg.Wait()
	c.Data(http.StatusOK, "text/plain", []byte("parallel\n"))
	return cpu[0] + cpu[1], true
}

func notFound(c *gin.Context) (int64, bool) {
	c.Data(http.StatusNotFound, "text/plain", []byte("not here\n"))
	return 0, false
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	f, err := os.OpenFile(os.Getenv("PERFCATCH_TRUTH_FILE"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	truth = f
	gin.SetMode(gin.ReleaseMode)
	r := gin.New() // no logger, no recovery middleware: only the framework's routing
	r.GET("/work/:us", timed(work))
	r.GET("/size/:bytes", timed(size))
	r.GET("/parallel/:us", timed(parallel))
	r.NoRoute(timed(notFound))
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stdout, "LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port)
	_ = os.Stdout.Sync()
	srv := &http.Server{Handler: r, IdleTimeout: 60 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
