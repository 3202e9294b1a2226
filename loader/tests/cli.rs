//! End-to-end checks of the loader binary: exit codes, the frame stream, the stdin protocol and
//! a real HTTP exchange. Tests that load BPF need root and the object (../build/perfcatch.bpf.o
//! or PERFCATCH_BPF_OBJECT); without root they print why and return.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perfcatch_loader::exit::{PC_EXIT_OBJECT, PC_EXIT_PRIVILEGE, PC_EXIT_USAGE};
use perfcatch_loader::record::{
    PcRequest, PC_ABI_VERSION, PC_REC_DATA, PC_REC_H2_CONN, PC_REC_LOADER_INFO, PC_REC_REQUEST,
    PC_REC_RING_MARK, PC_REC_STATS,
};

const BIN: &str = env!("CARGO_BIN_EXE_perfcatch-loader");

fn object_path() -> String {
    std::env::var("PERFCATCH_BPF_OBJECT")
        .unwrap_or_else(|_| format!("{}/../build/perfcatch.bpf.o", env!("CARGO_MANIFEST_DIR")))
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Runs the loader to completion with stdin closed; returns (exit code, stderr).
fn run_to_exit(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).stdin(Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_one_line_error(code: i32, stderr: &str, want: i32) {
    assert_eq!(code, want, "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one stderr line expected: {stderr}");
    assert!(stderr.starts_with("perfcatch-loader: "), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["--bogus"][..], &[], &["--bpf-object", "x", "--ringbuf-bytes", "12345"]] {
        let (code, err) = run_to_exit(args);
        assert_one_line_error(code, &err, PC_EXIT_USAGE);
    }
}

#[test]
fn missing_object_exits_6() {
    let (code, err) = run_to_exit(&["--bpf-object", "/nonexistent/perfcatch.bpf.o"]);
    assert_one_line_error(code, &err, PC_EXIT_OBJECT);
}

/// A running loader: frames arrive on a channel, stdin is ours to write.
struct Loader {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: Receiver<Vec<u8>>,
}

impl Loader {
    fn start(extra: &[&str]) -> Loader {
        Loader::start_gated(extra, None)
    }

    /// With a gate, only the first frame (the loader info) is read before the gate opens: the
    /// loader's writes fill the stdout pipe and block.
    fn start_gated(extra: &[&str], gate: Option<Receiver<()>>) -> Loader {
        let obj = object_path();
        assert!(std::path::Path::new(&obj).exists(), "BPF object {obj} is missing: run `make -C bpf` first");
        let mut child = Command::new(BIN)
            .args(["--bpf-object", &obj, "--stats-interval-ms", "60000", "--ringbuf-bytes", "1048576"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, frames) = channel();
        std::thread::spawn(move || {
            let mut gate = gate;
            loop {
                let mut len = [0u8; 4];
                if stdout.read_exact(&mut len).is_err() {
                    break;
                }
                let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
                if stdout.read_exact(&mut buf).is_err() || tx.send(buf).is_err() {
                    break;
                }
                if let Some(g) = gate.take() {
                    let _ = g.recv();
                }
            }
        });
        Loader { stdin: child.stdin.take(), child, frames }
    }

    fn next_frame(&self, deadline: Instant) -> Option<Vec<u8>> {
        self.frames.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()
    }

    /// Frames until one of type `ty` arrives (returned with the ones skipped).
    fn wait_for(&self, ty: u32, secs: u64) -> (Vec<u8>, Vec<Vec<u8>>) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut skipped = vec![];
        while let Some(f) = self.next_frame(deadline) {
            if u32_at(&f, 0) == ty {
                return (f, skipped);
            }
            skipped.push(f);
        }
        panic!("no frame of type {ty} within {secs}s");
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    /// Closes stdin (the "parent died" signal) and returns the exit code.
    fn close(mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("loader did not exit after stdin EOF");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn loader_info_json(f: &[u8]) -> serde_json::Value {
    let len = u32_at(f, 4) as usize;
    assert_eq!(f.len(), 8 + len);
    serde_json::from_slice(&f[8..]).unwrap()
}

#[test]
fn info_stats_and_clean_exit() {
    assert!(is_root(), "info_stats_and_clean_exit loads the BPF object: run the tests as root");
    let mut l = Loader::start(&["--capture-response-bytes", "100"]);
    let first = l.next_frame(Instant::now() + Duration::from_secs(30)).expect("a first frame");
    assert_eq!(u32_at(&first, 0), PC_REC_LOADER_INFO, "the first frame is the loader info");
    let info = loader_info_json(&first);
    assert_eq!(info["abi"], PC_ABI_VERSION);
    assert_eq!(info["capture_response_bytes"], 100);
    assert_eq!(info["ringbuf_bytes"], 1048576);
    assert_eq!(info["pid"], l.child.id());
    assert!(!info["programs"].as_array().unwrap().is_empty());

    l.send("bogus command");
    l.send("stats");
    let (stats, _) = l.wait_for(PC_REC_STATS, 10);
    assert_eq!(stats.len(), 184, "sizeof(struct pc_stats)");
    assert_eq!(u32_at(&stats, 4), 18, "n_kernel");
    assert_eq!(l.close(), 0);
}

/// Kills the server even when an assertion fails first: a leaked child would hold the test
/// runner's stdout open and hang whoever waits for it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Tiny HTTP server in its own process (the loader ignores its parent, i.e. this test).
fn start_server() -> (KillOnDrop, u16) {
    let script = "import http.server,sys\n\
        class H(http.server.BaseHTTPRequestHandler):\n\
        \x20def do_GET(self):\n\
        \x20 b=b'hello from perfcatch test'\n\
        \x20 self.send_response(200);self.send_header('Content-Length',str(len(b)));self.end_headers();self.wfile.write(b)\n\
        \x20def log_message(self,*a):pass\n\
        s=http.server.HTTPServer(('127.0.0.1',0),H)\n\
        print(s.server_address[1],flush=True)\n\
        s.serve_forever()\n";
    let mut child = KillOnDrop(
        Command::new("python3")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    (child, line.trim().parse().expect("server port"))
}

fn http_get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /e2e HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[test]
fn http_requests_come_out_as_frames() {
    assert!(is_root(), "http_requests_come_out_as_frames loads the BPF object: run the tests as root");
    let (server, port) = start_server();
    // Closed to every other server from the start (port 1), so that no other traffic on this
    // host is in the ring before the command below opens it to ours.
    let mut l = Loader::start(&["--ports", "1"]);
    l.wait_for(PC_REC_LOADER_INFO, 30);
    // Only our server's port; the STATS reply proves the ports command was applied before it.
    l.send(&format!("ports {port}"));
    l.send("stats");
    l.wait_for(PC_REC_STATS, 10);
    for _ in 0..3 {
        assert!(http_get(port).contains("hello from perfcatch test"));
    }
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut requests, mut data) = (vec![], vec![]);
    while requests.len() < 3 {
        let f = l.next_frame(deadline).expect("3 request records within 10s");
        match u32_at(&f, 0) {
            PC_REC_REQUEST => requests.push(f),
            PC_REC_DATA => data.push(f),
            _ => {}
        }
    }
    for r in &requests {
        assert_eq!(r.len(), std::mem::size_of::<PcRequest>(), "sizeof(struct pc_request)");
        assert_eq!(u16_at(r, 86), port, "local_port: the ports filter lets only our server through");
        let (start, end) = (u64_at(r, 32), u64_at(r, 40));
        assert!(start <= end, "start {start} end {end}");
        assert!(now_ns.abs_diff(start) < 60_000_000_000, "start_ns {start} is epoch time (now {now_ns})");
        assert_eq!(u32_at(r, 8), server.0.id(), "pid");
    }
    let req_bytes: Vec<u8> = data.iter().filter(|d| d[4] == 1).flat_map(|d| d[24..].to_vec()).collect();
    assert!(String::from_utf8_lossy(&req_bytes).contains("GET /e2e HTTP/1.1"), "captured request bytes");
    drop(server);
    assert_eq!(l.close(), 0);
}

#[test]
fn unprivileged_run_exits_3() {
    assert!(is_root(), "unprivileged_run_exits_3 drops root's privileges: run the tests as root");
    assert!(
        Command::new("setpriv").arg("--version").output().is_ok(),
        "unprivileged_run_exits_3 needs setpriv (util-linux)"
    );
    // Copies readable by nobody, whatever the permissions of the work tree.
    let dir = std::env::temp_dir().join(format!("perfcatch-loader-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (bin, obj) = (dir.join("perfcatch-loader"), dir.join("perfcatch.bpf.o"));
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::copy(object_path(), &obj).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(&bin)
        .args(["--bpf-object", obj.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_one_line_error(out.status.code().unwrap_or(-1), &stderr, PC_EXIT_PRIVILEGE);
    assert!(stderr.contains("CAP_BPF"), "{stderr}");
}

fn info_of(l: &Loader) -> serde_json::Value {
    let (f, _) = l.wait_for(PC_REC_LOADER_INFO, 30);
    loader_info_json(&f)
}

/// Request records until `n` arrived or `secs` passed.
fn requests_within(l: &Loader, n: usize, secs: u64) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut out = vec![];
    while out.len() < n {
        let Some(f) = l.next_frame(deadline) else { break };
        if u32_at(&f, 0) == PC_REC_REQUEST {
            out.push(f);
        }
    }
    out
}

/// As `requests_within`, and the loader's last ring mark with the ring records received whole
/// after it: what the agent passes to the next loader as `--resume` (src/loader/loader-process.ts).
fn requests_and_mark_within(l: &Loader, n: usize, secs: u64) -> (Vec<Vec<u8>>, Option<(u64, u64)>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut out, mut mark) = (vec![], None);
    while out.len() < n {
        let Some(f) = l.next_frame(deadline) else { break };
        match u32_at(&f, 0) {
            PC_REC_RING_MARK => mark = Some((u64_at(&f, 8), 0)),
            ty if ty <= PC_REC_H2_CONN => {
                if let Some((_, received)) = mark.as_mut() {
                    *received += 1;
                }
                if ty == PC_REC_REQUEST {
                    out.push(f);
                }
            }
            _ => {}
        }
    }
    (out, mark)
}

/// --pin-root: a loader killed with SIGKILL leaves the programs attached and the records in the
/// ring buffer; the next one takes them over (requests made while no loader ran included), and
/// a clean stop removes the pins.
#[test]
fn pinned_state_outlives_a_killed_loader() {
    assert!(is_root(), "pinned_state_outlives_a_killed_loader loads the BPF object: run the tests as root");
    let root = format!("/sys/fs/bpf/perfcatch-cargo-test-{}", std::process::id());
    let (_server, port) = start_server();
    let ports = port.to_string();
    // No timed drain: only what the kernel wakes the loader for (a quarter of the ring) is read.
    let args = ["--pin-root", root.as_str(), "--ports", ports.as_str(), "--drain-interval-ms", "60000"];
    let mut first = Loader::start(&args);
    let info = info_of(&first);
    assert_eq!(info["pins"]["state"], "fresh", "{info}");
    let dir = info["pins"]["dir"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&dir).join("links").read_dir().unwrap().count() >= 10, "links pinned in {dir}");
    for _ in 0..3 {
        assert!(http_get(port).contains("hello from perfcatch test"));
    }
    first.child.kill().unwrap(); // SIGKILL: what it had not drained stays in the ring
    first.child.wait().unwrap();
    // A record submitted with a wakeup (the first after an idle ring) may have been drained and
    // written before the kill: given back (not read again), or not yet given back, in which case
    // --resume, as the agent passes it, says how many the next loader steps over.
    let (before_kill, mark) = requests_and_mark_within(&first, 3, 2);
    for _ in 0..3 {
        assert!(http_get(port).contains("hello from perfcatch test"), "served while no loader runs");
    }
    let resume = mark.map(|(pos, received)| format!("{pos},{received}"));
    let mut args = vec!["--pin-root", root.as_str(), "--ports", ports.as_str()];
    if let Some(r) = resume.as_deref() {
        args.extend(["--resume", r]);
    }
    let second = Loader::start(&args);
    let again = info_of(&second);
    assert_eq!(again["pins"]["state"], "reused", "{again}");
    assert_eq!(again["pins"]["state_id"], info["pins"]["state_id"], "the same ring buffer");
    assert_eq!(again["pins"]["dir"], info["pins"]["dir"]);
    let got = requests_within(&second, 6 - before_kill.len(), 10);
    assert_eq!(
        before_kill.len() + got.len(),
        6,
        "3 requests before the kill and 3 while no loader ran ({} written by the first loader)",
        before_kill.len()
    );
    let ids: std::collections::BTreeSet<u64> = before_kill.iter().chain(got.iter()).map(|r| u64_at(r, 16)).collect();
    assert_eq!(ids.len(), 6, "connection ids go on, none delivered twice: {ids:?} (resume {resume:?}, {again})");
    assert_eq!(second.close(), 0);
    assert!(!std::path::Path::new(&dir).exists(), "{dir} removed by the clean stop");
    let _ = std::fs::remove_dir_all(&root);
}

/// --resume: a loader killed after writing part of a chunk, before giving it back to the kernel,
/// leaves the whole chunk in the pinned ring; the next loader, told how many of its records the
/// agent received whole, steps over exactly those. Made deterministic by a full stdout pipe: the
/// loader is stopped while requests pile up in the ring, then blocks writing their chunk.
#[test]
fn resume_skips_what_a_killed_loader_had_written() {
    assert!(is_root(), "resume_skips_what_a_killed_loader_had_written loads the BPF object: run the tests as root");
    // The stopped loader is sure to be woken once a quarter of the 1 MiB ring is unread
    // (wakeup_bytes): 800 requests' records (a request record and three captures each, about
    // 470 bytes a request, measured) are about 370 KB, well past it and well within the ring.
    const N: usize = 800;
    let root = format!("/sys/fs/bpf/perfcatch-cargo-resume-{}", std::process::id());
    let (_server, port) = start_server();
    let ports = port.to_string();
    let args = ["--pin-root", root.as_str(), "--ports", ports.as_str(), "--drain-interval-ms", "60000"];
    let (open_gate, gate) = channel();
    let mut first = Loader::start_gated(&args, Some(gate));
    assert_eq!(info_of(&first)["pins"]["state"], "fresh");
    let pid = first.child.id() as libc::pid_t;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    for _ in 0..N {
        assert!(http_get(port).contains("hello from perfcatch test"));
    }
    // Resumed, it drains the pile as one chunk (CHUNK_BYTES 256 KiB is more than these
    // records), and its write blocks once the 64 KiB pipe is full: mark, part of the chunk.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    std::thread::sleep(Duration::from_millis(500));
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    open_gate.send(()).unwrap();
    let (before_kill, mark) = requests_and_mark_within(&first, N, 2);
    let (pos, received) = mark.expect("the killed loader wrote a ring mark");
    assert!(received > 0 && before_kill.len() < N, "part of the chunk was written ({received} records, {} requests)", before_kill.len());
    let resume = format!("{pos},{received}");
    let second = Loader::start(&["--pin-root", root.as_str(), "--ports", ports.as_str(), "--resume", resume.as_str()]);
    let again = info_of(&second);
    assert_eq!(again["pins"]["state"], "reused", "{again}");
    assert_eq!(again["pins"]["skipped"], received, "the records written before the kill are stepped over: {again}");
    let got = requests_within(&second, N - before_kill.len(), 10);
    let ids: std::collections::BTreeSet<u64> = before_kill.iter().chain(got.iter()).map(|r| u64_at(r, 16)).collect();
    assert_eq!(before_kill.len() + got.len(), N, "every request once ({} before the kill)", before_kill.len());
    assert_eq!(ids.len(), N, "none delivered twice");
    assert_eq!(second.close(), 0);
    let _ = std::fs::remove_dir_all(&root);
}
