//! Pure CPU-side checks: x86-64 ISA level vs translator or CPU, page size, known defects.

use super::checks::View;
use super::defects::{self, parse_version, Query};
use super::findings::{Finding, FindingId as Id};
use super::inspect::{InterpInfo, Loaded, LoaderState, Subject};
use crate::catalog::Translator;
use crate::model::Entry;

/// Highest x86-64 level a translator offers, with the reason.
pub fn translator_level(info: &InterpInfo) -> Option<(u8, String)> {
    match info.translator? {
        // Rosetta does not advertise AVX in CPUID, so x86-64-v3 (AVX2) code is refused.
        Translator::Rosetta => Some((
            2,
            "Rosetta does not offer AVX, so it stops at x86-64-v2".into(),
        )),
        // qemu-user's default CPU for x86_64 is "max"; TCG gained AVX/AVX2 in QEMU 7.2 and
        // has no AVX-512, so v3 is the ceiling from 7.2 on and v2 before.
        Translator::Qemu => {
            let v = info.version.as_deref().and_then(parse_version)?;
            if v >= (7, 2, 0) {
                Some((
                    3,
                    format!(
                        "qemu {}.{}.{} (CPU model max) has AVX2 but no AVX-512",
                        v.0, v.1, v.2
                    ),
                ))
            } else {
                Some((
                    2,
                    format!(
                        "qemu {}.{}.{} has no AVX (added to TCG in 7.2)",
                        v.0, v.1, v.2
                    ),
                ))
            }
        }
        _ => None,
    }
}

/// The x86-64 level the binary (or its loader) needs against what the CPU or the
/// translator offers.
fn isa_level_check(
    s: &Subject,
    l: &Loaded,
    winner: Option<&Entry>,
    v: &View<'_>,
    out: &mut Vec<Finding>,
) {
    let f = &l.facts;
    let native = v.runs_natively(f);
    let info = winner.and_then(|w| v.interps.get(&w.name));
    // ISA level: the binary's own note and its loader's (a v3 glibc makes the whole root v3).
    let loader_level = loader_level(s);
    let need = f.x86_isa_level.max(loader_level).filter(|l| *l >= 2);
    if let Some(need) = need {
        let who = if loader_level == Some(need) && f.x86_isa_level != Some(need) {
            format!("its loader {}", f.interp.as_deref().unwrap_or("?"))
        } else {
            "the binary".to_string()
        };
        let offered = if native && winner.is_none() {
            v.host
                .x86_64_level
                .map(|h| (h, format!("this CPU supports x86-64-v{h}")))
        } else {
            info.and_then(translator_level)
        };
        match offered {
            Some((have, why)) if have < need => out.push(
                Finding::error(Id::IsaLevelUnsupported, format!("{who} requires x86-64-v{need}, but {why}: expect \"Fatal glibc error: CPU does not support x86-64-v{need}\" or SIGILL"))
                    .about(format!("x86-64-v{need}"))
                    .with("required", format!("x86-64-v{need} (GNU property note of {who})"))
                    .with("offered", format!("x86-64-v{have}"))
                    .fix(if native {
                        "use a build of the image for a lower x86-64 level (e.g. Debian/Ubuntu target v1)".to_string()
                    } else {
                        format!("use qemu-user >= 7.2 (QEMU_CPU=max) instead of {}, or an image built for x86-64-v{have}", info.and_then(|i| i.translator).map(|t| format!("{t:?}")).unwrap_or_default())
                    }),
            ),
            _ => out.push(
                Finding::info(Id::IsaFeatures, format!("{who} requires x86-64-v{need}"))
                    .about(format!("x86-64-v{need}"))
                    .with("required", format!("x86-64-v{need}")),
            ),
        }
    }
}

/// The x86-64 level the binary's loader declares, if the root has the loader.
fn loader_level(s: &Subject) -> Option<u8> {
    match &s.loader {
        Some(LoaderState::Present { x86_isa_level, .. }) => *x86_isa_level,
        _ => None,
    }
}

/// ISA level, page size and known-defect checks.
pub fn cpu_checks(
    s: &Subject,
    l: &Loaded,
    winner: Option<&Entry>,
    v: &View<'_>,
    out: &mut Vec<Finding>,
) {
    let f = &l.facts;
    let info = winner.and_then(|w| v.interps.get(&w.name));
    isa_level_check(s, l, winner, v, out);
    if let Some(bits) = f.aarch64_features.filter(|b| b & 3 != 0) {
        let mut names = Vec::new();
        if bits & 1 != 0 {
            names.push("BTI");
        }
        if bits & 2 != 0 {
            names.push("PAC");
        }
        out.push(
            Finding::info(
                Id::IsaFeatures,
                format!(
                    "built with AArch64 branch protection ({}); harmless where unsupported",
                    names.join("+")
                ),
            )
            .about(names.join("+")),
        );
    }
    if let Some(align) = f.min_load_align.filter(|a| *a > 0 && *a < v.host.page_size) {
        out.push(
            Finding::error(Id::PageAlignTooSmall, format!("PT_LOAD segments are aligned to {align} bytes but the host uses {}-byte pages: the loader refuses or crashes", v.host.page_size))
                .with("min PT_LOAD align", align)
                .with("host page size", v.host.page_size)
                .fix(format!("relink with -Wl,-z,max-page-size={} (or 65536 to run on every host)", v.host.page_size.max(65536))),
        );
    }
    if v.host.page_size > 4096 {
        if let Some(lib) = f.needed.iter().find(|n| n.starts_with("libjemalloc")) {
            out.push(
                Finding::warning(Id::JemallocPageSize, format!("linked with {lib} on a host with {}-byte pages: a jemalloc built for 4 KiB pages aborts with \"Unsupported system page size\"", v.host.page_size))
                    .about(lib)
                    .with("library", lib)
                    .fix("use a jemalloc built with --with-lg-page=16 (64 KiB), or disable jemalloc"),
            );
        }
    }
    let q = Query {
        translator: info.and_then(|i| i.translator),
        translator_version: info.and_then(|i| i.version.as_deref()),
        is_go: f.is_go,
        go_version: f.go_version.as_deref(),
        arch: f.qemu_arch.as_deref(),
        kernel: v.host.kernel.as_deref(),
        program: s.path.rsplit('/').next(),
        libraries: &f.needed,
        x86_level: f.x86_isa_level.max(loader_level(s)),
    };
    out.extend(defect_findings(&q));
}

/// A warning for every known-defects row that matches, with its evidence and source.
pub fn defect_findings(q: &Query<'_>) -> Vec<Finding> {
    defects::matching(q)
        .into_iter()
        .map(|d| {
            Finding::warning(Id::KnownEmulatorDefect, d.summary)
                .about(d.key)
                .with("defect", d.key)
                .with("translator version", q.translator_version.unwrap_or("?"))
                .with("go version", q.go_version.unwrap_or("?"))
                .with("source", d.source)
                .fix(d.fix)
        })
        .collect()
}
