//! Rootless sandbox: a private binfmt_misc instance with handlers installed, then CMD.

pub mod ns;

use crate::ops::{self, Context, InstallReport, InstallRequest};
use crate::persist::StateStore;
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
    pub install: InstallRequest,
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
    ns::enter_user_and_mount_ns()?;
    ns::mount_private_instance(&ctx_paths.binfmt_misc)?;
    let mut ctx = Context::system(ctx_paths.clone()).map_err(ops::OpsError::from)?;
    if req.empty {
        return Ok((ctx, None));
    }
    // The sandbox's ownership records live on a tmpfs over the state directory, visible only
    // inside the sandbox (so `binfmtd status` there shows them as binfmtd's) and gone with it.
    ctx.state = match private_state_dir(&ctx_paths.state_dir) {
        true => StateStore::Dir(ctx_paths.state_dir.clone()),
        false => StateStore::Memory(Default::default()),
    };
    let mut install = req.install.clone();
    install.list = req.platforms.clone().unwrap_or_else(|| "all".into());
    install.persist = false;
    let report = ops::install(&ctx, &install)?;
    if req.platforms.is_some() && !report.ok {
        let failed: Vec<String> = report
            .handlers
            .iter()
            .filter(|h| h.result == "failed")
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

/// Mounts a private tmpfs over `dir` when it exists (never creating host directories);
/// false when that cannot be done.
fn private_state_dir(dir: &Path) -> bool {
    use nix::mount::{mount, MsFlags};
    dir.is_dir()
        && mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=0755,size=4m"),
        )
        .map_err(|e| tracing::debug!("no private state dir at {}: {e}", dir.display()))
        .is_ok()
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
