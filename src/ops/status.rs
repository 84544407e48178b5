//! Read-only views: every kernel entry with owner and winner, and runnable platforms.

use super::{Context, OpsError};
use crate::catalog::{Catalog, Translator};
use crate::kernel::codec;
use crate::model::Entry;
use crate::persist::{binfmt_d, State};
use crate::plan::sample_header;
use crate::probe::run::ProbeOutcome;
use serde::Serialize;

/// One kernel entry as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EntryStatus {
    #[serde(flatten)]
    pub entry: Entry,
    /// `binfmtd`, or who else registered it, or `unknown`.
    pub owner: String,
    pub owned: bool,
    /// The catalog ISA (QEMU arch name) this entry serves, if it serves one.
    pub arch: Option<String>,
    pub platform: Option<String>,
    /// The kernel picks this entry for its ISA's binaries.
    pub wins: bool,
    /// The entry that wins instead, when this one is shadowed.
    pub shadowed_by: Option<String>,
}

/// Which way mutating commands go (through the daemon, or directly), and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Route {
    /// `daemon` or `direct`.
    pub via: &'static str,
    pub reason: String,
    /// The daemon's version, when it answered.
    pub daemon_version: Option<String>,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub schema: &'static str,
    /// Filled in by the CLI, which knows about the bus.
    pub route: Option<Route>,
    pub binfmt_misc: String,
    pub mounted: bool,
    pub enabled: bool,
    pub entries: Vec<EntryStatus>,
    pub unreadable: Vec<(String, String)>,
    /// Entries binfmtd registered (its state records them) that the kernel does not hold:
    /// removed by someone else, or lost with an unmount or a reboot.
    pub missing: Vec<MissingEntry>,
    pub warnings: Vec<String>,
}

/// An entry binfmtd's state records but the kernel does not hold.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MissingEntry {
    pub name: String,
    pub handler: String,
    pub platform: String,
    /// The register line binfmtd wrote.
    pub line: String,
}

/// binfmtd's recorded entries absent from the snapshot (pure). A name with an unfinished
/// change in the journal is not missing: that change may not have reached the kernel.
pub fn missing(state: &State, snap: &crate::kernel::Snapshot) -> Vec<MissingEntry> {
    state
        .entries
        .iter()
        .filter(|(name, _)| !snap.entries.iter().any(|e| &e.name == *name))
        .filter(|(name, _)| !state.pending.iter().any(|p| &p.name == *name))
        .map(|(name, o)| MissingEntry {
            name: name.clone(),
            handler: o.handler.clone(),
            platform: o.platform.clone(),
            line: o.line.clone(),
        })
        .collect()
}

/// What `status` warns about the instance and binfmtd's record of it (pure).
fn instance_warnings(
    snap: &crate::kernel::Snapshot,
    state: &State,
    lost: &[MissingEntry],
) -> Vec<String> {
    let mut warnings = Vec::new();
    let handlers = || {
        let mut h: Vec<&str> = lost.iter().map(|m| m.handler.as_str()).collect();
        h.dedup();
        h.join(",")
    };
    if !snap.mounted {
        warnings.push(format!(
            "binfmt_misc is not mounted at {}; `sudo binfmtd install` mounts it",
            snap.path.display()
        ));
        if !lost.is_empty() {
            warnings.push(format!(
                "binfmtd's entries {} are not registered: binfmt_misc was unmounted (since Linux 6.7 that frees every entry, other tools' too) or never mounted; `binfmtd install {}` registers them again",
                lost.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
                handlers()
            ));
        }
    } else {
        if !snap.enabled {
            warnings.push("binfmt_misc is globally disabled: no foreign binary runs".into());
        }
        for m in lost {
            warnings.push(format!("binfmtd's entry {} ({}) is missing from the kernel; `binfmtd install {}` restores it", m.name, m.platform, m.handler));
        }
    }
    for p in &state.pending {
        warnings.push(format!(
            "a change of {} did not finish (was binfmtd killed?); the next install, uninstall, enable or disable undoes it",
            p.name
        ));
    }
    warnings
}

