//! Everything an operation needs: paths, catalog, the kernel seam, state and host facts.

use crate::catalog::Catalog;
use crate::config::Paths;
use crate::host::{self, HostReport};
use crate::kernel::{Binfmt, ProcBinfmt};
use crate::persist::cache::Cache;
use crate::persist::StateStore;
use std::path::PathBuf;

/// The environment of one operation.
pub struct Context {
    pub paths: Paths,
    pub catalog: Catalog,
    pub kernel: Box<dyn Binfmt + Send + Sync>,
    pub state: StateStore,
    /// Where probes are staged (an empty directory is created inside per probe).
    pub probe_dir: PathBuf,
    /// Runs the probes that verify registrations.
    pub prober: Box<dyn super::verify::Prober>,
    /// Extra directories systemd's binfmt.d files are read from, for owner attribution.
    pub binfmt_d_dirs: Vec<PathBuf>,
    /// Debian binfmt-support's database, for owner attribution (`BINFMTD_BINFMTS_ADMINDIR`,
    /// default `/var/lib/binfmts`).
    pub binfmts_admin_dir: PathBuf,
    /// Host facts decided already (tests; callers that detected once): when set, no facts
    /// are gathered and no native probes run.
    pub fixed_host: Option<HostReport>,
}

impl Context {
    /// The real system at the given paths.
    pub fn system(paths: Paths) -> Result<Self, crate::catalog::CatalogError> {
        let catalog = Catalog::load(Some(&paths.interpreters_d()))?;
        let mut binfmt_d_dirs = vec![paths.binfmt_d_dir.clone()];
        for d in crate::persist::binfmt_d::SYSTEM_DIRS {
            let d = PathBuf::from(d);
            if !binfmt_d_dirs.contains(&d) {
                binfmt_d_dirs.push(d);
            }
        }
        Ok(Context {
            kernel: Box::new(ProcBinfmt::new(paths.binfmt_misc.clone())),
            state: StateStore::Dir(paths.state_dir.clone()),
            catalog,
            probe_dir: std::env::temp_dir(),
            prober: Box::new(super::verify::SystemProber {
                dir: std::env::temp_dir(),
            }),
            binfmt_d_dirs,
            binfmts_admin_dir: std::env::var_os("BINFMTD_BINFMTS_ADMINDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::persist::binfmt_support::ADMIN_DIR.into()),
            paths,
            fixed_host: None,
        })
    }

    /// The QEMU arch names to test natively: those that have a probe and that this
    /// machine's kernel could load at all ([`host::detect::native_candidates`]).
    pub fn probe_arches(&self) -> Vec<String> {
        let machine = nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_default();
        host::detect::native_candidates(&self.catalog, &machine, &self.arches_with_probe())
    }

    /// The QEMU arch names of the catalog that have a probe.
    fn arches_with_probe(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .catalog
            .handlers
            .values()
            .filter(|h| h.translator == crate::catalog::Translator::Qemu)
            .map(|h| h.arch.clone())
            .filter(|a| crate::probe::lookup(a).is_some())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Gathers host facts (probing native ISAs afresh) and decides on them.
    pub fn host(&self) -> HostReport {
        let mut cache = self.cache();
        self.host_with(&mut cache, false)
    }

    /// The fact cache of this boot (empty for in-memory state).
    pub fn cache(&self) -> Cache {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Cache::load(self.state.dir(), &release)
    }

    /// Runs the native probes now, unless this boot's cache holds them already, and caches
    /// their results, so that [`Context::host_with`] (with `reuse`) takes them from there.
    /// For callers about to start threads: a probe is a child process of the calling
    /// thread, and while another thread of this process kept a core busy, a probe's child
    /// was measured waiting about 0.8 ms for that core instead of 0.15 ms in all.
    pub fn probe_native_first(&self, cache: &mut Cache) {
        if self.fixed_host.is_some() {
            return;
        }
        let arches = self.probe_arches();
        if cache.native_for(&arches).is_some() {
            return;
        }
        let snapshot = self.kernel.snapshot();
        let recheck = || self.kernel.snapshot().ok();
        let probes = host::facts::probe_facts(
            &snapshot,
            &arches,
            None,
            &host::facts::SystemProber,
            &recheck,
        );
        if probes.native_probes.is_some() {
            cache.native = probes.native_probes;
        }
    }

    /// Host facts, reusing native probe results cached earlier in this boot when `reuse`.
    pub fn host_with(&self, cache: &mut Cache, reuse: bool) -> HostReport {
        if let Some(host) = &self.fixed_host {
            return host.clone();
        }
        let arches = self.probe_arches();
        let cached = if reuse {
            cache.native_for(&arches)
        } else {
            None
        };
        let facts = host::facts::gather(self.kernel.as_ref(), &arches, cached);
        if facts.native_probes.is_some() {
            cache.native = facts.native_probes.clone();
        }
        host::detect(&facts, &self.catalog)
    }
}
