// HTTP/2 cleartext test server: golang.org/x/net/http2/h2c, which takes both an HTTP/1.1
// `Upgrade: h2c` request (answered 101, then served as stream 1) and prior knowledge (the
// client preface first). Prints "LISTENING <port>" once bound.
//
//	GET|POST /ok/<i>?n=<bytes>   200 with n bytes (POST: the body's length more)
//	GET /missing/<i>             404
//	GET /fail/<i>                500
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

func handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.Copy(io.Discard, r.Body)
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil {
		n = 16
	}
	status := http.StatusOK
	switch {
	case strings.HasPrefix(r.URL.Path, "/missing"):
		status = http.StatusNotFound
	case strings.HasPrefix(r.URL.Path, "/fail"):
		status = http.StatusInternalServerError
	}
	if r.Method == http.MethodPost {
		n += int(body)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(status)
	w.Write(bytes.Repeat([]byte{'a'}, n))
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		panic(err)
	}
	fmt.Printf("LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(handle), &http2.Server{})}
	panic(srv.Serve(ln))
}
