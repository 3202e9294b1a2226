// Ground-truth Java server: com.sun.net.httpserver.HttpServer on a fixed pool of 8 threads,
// HTTP/1.1 keep-alive. Prints "LISTENING <port>" once bound.
//
// Every response carries X-Thread-Cpu-Ns: the handler thread's CPU time
// (ThreadMXBean.getCurrentThreadCpuTime, i.e. CLOCK_THREAD_CPUTIME_ID) from the start of
// handle() to just before sendResponseHeaders, and X-Vm-Rss-Bytes: VmRSS from
// /proc/self/status just before the head is written.
//
// Threading (JDK 17 sun.net.httpserver): the "HTTP-Dispatcher" thread accepts and selects;
// the request line and headers are parsed on the pool thread that then runs the handler.
// That parsing happens before handle() starts, so it is not in X-Thread-Cpu-Ns. The truth
// file's clock starts where the pool thread starts the exchange (the executor's task), so it
// holds that parsing, and not the pool's dequeue and wake-up before it, which come before the
// exchange's first read.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executors;

public final class GroundTruthServer {
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
    private static volatile double sink;

    private static long threadCpuNs() {
        return THREADS.getCurrentThreadCpuTime();
    }

    private static long vmRssBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"), StandardCharsets.ISO_8859_1)) {
                if (line.startsWith("VmRSS:")) {
                    String[] f = line.substring(6).trim().split("\\s+");
                    return Long.parseLong(f[0]) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            // fall through
        }
        return 0;
    }

    private static void burnCpu(double ms) {
        long until = threadCpuNs() + (long) (ms * 1e6);
        double x = 0;
        while (threadCpuNs() < until) {
            for (int i = 0; i < 100; i++) x += Math.sqrt(x + i);
        }
        sink = x;
    }

    private static Map<String, String> query(URI uri) {
        Map<String, String> q = new HashMap<>();
        String raw = uri.getRawQuery();
        if (raw == null) return q;
        for (String kv : raw.split("&")) {
            int i = kv.indexOf('=');
            if (i > 0) q.putIfAbsent(kv.substring(0, i), kv.substring(i + 1));
            else if (!kv.isEmpty()) q.putIfAbsent(kv, "");
        }
        return q;
    }

    /** CPU clock of this pool thread when it started the exchange it runs. */
    private static final ThreadLocal<Long> EXCHANGE_START = new ThreadLocal<>();
    private static final String TRUTH_FILE = System.getenv("PERFCATCH_TRUTH_FILE");
    private static final Object TRUTH_LOCK = new Object();

    private static void handle(HttpExchange ex) throws IOException {
        long t0 = threadCpuNs();
        // The request line and headers were parsed on this thread before handle(): the truth
        // clock starts where this thread started the exchange.
        Long started = EXCHANGE_START.get();
        long truthStart = started != null ? started : t0;
        try (ex) {
            URI uri = ex.getRequestURI();
            Map<String, String> q = query(uri);
            int status = q.containsKey("status") ? Integer.parseInt(q.get("status")) : 200;
            byte[] payload;
            try (InputStream in = ex.getRequestBody()) {
                payload = in.readAllBytes();
            }
            String path = uri.getRawPath();
            byte[] body;
            switch (path) {
                case "/compute" -> {
                    burnCpu(q.containsKey("ms") ? Double.parseDouble(q.get("ms")) : 1);
                    body = "computed\n".getBytes(StandardCharsets.US_ASCII);
                }
                case "/echo" -> body = payload;
                case "/size" -> {
                    body = new byte[q.containsKey("bytes") ? Integer.parseInt(q.get("bytes")) : 0];
                    Arrays.fill(body, (byte) 'x');
                }
                default -> body = ("hello " + path + "\n").getBytes(StandardCharsets.UTF_8);
            }
            long cpu = threadCpuNs() - t0;
            var h = ex.getResponseHeaders();
            h.set("Content-Type", "text/plain");
            h.set("X-Thread-Cpu-Ns", Long.toString(cpu));
            h.set("X-Vm-Rss-Bytes", Long.toString(vmRssBytes()));
            // 0 would mean chunked; -1 means "no body" and still sends Content-Length: 0.
            ex.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
            if (body.length > 0) {
                try (OutputStream out = ex.getResponseBody()) {
                    out.write(body);
                }
            }
        }
        String id = ex.getRequestHeaders().getFirst("X-Correlation-ID");
        if (TRUTH_FILE != null && id != null) {
            long rss = vmRssBytes(); // before the clock: the bookkeeping is in the window
            String line = id + " " + (threadCpuNs() - truthStart) + " " + rss + "\n";
            synchronized (TRUTH_LOCK) {
                Files.writeString(Path.of(TRUTH_FILE), line, StandardCharsets.ISO_8859_1,
                        java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
            }
        }
    }

    public static void main(String[] args) throws IOException {
        // Keep idle keep-alive connections as long as the other ground-truth servers do.
        System.setProperty("sun.net.httpserver.idleInterval", "60");
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 128);
        var pool = Executors.newFixedThreadPool(8);
        server.setExecutor(exchange -> pool.execute(() -> {
            EXCHANGE_START.set(threadCpuNs());
            exchange.run();
        }));
        server.createContext("/", GroundTruthServer::handle);
        server.start();
        System.out.println("LISTENING " + server.getAddress().getPort());
        System.out.flush();
    }
}
