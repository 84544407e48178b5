//! The register-line codec both ways: every line that decodes encodes again, and that
//! encoding decodes to the same rule; escaped bytes unescape to themselves.
#![no_main]

use binfmtd::kernel::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = codec::escape_bytes(data);
    assert_eq!(codec::unescape_bytes(&bytes).as_deref(), Some(data));
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let _ = codec::validate_name(line);
    let Ok(rule) = codec::decode(line) else {
        return;
    };
    let encoded = codec::encode(&rule)
        .unwrap_or_else(|e| panic!("decoded {line:?} to {rule:?} but cannot encode it: {e}"));
    let again = codec::decode(&encoded)
        .unwrap_or_else(|e| panic!("encoded {rule:?} as {encoded:?}, which does not decode: {e}"));
    assert_eq!(again, rule, "{line:?} -> {encoded:?}");
});
