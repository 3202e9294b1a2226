// grpc-go peer for test/e2e/grpc-peers.test.ts: a server and a client of one service,
// perfcatch.test.Echo, with google.protobuf.BytesValue messages (no generated code).
//
//	grpc-peer server TRUTH_FILE        listens on 127.0.0.1:0, prints "LISTENING <port>"
//	grpc-peer unary ADDR N CONCURRENCY PREFIX TRUTH_FILE
//	grpc-peer stream ADDR CALLS MESSAGES SIZE PREFIX TRUTH_FILE
//	grpc-peer load ADDR SECONDS CONCURRENCY   (npm run bench: OK calls for SECONDS, prints
//	                                          {"requests","errors","rps","p50_ms","p99_ms"})
//
// Unary: the first payload byte picks the outcome (0 OK, 1 NOT_FOUND, 2 INTERNAL). Stream:
// the server sends MESSAGES messages of SIZE bytes. Both sides write one JSON line per call
// to their TRUTH_FILE (what they counted themselves, from grpc-go's stats handler on the
// server: the wire length of the request's header block and of each message).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// truthWriter appends JSON lines from many goroutines.
type truthWriter struct {
	mu sync.Mutex
	f  *os.File
}

func (w *truthWriter) write(v any) {
	line, _ := json.Marshal(v)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.f.Write(append(line, '\n'))
}

func openTruth(path string) *truthWriter {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fail(err)
	}
	return &truthWriter{f: f}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// serverCall is what the server's stats handler saw of one RPC.
type serverCall struct {
	ID     string `json:"id"`
	Method string `json:"method"`
	Code   int    `json:"code"`
	// Wire length of the request HEADERS block, of the request messages and of the response
	// messages (each with its 5-byte gRPC prefix).
	InHeaderWire   int `json:"in_header_wire"`
	InPayloadWire  int `json:"in_payload_wire"`
	OutPayloadWire int `json:"out_payload_wire"`
	OutMessages    int `json:"out_messages"`
}

type callKey struct{}

type truthStats struct{ out *truthWriter }

func (h *truthStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, callKey{}, &serverCall{Method: info.FullMethodName})
}
func (h *truthStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	c := ctx.Value(callKey{}).(*serverCall)
	switch e := s.(type) {
	case *stats.InHeader:
		c.InHeaderWire += e.WireLength
		if ids := e.Header.Get("x-correlation-id"); len(ids) > 0 {
			c.ID = ids[0]
		}
	case *stats.InPayload:
		c.InPayloadWire += e.WireLength
	case *stats.OutPayload:
		c.OutPayloadWire += e.WireLength
		c.OutMessages++
	case *stats.End:
		c.Code = int(status.Code(e.Error))
		h.out.write(c)
	}
}
func (h *truthStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (h *truthStats) HandleConn(context.Context, stats.ConnStats)                       {}

func unary(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	in := new(wrapperspb.BytesValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	kind := byte(0)
	if len(in.Value) > 0 {
		kind = in.Value[0]
	}
	switch kind {
	case 1:
		return nil, status.Error(codes.NotFound, "no such thing")
	case 2:
		return nil, status.Error(codes.Internal, "it broke")
	}
	return wrapperspb.Bytes(make([]byte, len(in.Value)*2)), nil
}

func serverStream(_ any, stream grpc.ServerStream) error {
	in := new(wrapperspb.BytesValue)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	var count, size int
	if _, err := fmt.Sscanf(string(in.Value), "%d,%d", &count, &size); err != nil {
		return status.Error(codes.InvalidArgument, "want COUNT,SIZE")
	}
	for i := 0; i < count; i++ {
		if err := stream.SendMsg(wrapperspb.Bytes(make([]byte, size))); err != nil {
			return err
		}
	}
	return nil
}

var echoService = grpc.ServiceDesc{
	ServiceName: "perfcatch.test.Echo",
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Call", Handler: unary}},
	Streams:     []grpc.StreamDesc{{StreamName: "Stream", Handler: serverStream, ServerStreams: true}},
}

func runServer(truthPath string) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	s := grpc.NewServer(grpc.StatsHandler(&truthStats{out: openTruth(truthPath)}))
	s.RegisterService(&echoService, struct{}{})
	fmt.Printf("LISTENING %d\n", lis.Addr().(*net.TCPAddr).Port)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		s.Stop()
	}()
	if err := s.Serve(lis); err != nil {
		fail(err)
	}
}

