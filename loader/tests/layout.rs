//! The Rust mirrors in src/record.rs and src/exit.rs must match the BTF of the compiled BPF
//! object (the C header is the contract). Needs bpftool and the object: ../build/perfcatch.bpf.o,
//! or the path in PERFCATCH_BPF_OBJECT. A missing object is a failure, not a skip: CI must not
//! go green blind.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

use perfcatch_loader::exit::*;
use perfcatch_loader::record::*;
use serde_json::Value;

fn object_path() -> String {
    std::env::var("PERFCATCH_BPF_OBJECT")
        .unwrap_or_else(|_| format!("{}/../build/perfcatch.bpf.o", env!("CARGO_MANIFEST_DIR")))
}

/// All BTF types of the object, from `bpftool btf dump ... format raw -j`.
fn btf_types() -> Vec<Value> {
    let path = object_path();
    assert!(
        std::path::Path::new(&path).exists(),
        "BPF object {path} is missing: run `make -C bpf` first (or set PERFCATCH_BPF_OBJECT)"
    );
    let out = Command::new("bpftool")
        .args(["btf", "dump", "file", &path, "format", "raw", "-j"])
        .output()
        .expect("running bpftool (is it installed?)");
    assert!(out.status.success(), "bpftool failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    v["types"].as_array().expect("types array").clone()
}

fn by_id(types: &[Value]) -> BTreeMap<u64, &Value> {
    types.iter().map(|t| (t["id"].as_u64().unwrap(), t)).collect()
}

/// Byte size of a BTF type, looking through typedefs and qualifiers.
fn type_size(ids: &BTreeMap<u64, &Value>, id: u64) -> u64 {
    let t = ids[&id];
    match t["kind"].as_str().unwrap() {
        "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG" => type_size(ids, t["type_id"].as_u64().unwrap()),
        "ARRAY" => t["nr_elems"].as_u64().unwrap() * type_size(ids, t["type_id"].as_u64().unwrap()),
        _ => t["size"].as_u64().expect("sized type"),
    }
}

fn find<'a>(types: &'a [Value], kind: &[&str], name: &str) -> &'a Value {
    types.iter().find(|t| kind.contains(&t["kind"].as_str().unwrap_or("")) && t["name"] == name).unwrap_or_else(|| {
        panic!("{} {name} is not in the BTF of {}: the BPF object must reference it", kind[0], object_path())
    })
}

