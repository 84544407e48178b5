//! `binfmtd ps`'s parsers of /proc text: /proc/PID/cgroup (container::path_of, attribute),
//! /proc/PID/sched (source::parse_exec_start), and an emulator's argv and auxv
//! (guest::via_binfmt, guest::guest) from NUL-separated words.
#![no_main]

use binfmtd::catalog::Translator;
use binfmtd::procs::{container, guest, source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(path) = container::path_of(&text) {
        let _ = container::attribute(path);
    }
    let _ = container::attribute(&text);
    let _ = source::parse_exec_start(&text);
    let words: Vec<String> = text.split('\0').map(str::to_string).collect();
    let auxv: Vec<(u64, u64)> = data
        .chunks_exact(16)
        .map(|c| {
            let (a, b) = c.split_at(8);
            (
                u64::from_le_bytes(a.try_into().unwrap_or([0; 8])),
                u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            )
        })
        .collect();
    let known = guest::Known {
        handler: "qemu-aarch64".into(),
        translator: Translator::Qemu,
        arch: "aarch64".into(),
        platform: "linux/arm64".into(),
    };
    let _ = guest::guest(&words, Some(&auxv), &known);
    let _ = guest::guest(&words, None, &known);
    let argv0 = words.get(1).map(String::as_str);
    let _ = guest::via_binfmt(
        &words[0],
        argv0,
        words.get(2).map_or("", String::as_str),
        Some(&auxv),
    );
});