type clientCall struct {
	ID       string `json:"id"`
	Code     int    `json:"code"`
	Messages int    `json:"messages,omitempty"`
	Bytes    int    `json:"bytes,omitempty"`
}

func dial(addr string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		fail(err)
	}
	return conn
}

// One connection, `concurrency` goroutines taking calls from a shared counter.
func runUnary(addr string, n, concurrency int, prefix, truthPath string) {
	conn := dial(addr)
	defer conn.Close()
	out := openTruth(truthPath)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				id := prefix + strconv.Itoa(i)
				payload := make([]byte, 1+i%200)
				payload[0] = byte(i % 3)
				ctx := metadata.AppendToOutgoingContext(context.Background(), "x-correlation-id", id)
				reply := new(wrapperspb.BytesValue)
				err := conn.Invoke(ctx, "/perfcatch.test.Echo/Call", wrapperspb.Bytes(payload), reply)
				out.write(clientCall{ID: id, Code: int(status.Code(err))})
			}
		}()
	}
	wg.Wait()
}

func runStream(addr string, calls, messages, size int, prefix, truthPath string) {
	conn := dial(addr)
	defer conn.Close()
	out := openTruth(truthPath)
	var wg sync.WaitGroup
	desc := &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true}
	for c := 0; c < calls; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			id := prefix + strconv.Itoa(c)
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-correlation-id", id)
			result := clientCall{ID: id}
			stream, err := conn.NewStream(ctx, desc, "/perfcatch.test.Echo/Stream")
			if err == nil {
				err = stream.SendMsg(wrapperspb.Bytes([]byte(fmt.Sprintf("%d,%d", messages, size))))
			}
			if err == nil {
				err = stream.CloseSend()
			}
			for err == nil {
				m := new(wrapperspb.BytesValue)
				if err = stream.RecvMsg(m); err == nil {
					result.Messages++
					result.Bytes += len(m.Value)
				}
			}
			if err.Error() == "EOF" {
				err = nil
			}
			result.Code = int(status.Code(err))
			out.write(result)
		}(c)
	}
	wg.Wait()
}

// Unary OK calls from `concurrency` goroutines on one connection for `seconds`.
func runLoad(addr string, seconds float64, concurrency int) {
	conn := dial(addr)
	defer conn.Close()
	start := time.Now()
	deadline := start.Add(time.Duration(seconds * float64(time.Second)))
	latencies := make([][]time.Duration, concurrency)
	errors := make([]int, concurrency)
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			payload := wrapperspb.Bytes(make([]byte, 16))
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := conn.Invoke(context.Background(), "/perfcatch.test.Echo/Call", payload, new(wrapperspb.BytesValue))
				latencies[w] = append(latencies[w], time.Since(t0))
				if err != nil {
					errors[w]++
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	var all []time.Duration
	failed := 0
	for w := range latencies {
		all = append(all, latencies[w]...)
		failed += errors[w]
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))]) / 1e6
	}
	line, _ := json.Marshal(map[string]any{"requests": len(all), "errors": failed, "rps": float64(len(all)) / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99)})
	fmt.Println(string(line))
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(err)
	}
	return n
}

func main() {
	a := os.Args
	switch {
	case len(a) == 3 && a[1] == "server":
		runServer(a[2])
	case len(a) == 7 && a[1] == "unary":
		runUnary(a[2], atoi(a[3]), atoi(a[4]), a[5], a[6])
	case len(a) == 5 && a[1] == "load":
		secs, err := strconv.ParseFloat(a[3], 64)
		if err != nil {
			fail(err)
		}
		runLoad(a[2], secs, atoi(a[4]))
	case len(a) == 8 && a[1] == "stream":
		runStream(a[2], atoi(a[3]), atoi(a[4]), atoi(a[5]), a[6], a[7])
	default:
		fail(fmt.Errorf("usage: grpc-peer server TRUTH | unary ADDR N CONCURRENCY PREFIX TRUTH | stream ADDR CALLS MESSAGES SIZE PREFIX TRUTH | load ADDR SECONDS CONCURRENCY"))
	}
}
