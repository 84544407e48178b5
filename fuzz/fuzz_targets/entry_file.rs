//! The binfmt_misc entry-file parser (/proc/sys/fs/binfmt_misc/NAME): the first line is the
//! entry's name, the rest the file's text.
#![no_main]

use binfmtd::kernel::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (name, body) = text.split_once('\n').unwrap_or(("fuzz", text));
    if let Ok(entry) = codec::parse_entry(name, body) {
        let _ = entry.matcher.matches(data, Some(name));
    }
});
