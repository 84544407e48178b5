//! Names of x86-64 host syscalls, for naming the call a hung process is blocked in.

/// (number, name) for the x86-64 calls a blocked process is commonly found in.
const X86_64: &[(u64, &str)] = &[
    (0, "read"),
    (1, "write"),
    (2, "open"),
    (3, "close"),
    (4, "stat"),
    (5, "fstat"),
    (7, "poll"),
    (8, "lseek"),
    (9, "mmap"),
    (10, "mprotect"),
    (11, "munmap"),
    (12, "brk"),
    (13, "rt_sigaction"),
    (14, "rt_sigprocmask"),
    (16, "ioctl"),
    (17, "pread64"),
    (18, "pwrite64"),
    (19, "readv"),
    (20, "writev"),
    (22, "pipe"),
    (23, "select"),
    (24, "sched_yield"),
    (34, "pause"),
    (35, "nanosleep"),
    (42, "connect"),
    (43, "accept"),
    (44, "sendto"),
    (45, "recvfrom"),
    (46, "sendmsg"),
    (47, "recvmsg"),
    (56, "clone"),
    (57, "fork"),
    (58, "vfork"),
    (59, "execve"),
    (60, "exit"),
    (61, "wait4"),
    (62, "kill"),
    (72, "fcntl"),
    (73, "flock"),
    (74, "fsync"),
    (101, "ptrace"),
    (130, "rt_sigsuspend"),
    (202, "futex"),
    (217, "getdents64"),
    (230, "clock_nanosleep"),
    (231, "exit_group"),
    (232, "epoll_wait"),
    (247, "waitid"),
    (257, "openat"),
    (270, "pselect6"),
    (271, "ppoll"),
    (281, "epoll_pwait"),
    (288, "accept4"),
    (318, "getrandom"),
    (434, "pidfd_open"),
    (435, "clone3"),
    (441, "epoll_pwait2"),
];

/// Name of a host syscall number, on an x86-64 host.
pub fn name(host_arch: &str, nr: u64) -> Option<&'static str> {
    if host_arch != "x86_64" {
        return None;
    }
    X86_64.iter().find(|(n, _)| *n == nr).map(|(_, s)| *s)
}

/// What `/proc/PID/task/TID/syscall` says a thread is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyscallState {
    /// On a CPU, in user space.
    Running,
    /// Blocked, but not in a syscall (e.g. a page fault).
    NotInSyscall,
    /// Blocked in this syscall number.
    In(u64),
}

/// Parses the first field of `/proc/PID/syscall`.
pub fn parse_proc_syscall(text: &str) -> Option<SyscallState> {
    let first = text.split_whitespace().next()?;
    match first {
        "running" => Some(SyscallState::Running),
        "-1" => Some(SyscallState::NotInSyscall),
        n => n.parse().ok().map(SyscallState::In),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_parse() {
        assert_eq!(name("x86_64", 202), Some("futex"));
        assert_eq!(name("x86_64", 61), Some("wait4"));
        assert_eq!(name("aarch64", 202), None);
        assert_eq!(parse_proc_syscall("running\n"), Some(SyscallState::Running));
        assert_eq!(
            parse_proc_syscall("-1 0x7ffc 0x0\n"),
            Some(SyscallState::NotInSyscall)
        );
        assert_eq!(
            parse_proc_syscall("202 0x7f 0x80 0x2 0x0 0x0 0x0 0x7ffd 0x7f12\n"),
            Some(SyscallState::In(202))
        );
        assert_eq!(parse_proc_syscall(""), None);
        let mut nums: Vec<u64> = X86_64.iter().map(|(n, _)| *n).collect();
        nums.dedup();
        assert_eq!(nums.len(), X86_64.len());
    }
}
