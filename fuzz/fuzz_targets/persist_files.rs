//! The binfmt.d parser (register lines with comments) and the binfmt-support admin-record
//! parser (/var/lib/binfmts/NAME): the first line names the record, the rest is its text.
#![no_main]

use binfmtd::persist::{binfmt_d, binfmt_support};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for rule in binfmt_d::parse(text) {
        let _ = binfmtd::kernel::codec::encode(&rule);
    }
    let (name, body) = text.split_once('\n').unwrap_or(("fuzz", text));
    let _ = binfmt_support::parse_admin(name, body);
});
