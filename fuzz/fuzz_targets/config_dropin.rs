//! The daemon's config files (binfmtd.toml, config.d/*.toml: persist::desired::Config) and
//! catalog drop-in handler files (catalog::Handler::from_toml) on arbitrary text.
#![no_main]

use binfmtd::catalog::Handler;
use binfmtd::persist::desired::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = toml::from_str::<Config>(text) {
        let _ = c.clone().layer(c);
    }
    if let Ok(h) = Handler::from_toml("fuzz.toml", text) {
        let _ = h.matcher();
        let _ = h.default_flags();
        let _ = h.primary_platform();
    }
});
