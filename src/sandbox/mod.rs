//! Rootless sandbox: a private binfmt_misc instance with handlers installed, then CMD.

use crate::engine::{self, InstallOptions, InstallReport, InstallRequest, Origin, Status};
use crate::ops::{self, Context};
use crate::persist::StateStore;
use crate::sys::ns;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What `binfmtd sandbox` was asked to do.
#[derive(Debug, Clone)]
pub struct SandboxRequest {
    /// `None`: every available handler except native ones.
    pub platforms: Option<String>,
    /// Start with an empty instance and install nothing.
    pub empty: bool,
    /// chroot here before running the command.
    pub root: Option<PathBuf>,
    pub command: Vec<OsString>,
    /// How to install the handlers (never persisted: the instance is private).
    pub options: InstallOptions,
}

/// Why the sandbox could not start the command.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Ns(#[from] ns::NsError),
    #[error(transparent)]
    Ops(#[from] ops::OpsError),
    #[error("requested handlers failed inside the sandbox: {0}")]
    HandlersFailed(String),
    #[error(
        "cannot chroot into {root}: {errno}; the directory must exist and be a root filesystem"
    )]
    Chroot {
        root: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("cannot execute {cmd:?}: {errno}{hint}")]
    Exec {
        cmd: String,
        errno: nix::errno::Errno,
        hint: &'static str,
    },
    #[error(
        "no command given; usage: binfmtd sandbox [--platform LIST] [--root DIR] -- CMD ARGS..."
    )]
    NoCommand,
    #[error("argument contains a NUL byte")]
    Nul,
}

/// Enters the namespaces and installs handlers, returning the install report (if any).
/// Afterwards the calling process lives in the private instance.
pub fn prepare(
    ctx_paths: &crate::config::Paths,
    req: &SandboxRequest,
) -> Result<(Context, Option<InstallReport>), SandboxError> {
    ns::check_private_instance()?;
    let outside_uid = nix::unistd::getuid().as_raw();
    let mapping = ns::enter_user_and_mount_ns()?;
    tracing::info!(?mapping, "sandbox id mapping");
    if let Some(note) = mapping.note() {
        eprintln!("binfmtd sandbox: note: {note}");
    }
    ns::mount_private_instance(&ctx_paths.binfmt_misc)?;
    let paths = private_paths(ctx_paths, outside_uid);
    let mut ctx = Context::system(paths.clone()).map_err(ops::OpsError::from)?;
    // Ownership records live in a directory that only this sandbox sees (unless the caller
    // chose its own), so `binfmtd status` inside shows the sandbox's entries as binfmtd's.
    ctx.state = if paths.state_dir.is_dir() {
        StateStore::Dir(paths.state_dir.clone())
    } else {
        StateStore::Memory(Default::default())
    };
    if req.empty {
        return Ok((ctx, None));
    }
    let words = req.platforms.clone().unwrap_or_else(|| "all".into());
    let selection = ctx.catalog.select(&words).map_err(ops::OpsError::from)?;
    let mut options = req.options.clone();
    options.persist = false;
    let install = InstallRequest {
        selection,
        options,
        dry_run: false,
        origin: Origin::Request,
    };
    let report = engine::install(&ctx, &install)?;
    if req.platforms.is_some() && !report.ok {
        let failed: Vec<String> = report
            .handlers
            .iter()
            .filter(|h| h.result == Status::Failed)
            .map(|h| {
                format!(
                    "{}: {}",
                    h.plan.handler,
                    h.error.clone().unwrap_or_default()
                )
            })
            .collect();
        return Err(SandboxError::HandlersFailed(failed.join("; ")));
    }
    Ok((ctx, Some(report)))
}

