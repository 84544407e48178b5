//! The verify step of an install: read every entry back, then probe each ISA chrooted;
//! a registration whose probe fails is undone.

use super::install::{explicit, Txn};
use super::outcome::Status;
use crate::kernel::codec;
use crate::ops::verify::{self, Verification};
use crate::ops::OpsError;
use crate::plan::{self, Action};
use crate::probe::run::ProbeOutcome;

impl Txn<'_> {
    /// Reads back, decides what to probe, probes, and fails (and undoes) what did not pass.
    pub(super) fn verify(&mut self) -> Result<(), OpsError> {
        let after = self.ctx.kernel.snapshot()?;
        let mut to_probe = self.foreign_to_probe();
        for i in 0..self.results.len() {
            if let Some(arch) = self.read_back(i, &after) {
                to_probe.push(arch);
            }
        }
        if !self.req.options.verify || to_probe.is_empty() {
            return Ok(());
        }
        to_probe.sort();
        to_probe.dedup();
        let probed = self.ctx.prober.probe(&to_probe);
        self.probe_seconds = Some(probed.took.as_secs_f64());
        if !probed.chrooted {
            self.warnings.push(
                "probes ran without chroot (CAP_SYS_CHROOT missing), so the F flag was not proven"
                    .into(),
            );
        }
        for i in 0..self.results.len() {
            let arch = self.results[i].plan.arch.clone();
            if let Some((_, outcome)) = probed.outcomes.iter().find(|(a, _)| *a == arch) {
                self.judge(i, outcome.clone(), probed.chrooted);
            }
        }
        Ok(())
    }

    /// A foreign entry that wins is left alone, but still proven (or not) by the probe.
    fn foreign_to_probe(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for r in self.results.iter_mut() {
            if let Action::SkipForeign {
                provider,
                wins: true,
            } = &r.plan.action
            {
                if self.req.options.verify {
                    out.push(r.plan.arch.clone());
                }
                r.verify = Some(Verification {
                    read_back: true,
                    read_back_detail: None,
                    wins: false,
                    probe: None,
                    chrooted: false,
                });
                r.plan.warnings.push(format!("{provider} serves this ISA"));
            }
        }
        out
    }

    /// Reads handler `i` back; returns its arch when it should be probed.
    fn read_back(&mut self, i: usize, after: &crate::kernel::Snapshot) -> Option<String> {
        let r = &self.results[i];
        let rule = r.plan.rule.clone().filter(|_| r.result == Status::Ok)?;
        let (ok, detail) = verify::read_back(&rule, &after.entries);
        let header = self
            .ctx
            .catalog
            .get(&r.plan.handler)
            .map(plan::sample_header)
            .unwrap_or_default();
        let wins = codec::winner(&after.entries, after.enabled, &header, None)
            .is_some_and(|w| w.name == rule.name);
        let earlier = matches!(r.plan.action, Action::Keep { owned: true })
            && r.plan
                .line
                .as_deref()
                .is_some_and(|l| self.cache.verified_earlier(l, &rule.interpreter));
        self.results[i].verify = Some(Verification {
            read_back: ok,
            read_back_detail: detail.clone(),
            wins,
            probe: None,
            chrooted: false,
        });
        let verify = self.req.options.verify;
        if !ok && !after.mounted {
            let why = format!(
                "binfmt_misc at {} was unmounted during the change (since Linux 6.7 that frees every entry, other tools' too), so {} is gone",
                after.path.display(),
                rule.name
            );
            self.undo(i, why);
            None
        } else if !ok {
            self.undo(i, detail.unwrap_or_default());
            None
        } else if verify && wins && earlier {
            if let Some(v) = self.results[i].verify.as_mut() {
                v.probe = Some(ProbeOutcome::PassedEarlier);
                v.chrooted = true;
            }
            None
        } else if verify && wins {
            Some(self.results[i].plan.arch.clone())
        } else {
            if !wins {
                self.results[i].plan.warnings.push(
                    "another entry wins for this ISA, so the probe was not run through this handler"
                        .into(),
                );
            }
            None
        }
    }

    /// Applies one probe outcome to handler `i`.
    fn judge(&mut self, i: usize, outcome: ProbeOutcome, chrooted: bool) {
        let r = &mut self.results[i];
        let Some(v) = r.verify.as_mut() else { return };
        if let Action::SkipForeign { provider, .. } = &r.plan.action {
            v.probe = Some(outcome.clone());
            v.chrooted = chrooted;
            if !outcome.passed() {
                let why = format!("{provider} is not binfmtd's entry and was left alone, but it does not work: {}; `--force` replaces it", outcome.describe());
                r.fail(why);
            }
            return;
        }
        if r.result != Status::Ok || !v.wins {
            return;
        }
        v.probe = Some(outcome.clone());
        v.chrooted = chrooted;
        if !outcome.passed() {
            let why = format!("registered, but the probe failed: {}", outcome.describe());
            self.undo(i, why);
        } else if let (true, Some(line), Some(interp)) =
            (chrooted, &r.plan.line, &r.plan.interpreter)
        {
            if let Some(id) = crate::persist::cache::FileId::of(&interp.path) {
                self.cache.verified.insert(line.clone(), id);
            }
        }
    }

    /// An explicitly requested platform that another tool's entry serves counts as done only
    /// when that entry was proven to work; otherwise the request was not met.
    pub(super) fn settle_foreign(&mut self) {
        if !explicit(&self.req.selection) {
            return;
        }
        for r in self
            .results
            .iter_mut()
            .filter(|r| r.result == Status::Skipped)
        {
            let Action::SkipForeign { provider, wins } = &r.plan.action else {
                continue;
            };
            let proven = r
                .verify
                .as_ref()
                .and_then(|v| v.probe.as_ref())
                .is_some_and(ProbeOutcome::passed);
            if !proven {
                let why = if *wins {
                    format!("{provider} (not binfmtd's) serves this platform and was not verified (--no-verify); binfmtd registered nothing; `--force` replaces it")
                } else {
                    format!("{provider} (not binfmtd's) blocks this platform's entry but does not win for it either; binfmtd registered nothing; `--force` replaces it")
                };
                r.fail(why);
            }
        }
    }
}