/// The catalog ISA an entry would take binaries of: (arch, platform, probe header).
pub fn served_isa<'a>(catalog: &'a Catalog, e: &Entry) -> Option<(&'a str, String, Vec<u8>)> {
    // Prefer the handler with the same name, then the qemu handler whose sample matches.
    let by_name = catalog
        .get(&e.name)
        .filter(|h| e.matcher.matches(&sample_header(h), None));
    let h = by_name.or_else(|| {
        catalog
            .handlers
            .values()
            .filter(|h| h.translator == Translator::Qemu)
            .find(|h| e.matcher.matches(&sample_header(h), None))
    })?;
    Some((h.arch.as_str(), h.primary_platform(), sample_header(h)))
}

/// Builds the status view from a snapshot (pure apart from owner attribution files).
pub fn describe(
    catalog: &Catalog,
    entries: &[Entry],
    enabled: bool,
    state: &State,
    binfmt_d_rules: &[(std::path::PathBuf, crate::model::Rule)],
    binfmt_support: &[(
        std::path::PathBuf,
        crate::persist::binfmt_support::AdminRecord,
    )],
) -> Vec<EntryStatus> {
    entries
        .iter()
        .map(|e| {
            let owned = state.owns(e);
            let owner = if owned {
                "binfmtd".to_string()
            } else {
                binfmt_d::attribute(e, binfmt_d_rules, binfmt_support)
                    .unwrap_or_else(|| "unknown".into())
            };
            let isa = served_isa(catalog, e);
            // Entries outside the catalog (python3.11, WSLInterop...) compete for their own magic.
            let probe: (Vec<u8>, Option<String>) = match (&isa, &e.matcher) {
                (Some((_, _, hdr)), _) => (hdr.clone(), None),
                (None, crate::model::Matcher::Magic { offset, magic, .. })
                    if offset + magic.len() <= codec::BINPRM_BUF_SIZE =>
                {
                    let mut h = vec![0u8; offset + magic.len()];
                    h[*offset..].copy_from_slice(magic);
                    (h, None)
                }
                (None, crate::model::Matcher::Extension { extension }) => {
                    (Vec::new(), Some(format!("file.{extension}")))
                }
                (None, _) => (Vec::new(), None),
            };
            let winner = codec::winner(entries, enabled, &probe.0, probe.1.as_deref());
            let wins = winner.is_some_and(|w| w.name == e.name);
            EntryStatus {
                owner,
                owned,
                arch: isa.as_ref().map(|(a, _, _)| a.to_string()),
                platform: isa.as_ref().map(|(_, p, _)| p.clone()),
                wins,
                shadowed_by: winner.filter(|w| w.name != e.name).map(|w| w.name.clone()),
                entry: e.clone(),
            }
        })
        .collect()
}

/// Every entry in the kernel, binfmtd's or not.
pub fn status(ctx: &Context) -> Result<StatusReport, OpsError> {
    let snap = ctx.kernel.snapshot()?;
    let loaded = ctx.state.peek();
    let rules = binfmt_d::scan(&ctx.binfmt_d_dirs);
    let support = crate::persist::binfmt_support::scan(&ctx.binfmts_admin_dir);
    let lost = missing(&loaded.state, &snap);
    let mut warnings: Vec<String> = loaded.warning.into_iter().collect();
    warnings.extend(instance_warnings(&snap, &loaded.state, &lost));
    Ok(StatusReport {
        schema: "binfmtd.status/v1",
        route: None,
        binfmt_misc: snap.path.display().to_string(),
        mounted: snap.mounted,
        enabled: snap.enabled,
        entries: describe(
            &ctx.catalog,
            &snap.entries,
            snap.enabled,
            &loaded.state,
            &rules,
            &support,
        ),
        unreadable: snap.unreadable,
        missing: lost,
        warnings,
    })
}