/// Where binfmtd inside the sandbox keeps state and binfmt.d files: wherever the caller
/// pointed them, else a tmpfs that only this sandbox sees (never the host's /var/lib/binfmtd
/// or /etc/binfmt.d, which root inside the sandbox could otherwise write, and which the host's
/// daemon and systemd-binfmt would then apply to the host). The choice is exported to CMD.
fn private_paths(paths: &crate::config::Paths, outside_uid: u32) -> crate::config::Paths {
    use crate::config::{DEFAULT_BINFMT_D_DIR, DEFAULT_STATE_DIR};
    let mut out = paths.clone();
    let defaults = paths.state_dir == Path::new(DEFAULT_STATE_DIR)
        || paths.binfmt_d_dir == Path::new(DEFAULT_BINFMT_D_DIR);
    if !defaults {
        return out;
    }
    match private_tmpfs(outside_uid) {
        Some(dir) => {
            if paths.state_dir == Path::new(DEFAULT_STATE_DIR) {
                out.state_dir = dir.join("state");
            }
            if paths.binfmt_d_dir == Path::new(DEFAULT_BINFMT_D_DIR) {
                out.binfmt_d_dir = dir.join("binfmt.d");
            }
        }
        None => {
            // No private directory: point both somewhere that does not exist, so nothing
            // can be written to the host's defaults (state is then kept in memory).
            out.state_dir = PathBuf::from("/nonexistent/binfmtd-sandbox/state");
            out.binfmt_d_dir = PathBuf::from("/nonexistent/binfmtd-sandbox/binfmt.d");
        }
    }
    std::env::set_var("BINFMTD_STATE_DIR", &out.state_dir);
    std::env::set_var("BINFMTD_BINFMT_D_DIR", &out.binfmt_d_dir);
    out
}

/// A tmpfs mounted (in this mount namespace only) on `$TMPDIR/.binfmtd-sandbox-UID`, a
/// directory of the caller's that is reused by every sandbox, each with its own tmpfs.
fn private_tmpfs(outside_uid: u32) -> Option<PathBuf> {
    use nix::mount::{mount, MsFlags};
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!(".binfmtd-sandbox-{outside_uid}"));
    if let Err(e) = std::fs::create_dir(&dir) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            tracing::debug!("cannot create {}: {e}", dir.display());
            return None;
        }
    }
    // Refuse anything but our own plain directory (another user may have planted a link).
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    if !meta.is_dir() || meta.uid() != nix::unistd::getuid().as_raw() {
        tracing::debug!("{} is not our own directory", dir.display());
        return None;
    }
    mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=16m"),
    )
    .map_err(|e| tracing::debug!("no private tmpfs at {}: {e}", dir.display()))
    .ok()?;
    for sub in ["state", "binfmt.d"] {
        std::fs::create_dir(dir.join(sub)).ok()?;
    }
    Some(dir)
}

/// Best effort: make /proc and /dev usable inside a foreign root, as a builder's RUN has them.
fn bind_system_dirs(root: &Path) {
    use nix::mount::{mount, MsFlags};
    for d in ["proc", "dev"] {
        let target = root.join(d);
        if target.is_dir() {
            if let Err(e) = mount(
                Some(Path::new("/").join(d).as_path()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ) {
                tracing::debug!("cannot bind /{d} into {}: {e}", root.display());
            }
        }
    }
}

/// chroots (when asked) and replaces this process with the command.
pub fn exec(req: &SandboxRequest) -> Result<std::convert::Infallible, SandboxError> {
    let Some(first) = req.command.first() else {
        return Err(SandboxError::NoCommand);
    };
    // binfmtd run inside must change this private instance, never the host's through the
    // host's daemon.
    std::env::set_var("BINFMTD_NO_DAEMON", "1");
    if let Some(root) = &req.root {
        bind_system_dirs(root);
        nix::unistd::chroot(root).map_err(|errno| SandboxError::Chroot {
            root: root.clone(),
            errno,
        })?;
        nix::unistd::chdir("/").map_err(|errno| SandboxError::Chroot {
            root: root.clone(),
            errno,
        })?;
    }
    let args: Vec<CString> = req
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| SandboxError::Nul))
        .collect::<Result<_, _>>()?;
    let prog = CString::new(first.as_bytes()).map_err(|_| SandboxError::Nul)?;
    let errno = match nix::unistd::execvp(&prog, &args) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let hint = match errno {
        nix::errno::Errno::ENOEXEC => ": no binfmt_misc handler matches it (exec format error); check `binfmtd doctor`",
        nix::errno::Errno::ENOENT => ": not found (inside --root, paths are looked up in the root; a missing ELF loader also gives this)",
        _ => "",
    };
    Err(SandboxError::Exec {
        cmd: first.to_string_lossy().into_owned(),
        errno,
        hint,
    })
}