/// (name, byte offset, byte size) of a Rust field.
type Field = (&'static str, usize, usize);

fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

macro_rules! fields {
    ($ty:ty { $($f:ident),* $(,)? }) => {
        vec![$((
            stringify!($f).trim_start_matches("r#"),
            offset_of!($ty, $f),
            size_of_field(|s: &$ty| &s.$f),
        )),*]
    };
}

fn check_struct(types: &[Value], name: &str, size: usize, fields: Vec<Field>) {
    let ids = by_id(types);
    let t = find(types, &["STRUCT"], name);
    assert_eq!(t["size"].as_u64().unwrap() as usize, size, "sizeof(struct {name})");
    let members = t["members"].as_array().unwrap();
    let btf: Vec<(String, usize, usize)> = members
        .iter()
        .map(|m| {
            let bits = m["bits_offset"].as_u64().unwrap();
            assert_eq!(bits % 8, 0, "{name}.{}: bitfields are not allowed", m["name"]);
            let sz = type_size(&ids, m["type_id"].as_u64().unwrap()) as usize;
            (m["name"].as_str().unwrap().to_string(), (bits / 8) as usize, sz)
        })
        .collect();
    let rust: Vec<(String, usize, usize)> = fields.into_iter().map(|(n, o, s)| (n.to_string(), o, s)).collect();
    assert_eq!(btf, rust, "struct {name}: (member, offset, size) in BTF vs Rust mirror");
}

/// (name, value) of each Rust constant, for check_enum.
macro_rules! named {
    ($($c:ident),* $(,)?) => {
        &[$((stringify!($c), $c as i64)),*]
    };
}

fn check_enum(types: &[Value], name: &str, rust: &[(&str, i64)]) {
    let t = find(types, &["ENUM", "ENUM64"], name);
    let btf: BTreeMap<String, i64> = t["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v["val"].as_i64().unwrap()))
        .collect();
    let rust: BTreeMap<String, i64> = rust.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    assert_eq!(btf, rust, "enum {name}: BTF vs Rust constants");
}

#[test]
fn structs_match_btf() {
    let types = btf_types();
    check_struct(
        &types,
        "pc_request",
        size_of::<PcRequest>(),
        fields!(PcRequest {
            r#type,
            flags,
            pid,
            tid,
            conn_id,
            cgroup_id,
            start_ns,
            end_ns,
            cpu_ns,
            bytes_received,
            bytes_sent,
            rss_bytes,
            seq,
            family,
            local_port,
            remote_port,
            req_captured,
            resp_captured,
            status,
            local_addr,
            remote_addr,
            comm,
            peer_conn_id,
            cpu_after_response_ns,
        }),
    );
    check_struct(
        &types,
        "pc_dependency",
        size_of::<PcDependency>(),
        fields!(PcDependency {
            r#type,
            flags,
            pid,
            tid,
            conn_id,
            parent_conn_id,
            start_ns,
            end_ns,
            connect_start_ns,
            connect_ns,
            bytes_sent,
            bytes_received,
            seq,
            parent_seq,
            family,
            local_port,
            remote_port,
            req_captured,
            resp_captured,
            status,
            _pad0,
            local_addr,
            remote_addr,
        }),
    );
    check_struct(
        &types,
        "pc_data",
        size_of::<PcData>(),
        fields!(PcData { r#type, direction, _pad0, len, conn_id, seq, offset, data }),
    );
    check_struct(&types, "pc_stats", size_of::<PcStats>(), fields!(PcStats { r#type, n_kernel, kernel, loader }));
    check_struct(
        &types,
        "pc_process_cpu",
        size_of::<PcProcessCpu>(),
        fields!(PcProcessCpu { r#type, pid, unattributed_ns }),
    );
    check_struct(&types, "pc_loader_info", size_of::<PcLoaderInfo>(), fields!(PcLoaderInfo { r#type, len }));
    check_struct(&types, "pc_ring_mark", size_of::<PcRingMark>(), fields!(PcRingMark { r#type, _pad, pos }));
    check_struct(
        &types,
        "pc_filter_cfg",
        size_of::<PcFilterCfg>(),
        fields!(PcFilterCfg { pids_on, ports_on, cgroups_on, comms_on }),
    );
    check_struct(
        &types,
        "pc_process_env",
        size_of::<PcProcessEnv>(),
        fields!(PcProcessEnv { r#type, pid, key, len, value }),
    );
    check_struct(&types, "pc_conn_key", size_of::<PcConnKey>(), fields!(PcConnKey { tgid, fd }));
    check_struct(&types, "pc_flush_list", size_of::<PcFlushList>(), fields!(PcFlushList { n, _pad, keys }));
    check_struct(&types, "pc_h2_run", size_of::<PcH2Run>(), fields!(PcH2Run { captured, skipped }));
    check_struct(
        &types,
        "pc_h2_io",
        size_of::<PcH2Io>(),
        fields!(PcH2Io {
            r#type,
            direction,
            flags,
            n_runs,
            pid,
            tid,
            conn_id,
            ts_ns,
            cpu_ns,
            total,
            data_len,
            part,
            runs,
            data
        }),
    );
}

#[test]
fn enums_match_btf() {
    let types = btf_types();
    check_enum(
        &types,
        "pc_record_type",
        named![
            PC_REC_REQUEST,
            PC_REC_DATA,
            PC_REC_DEPENDENCY,
            PC_REC_PROCESS_ENV,
            PC_REC_H2_IO,
            PC_REC_H2_CONN,
            PC_REC_PROCESS_CPU,
            PC_REC_STATS,
            PC_REC_LOADER_INFO,
            PC_REC_RING_MARK
        ],
    );
    check_enum(
        &types,
        "pc_request_flags",
        named![
            PC_F_CONN_CLOSED,
            PC_F_REQ_TRUNCATED,
            PC_F_RESP_TRUNCATED,
            PC_F_DATA_LOST,
            PC_F_SENDFILE,
            PC_F_PIPELINED,
            PC_F_IDLE_FLUSH,
            PC_F_LATE_WRITE,
            PC_F_CPU_APPORTIONED,
            PC_F_H2_MIDWAY,
            PC_F_H2_CLIENT,
            PC_F_H2_UPGRADE
        ],
    );
    check_enum(
        &types,
        "pc_dependency_flags",
        named![
            PC_DF_NEW_CONNECTION,
            PC_DF_CONN_CLOSED,
            PC_DF_ADOPTED,
            PC_DF_DATA_LOST,
            PC_DF_AT_PARENT_END,
            PC_DF_CALLER_INFERRED
        ],
    );
    check_enum(&types, "pc_env_key", named![PC_ENV_SERVICE_NAME, PC_ENV_RESOURCE_ATTRIBUTES]);
    check_enum(&types, "pc_direction", named![PC_DIR_REQUEST, PC_DIR_RESPONSE]);
    check_enum(
        &types,
        "pc_counter",
        named![
            PC_CNT_REQUESTS,
            PC_CNT_RB_DROP_REQUEST,
            PC_CNT_RB_DROP_DATA,
            PC_CNT_CONN_ACCEPTED,
            PC_CNT_CONN_TABLE_FULL,
            PC_CNT_CAPTURE_SHED,
            PC_CNT_CONN_FILTERED,
            PC_CNT_CONN_REPLACED,
            PC_CNT_DEPENDENCIES,
            PC_CNT_RB_DROP_DEPENDENCY,
            PC_CNT_DEP_UNATTRIBUTED,
            PC_CNT_CLIENT_CONNS,
            PC_CNT_IDLE_FLUSHES,
            PC_CNT_CPU_UNATTRIBUTED_NS,
            PC_CNT_H2_CONNS,
            PC_CNT_RB_DROP_H2,
            PC_CNT_H2_UNCAPTURED,
            PC_CNT_H2_WALK_LOST,
            PC_CNT_MAX
        ],
    );
    check_enum(
        &types,
        "pc_loader_counter",
        named![PC_LCNT_RECORDS_OUT, PC_LCNT_MALFORMED, PC_LCNT_DRAINS, PC_LCNT_CONNS_RECLAIMED, PC_LCNT_MAX],
    );
    check_enum(&types, "pc_capture_default", named![PC_CAPTURE_REQ_DEFAULT, PC_CAPTURE_RESP_DEFAULT]);
    check_enum(
        &types,
        "pc_h2_limits",
        named![PC_H2_RUNS_MAX, PC_H2_DATA_MAX, PC_H2_HDR_SIZE, PC_H2_PAYLOAD_MAX, PC_H2_STEPS],
    );
    check_enum(&types, "pc_h2_flags", named![PC_H2F_LOST, PC_H2F_CLOSED, PC_H2F_MORE, PC_H2F_CLIENT, PC_H2F_GAP, PC_H2F_GAP_HPACK, PC_H2F_GAP_OTHER]);
    check_enum(&types, "pc_abi", named![PC_ABI_VERSION]);
    check_enum(&types, "pc_flush", named![PC_FLUSH_PRCTL, PC_FLUSH_LISTED, PC_FLUSH_LIST_MAX]);
    check_enum(&types, "pc_data_size", named![PC_DATA_MAX, PC_DATA_HDR_SIZE]);
    check_enum(&types, "pc_env_limit", named![PC_ENV_VALUE_MAX, PC_ENV_SCAN_ENTRIES]);
}

/// The agent reads these codes too (src/loader/loader-process.ts, checked by its own test).
#[test]
fn exit_codes_match_btf() {
    check_enum(
        &btf_types(),
        "pc_loader_exit",
        named![
            PC_EXIT_OTHER,
            PC_EXIT_USAGE,
            PC_EXIT_PRIVILEGE,
            PC_EXIT_NO_BTF,
            PC_EXIT_OLD_KERNEL,
            PC_EXIT_OBJECT,
            PC_EXIT_LOAD
        ],
    );
}

/// The variant table (src/features.rs) names programs of the object, and lists every program
/// that saves syscall arguments at entry or triggers the idle flush: a program left out of it
/// would be required on every kernel.
#[test]
fn variant_programs_are_in_the_object() {
    use perfcatch_loader::features::VARIANT_PROGRAMS;
    let elf = std::fs::read(object_path()).expect("reading the BPF object");
    let programs = perfcatch_loader::attach::program_sections(&elf).expect("parsing the BPF object");
    for p in VARIANT_PROGRAMS {
        assert!(programs.contains_key(p.name), "variant program {} is not in {}", p.name, object_path());
    }
    for name in programs.keys().filter(|n| n.starts_with("args_enter_") || n.starts_with("idle_flush_")) {
        assert!(
            VARIANT_PROGRAMS.iter().any(|p| p.name == name),
            "program {name} belongs to a variant: add it to VARIANT_PROGRAMS"
        );
    }
}
