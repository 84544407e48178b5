//! doctor's ELF analysis on arbitrary bytes: identity, program headers, loader, dynamic
//! section, notes, Go build info (elf::parse) and the loader model (loadable, loadability).
#![no_main]

use binfmtd::doctor::{elf, inspect, loadable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(facts) = elf::parse(data) {
        let _ = facts.describe();
        let _ = facts.compatible_library(&facts);
        let _ = serde_json_free(&facts);
    }
    let header = &data[..data.len().min(256)];
    let _ = inspect::loadability(data, header);
    for class64 in [false, true] {
        for le in [false, true] {
            for loader in [loadable::Loader::Kernel, loadable::Loader::Emulator] {
                let _ = loadable::judge(data, loadable::Layout { class64, le }, loader);
            }
        }
    }
    let _ = elf::go_version_from_blob(data);
});

/// Touches every string field, as rendering would.
fn serde_json_free(f: &elf::ElfFacts) -> usize {
    f.needed
        .iter()
        .chain(&f.rpath)
        .chain(&f.runpath)
        .map(String::len)
        .sum::<usize>()
        + f.interp.as_ref().map_or(0, String::len)
}
