// Embedded Jetty 12 (core Handler API, QueuedThreadPool) for the framework matrix. Prints
// "LISTENING <port>" once bound.
//
// Routes (request id in X-Request-Id, which the agent reads as correlation_id):
//   GET /work/<us>    burns <us> microseconds of this thread's CPU
//   GET /size/<bytes> answers a body of <bytes> bytes
//   anything else     404 from the handler below (so it has a truth line too)
//
// Jetty's selector threads find the readable connections and hand them to pool threads,
// which parse the request and run the handler: a request's work is spread over threads. The
// handler's clock is ThreadMXBean.getCurrentThreadCpuTime (CLOCK_THREAD_CPUTIME_ID) from the
// start of handle() to just after its response is handed to Jetty; everything else is the
// calibrated overhead. One JSON truth line per request goes to PERFCATCH_TRUTH_FILE (TruthLine
// in test/harness/frameworks.ts); tid is the OS thread id, read from /proc/thread-self.
import java.io.FileOutputStream;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.QueuedThreadPool;

public final class FrameworkServer {
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
    private static final long PID = ProcessHandle.current().pid();
    private static volatile double sink;
    private static FileOutputStream truth;

    private static long threadCpuNs() {
        return THREADS.getCurrentThreadCpuTime();
    }

    private static long wallNs() {
        java.time.Instant now = java.time.Instant.now();
        return now.getEpochSecond() * 1_000_000_000L + now.getNano();
    }

    /** "<pid>/task/<tid>" -> tid. */
    private static long osTid() {
        try {
            String link = Files.readSymbolicLink(Path.of("/proc/thread-self")).toString();
            return Long.parseLong(link.substring(link.lastIndexOf('/') + 1));
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    private static void burnUs(long us) {
        long until = threadCpuNs() + us * 1000;
        double x = 0;
        while (threadCpuNs() < until) {
            for (int i = 0; i < 100; i++) x += Math.sqrt(x + i);
        }
        sink = x;
    }

    private static synchronized void writeTruth(String line) throws IOException {
        truth.write(line.getBytes(StandardCharsets.UTF_8));
    }

    static final class App extends Handler.Abstract {
        @Override
        public boolean handle(Request request, Response response, Callback callback) throws Exception {
            long wallStart = wallNs();
            long t0 = threadCpuNs();
            String id = request.getHeaders().get("X-Request-Id");
            String[] parts = Request.getPathInContext(request).split("/");
            int status = 200;
            byte[] body;
            if (parts.length == 3 && parts[1].equals("work")) {
                burnUs(Long.parseLong(parts[2]));
                body = "worked\n".getBytes(StandardCharsets.US_ASCII);
            } else if (parts.length == 3 && parts[1].equals("size")) {
                body = new byte[Integer.parseInt(parts[2])];
                Arrays.fill(body, (byte) 'x');
            } else {
                status = 404;
                body = "not here\n".getBytes(StandardCharsets.US_ASCII);
            }
            response.setStatus(status);
            response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/plain");
            response.getHeaders().put(HttpHeader.CONTENT_LENGTH, (long) body.length);
            response.write(true, ByteBuffer.wrap(body), callback);
            long cpu = threadCpuNs() - t0;
            writeTruth(String.format("{\"id\":\"%s\",\"pid\":%d,\"tid\":%d,\"cpu_ns\":%d,\"wall_start_ns\":\"%d\",\"wall_end_ns\":\"%d\",\"parallel\":false}%n",
                    id, PID, osTid(), cpu, wallStart, wallNs()));
            return true;
        }
    }

    public static void main(String[] args) throws Exception {
        truth = new FileOutputStream(System.getenv("PERFCATCH_TRUTH_FILE"), true);
        QueuedThreadPool pool = new QueuedThreadPool(16, 8);
        pool.setName("jetty-pool");
        Server server = new Server(pool);
        ServerConnector connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        connector.setPort(args.length > 0 ? Integer.parseInt(args[0]) : 0);
        connector.setIdleTimeout(60_000);
        server.addConnector(connector);
        server.setHandler(new App());
        server.start();
        System.out.println("LISTENING " + connector.getLocalPort());
        System.out.flush();
        server.join();
    }
}