/// One runnable platform.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformStatus {
    pub platform: String,
    pub arch: String,
    /// `native` or `emulated`.
    pub how: &'static str,
    /// The entry that runs it, when emulated.
    pub handler: Option<String>,
    pub interpreter: Option<String>,
    pub verified: bool,
    pub probe: Option<ProbeOutcome>,
}

/// What `platforms` reports.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformsReport {
    pub schema: &'static str,
    /// OCI names, native first, as `docker buildx ls` lists them.
    pub platforms: Vec<String>,
    pub details: Vec<PlatformStatus>,
    /// Handlers registered but failing their probe.
    pub broken: Vec<PlatformStatus>,
    /// How long the probes of emulated platforms took, all together (they run in parallel);
    /// `null` when nothing was probed.
    pub probe_seconds: Option<f64>,
}

/// Native platforms plus every emulated one whose winning handler passes its probe.
pub fn platforms(ctx: &Context) -> Result<PlatformsReport, OpsError> {
    let host = ctx.host();
    let snap = ctx.kernel.snapshot()?;
    let mut details = Vec::new();
    for arch in &host.native {
        if let Some(h) = ctx.catalog.qemu_for_arch(arch) {
            for p in &h.platforms {
                details.push(PlatformStatus {
                    platform: p.clone(),
                    arch: arch.clone(),
                    how: "native",
                    handler: None,
                    interpreter: None,
                    verified: true,
                    probe: None,
                });
            }
        }
    }
    let mut emulated: Vec<(String, Entry)> = Vec::new();
    for h in ctx
        .catalog
        .handlers
        .values()
        .filter(|h| h.translator == Translator::Qemu && !host.native.contains(&h.arch))
    {
        if let Some(w) = codec::winner(&snap.entries, snap.enabled, &sample_header(h), None) {
            emulated.push((h.arch.clone(), w.clone()));
        }
    }
    let arches: Vec<String> = emulated.iter().map(|(a, _)| a.clone()).collect();
    let probed = ctx.prober.probe(&arches);
    let mut broken = Vec::new();
    for (arch, entry) in emulated {
        let Some((_, outcome)) = probed.outcomes.iter().find(|(a, _)| *a == arch) else {
            continue;
        };
        let Some(h) = ctx.catalog.qemu_for_arch(&arch) else {
            continue;
        };
        for p in &h.platforms {
            let s = PlatformStatus {
                platform: p.clone(),
                arch: arch.clone(),
                how: "emulated",
                handler: Some(entry.name.clone()),
                interpreter: Some(entry.interpreter.display().to_string()),
                verified: outcome.passed(),
                probe: Some(outcome.clone()),
            };
            if outcome.passed() {
                details.push(s);
            } else {
                broken.push(s);
            }
        }
    }
    Ok(PlatformsReport {
        schema: "binfmtd.platforms/v1",
        platforms: details.iter().map(|d| d.platform.clone()).collect(),
        details,
        broken,
        probe_seconds: (!arches.is_empty()).then_some(probed.took.as_secs_f64()),
    })
}

/// One catalog handler, for `platforms --known`.
#[derive(Debug, Clone, Serialize)]
pub struct KnownHandler {
    pub handler: String,
    pub translator: Translator,
    pub arch: String,
    pub platforms: Vec<String>,
    pub aliases: Vec<String>,
    pub default_flags: String,
}

/// What `platforms --known` reports.
#[derive(Debug, Clone, Serialize)]
pub struct KnownReport {
    pub schema: &'static str,
    pub handlers: Vec<KnownHandler>,
}

/// Every handler in the catalog with the names it answers to.
pub fn known(catalog: &Catalog) -> KnownReport {
    KnownReport {
        schema: "binfmtd.known/v1",
        handlers: catalog
            .handlers
            .values()
            .map(|h| KnownHandler {
                handler: h.name.clone(),
                translator: h.translator,
                arch: h.arch.clone(),
                platforms: h.platforms.clone(),
                aliases: h.aliases.clone(),
                default_flags: h.flags.clone(),
            })
            .collect(),
    }
}
