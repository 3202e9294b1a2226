//! What the running kernel is and the process limits BPF needs, checked before loading.

use std::io;

pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

pub fn uname_release() -> String {
    // SAFETY: utsname is plain bytes; uname fills it and NUL-terminates the fields.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::new();
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr()).to_string_lossy().into_owned()
    }
}

/// (major, minor) from a release like "6.18.44-fc-v669".
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut nums = release.split(|c: char| !c.is_ascii_digit());
    Some((nums.next()?.parse().ok()?, nums.next()?.parse().ok()?))
}

/// Locked memory limits BPF maps on kernels before 5.11; harmless (and possibly refused) later.
pub fn bump_memlock() {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } == 0 {
        return;
    }
    log::debug!("could not raise RLIMIT_MEMLOCK to infinity: {}", io::Error::last_os_error());
    // Without CAP_SYS_RESOURCE the soft limit can still go up to the hard one.
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls with valid pointers.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) == 0 {
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &cur);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0-150-generic"), Some((5, 4)));
        assert!(kernel_version("5.4.0").unwrap() < (5, 8));
        assert_eq!(kernel_version("weird"), None);
    }
}
