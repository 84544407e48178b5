//! `binfmtd doctor`: explain why a foreign binary or a whole root will fail under emulation.
//!
//! Flow: [`rootfs`] opens the root confined → [`inspect`] reads the target, its loader and
//! libraries ([`elf`], [`libs`]) → [`checks`] judges purely → [`report`] renders.
//! [`scan`] does the same for every ELF under a root; [`run`] executes and classifies hangs.

pub mod args;
pub mod checks;
pub mod checks_cpu;
pub mod checks_deps;
pub mod checks_load;
pub mod context;
pub mod defects;
pub mod defects_table;
pub mod elf;
pub mod findings;
pub mod inspect;
pub mod libs;
pub mod loadable;
pub mod pid;
pub mod report;
pub mod rootfs;
pub mod run;
pub mod runas;
pub mod scan;
pub mod sniff;
pub mod syscalls;
#[cfg(test)]
pub(crate) mod testelf;

pub use args::{DoctorArgs, UsageError};
pub use context::{DoctorContext, HostFacts};
pub use findings::{Finding, FindingId, Severity};
pub use report::{render_human, Report};

use checks::View;
use inspect::{InterpInfo, LoaderState, RootLoader, Subject};
use libs::Resolver;
use report::{BinfmtState, Identity, Mode, SubjectReport, Tally};
use rootfs::{Meta, Root};
use sniff::FileKind;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How many `#!` levels the kernel follows before giving up (fs/exec.c allows 5 rounds
/// of binfmt handlers in total).
const MAX_SCRIPT_DEPTH: usize = 4;

/// Errors that stop doctor before it can judge anything (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Root(#[from] rootfs::RootError),
    #[error("cannot diagnose the open file: {0}; pass a regular file descriptor")]
    BadFd(nix::errno::Errno),
    #[error(transparent)]
    Process(#[from] crate::procs::ProcsError),
}

impl DoctorError {
    /// Usage or I/O errors and a missing PID: exit status 2; a PID that cannot be read: 4.
    pub fn exit_code(&self) -> i32 {
        match self {
            DoctorError::Process(crate::procs::ProcsError::Denied { .. }) => 4,
            _ => 2,
        }
    }
}

/// Options of [`execute_fd`] (the D-Bus `Doctor(fd)` method).
#[derive(Debug, Clone)]
pub struct FdOptions {
    /// Root in which the loader, libraries and `#!` interpreters are looked up.
    pub root: PathBuf,
    /// Name to show for the file (and to match `E` entries against).
    pub name: String,
    /// Look up (loader, libraries, `#!` interpreters) only what any user may read: set by the
    /// D-Bus service, which is privileged and must not read for a caller what it could not.
    pub public_only: bool,
}

/// Shared state of one doctor invocation.
pub(crate) struct Session<'a> {
    pub root: Root,
    pub ctx: &'a DoctorContext,
    pub interps: BTreeMap<String, InterpInfo>,
    pub root_name: String,
    root_loaders: std::sync::OnceLock<Vec<RootLoader>>,
}

impl<'a> Session<'a> {
    fn open(root_path: &Path, ctx: &'a DoctorContext) -> Result<Session<'a>, DoctorError> {
        let root = Root::open(root_path)?;
        let host = Root::open(&ctx.host_root)?;
        let interps = inspect::interpreters(&ctx.snapshot, &ctx.catalog, &root, &host);
        Ok(Session {
            root_name: root_path.display().to_string(),
            root,
            ctx,
            interps,
            root_loaders: std::sync::OnceLock::new(),
        })
    }

    fn loaders_for(&self, s: &Subject) -> &[RootLoader] {
        let needed = matches!(
            s.loader,
            Some(LoaderState::Missing { .. }) | Some(LoaderState::Unusable { .. })
        );
        if needed {
            self.root_loaders
                .get_or_init(|| inspect::root_loaders(&self.root))
        } else {
            &[]
        }
    }

    /// Judges one gathered subject.
    pub fn judge(&self, s: &Subject) -> SubjectReport {
        let view = View {
            snapshot: &self.ctx.snapshot,
            host: &self.ctx.host,
            interps: &self.interps,
            root_loaders: self.loaders_for(s),
            root_is_host: self.root.is_host_root(),
            root_name: &self.root_name,
            owned: &self.ctx.owned,
        };
        let findings = checks::check(s, &view);
        let identity = match &s.elf {
            Some(Ok(l)) => Some(Identity::of(&l.facts, &self.ctx.host)),
            _ => None,
        };
        let snap = &self.ctx.snapshot;
        let handler = snap.mounted.then(|| kernel_winner(snap, s)).flatten();
        SubjectReport {
            path: s.path.clone(),
            real_path: s.real_path.clone().filter(|r| *r != s.path),
            script_chain: vec![],
            identity,
            handler,
            findings,
        }
    }

    /// Diagnoses `path` inside the root, following `#!` interpreters.
    fn diagnose_path(&self, path: &str, resolver: &mut Resolver<'_>) -> SubjectReport {
        let first = inspect::subject_at(&self.root, path, resolver);
        self.follow_scripts(first, resolver)
    }

    fn follow_scripts(&self, mut s: Subject, resolver: &mut Resolver<'_>) -> SubjectReport {
        let mut chain = Vec::new();
        let mut extra = Vec::new();
        let outer = s.path.clone();
        while let FileKind::Script { interpreter, arg } = s.kind.clone() {
            let judged = self.judge(&s);
            extra.extend(judged.findings);
            chain.push(s.path.clone());
            extra.push(
                Finding::info(
                    FindingId::Script,
                    format!(
                        "{} is a script for {interpreter}{}",
                        s.path,
                        arg.as_deref()
                            .map(|a| format!(" (argument {a:?})"))
                            .unwrap_or_default()
                    ),
                )
                .about(&interpreter)
                .with("interpreter", &interpreter),
            );
            if chain.len() > MAX_SCRIPT_DEPTH {
                extra.push(
                    Finding::error(FindingId::ScriptNesting, format!("more than {MAX_SCRIPT_DEPTH} nested #! interpreters; the kernel fails with ELOOP"))
                        .with("chain", chain.join(" -> "))
                        .fix("point the #! line at a real program"),
                );
                return self.finish_chain(&outer, chain, extra, None);
            }
            let next = inspect::subject_at(&self.root, &interpreter, resolver);
            if let Some(rootfs::OpenError::Lookup(e)) = next.open_error {
                let base = interpreter.rsplit('/').next().unwrap_or(&interpreter);
                let alt: Vec<String> = ["/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin"]
                    .iter()
                    .map(|d| format!("{d}/{base}"))
                    .filter(|p| *p != interpreter && self.root.exists(p))
                    .collect();
                let fix = match alt.first() {
                    Some(a) => format!("change the #! line of {} to #!{a}", s.path),
                    None => format!(
                        "install {base} into the root, or change the #! line of {}",
                        s.path
                    ),
                };
                extra.push(
                    Finding::error(
                        FindingId::ScriptInterpreterMissing,
                        format!(
                            "{} starts with #!{interpreter}, which {e} in {}",
                            s.path, self.root_name
                        ),
                    )
                    .about(&interpreter)
                    .with("script", &s.path)
                    .with("interpreter", &interpreter)
                    .with(
                        "exists instead",
                        if alt.is_empty() {
                            "nothing similar".to_string()
                        } else {
                            alt.join(", ")
                        },
                    )
                    .fix(fix),
                );
                return self.finish_chain(&outer, chain, extra, None);
            }
            s = next;
        }
        let inner = self.judge(&s);
        if chain.is_empty() {
            return inner;
        }
        self.finish_chain(&outer, chain, extra, Some(inner))
    }

    fn finish_chain(
        &self,
        outer: &str,
        chain: Vec<String>,
        mut extra: Vec<Finding>,
        inner: Option<SubjectReport>,
    ) -> SubjectReport {
        let (identity, handler, real) = match inner {
            Some(i) => {
                extra.extend(i.findings);
                (i.identity, i.handler, Some(i.path))
            }
            None => (None, None, None),
        };
        SubjectReport {
            path: outer.to_string(),
            real_path: real,
            script_chain: chain,
            identity,
            handler,
            findings: extra,
        }
    }

    fn report(&self, mode: Mode, subjects: Vec<SubjectReport>, summary: report::Summary) -> Report {
        let snap = &self.ctx.snapshot;
        Report {
            schema: report::SCHEMA,
            mode,
            root: self.root_name.clone(),
            host: self.ctx.host.clone(),
            binfmt: BinfmtState {
                path: snap.path.display().to_string(),
                mounted: snap.mounted,
                enabled: snap.enabled,
                entries: snap.entries.len(),
            },
            subjects,
            summary,
            run: None,
            process: None,
        }
    }
}

fn kernel_winner(snap: &crate::kernel::Snapshot, s: &Subject) -> Option<String> {
    let name = s.path.rsplit('/').next();
    crate::kernel::codec::winner(&snap.entries, snap.enabled, &s.header, name)
        .map(|e| e.name.clone())
}

/// Turns the user's PATH into a path inside the root: relative paths are taken from the
/// current directory when the root is `/`, and from the root's top otherwise.
fn path_in_root(path: &Path, root: &Root) -> String {
    if path.is_absolute() {
        return path.display().to_string();
    }
    if root.is_host_root() {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(path).display().to_string();
        }
    }
    format!("/{}", path.display())
}

fn single(session: &Session<'_>, mode: Mode, sr: SubjectReport) -> Report {
    let mut tally = Tally::default();
    tally.add(&sr, sr.identity.is_some());
    session.report(mode, vec![sr], tally.finish())
}

/// Runs `binfmtd doctor` with parsed arguments.
pub fn execute(args: &DoctorArgs, ctx: &DoctorContext) -> Result<Report, DoctorError> {
    args.validate()?;
    let session = Session::open(&args.root, ctx)?;
    if args.all {
        let (subjects, summary) = scan::scan(&session);
        return Ok(session.report(Mode::All, subjects, summary));
    }
    let Some(path) = &args.path else {
        return Err(UsageError::NothingToDo.into());
    };
    let inner = path_in_root(path, &session.root);
    let mut resolver = Resolver::new(&session.root);
    let mut sr = session.diagnose_path(&inner, &mut resolver);
    if !args.run {
        return Ok(single(&session, Mode::File, sr));
    }
    let outcome = execute_run(&session, &inner, &sr, args);
    sr.findings.extend(run::findings(&outcome));
    let mut rep = single(&session, Mode::Run, sr);
    rep.run = Some(outcome);
    Ok(rep)
}

/// `doctor --pid`: samples the running process through `src`, judges the binary it runs
/// inside its root, and adds the known defects that match the running emulator.
pub fn execute_pid(
    args: &DoctorArgs,
    ctx: &DoctorContext,
    src: &dyn crate::procs::source::ProcSource,
) -> Result<Report, DoctorError> {
    args.validate()?;
    let pid = args.pid.ok_or(UsageError::NothingToDo)?;
    let outcome = pid::sample(src, &ctx.catalog, pid, args.sample)?;
    let session = Session::open(Path::new(&format!("/proc/{pid}/root")), ctx)?;
    let inner = pid::guest_path(pid, &outcome.process);
    let mut resolver = Resolver::new(&session.root);
    let mut sr = session.diagnose_path(&inner, &mut resolver);
    let go = sr.identity.as_ref().and_then(|i| i.go_version.clone());
    let libs = pid::mapped_files(pid);
    let kernel = ctx.host.kernel.as_deref();
    for f in pid::live_defects(&outcome.process, go.as_deref(), &libs, kernel) {
        if !sr
            .findings
            .iter()
            .any(|g| g.id == f.id && g.subject == f.subject)
        {
            sr.findings.push(f);
        }
    }
    sr.findings.insert(0, pid::verdict_finding(&outcome));
    let mut rep = single(&session, Mode::Pid, sr);
    rep.process = Some(outcome);
    Ok(rep)
}

fn execute_run(
    session: &Session<'_>,
    inner: &str,
    sr: &SubjectReport,
    args: &DoctorArgs,
) -> run::RunOutcome {
    let root_is_host = session.root.is_host_root();
    let spec = run::RunSpec {
        root: &args.root,
        root_is_host,
        path: inner,
        args: &args.args,
        timeout: std::time::Duration::from_secs(args.timeout),
        env: vec![],
        host_arch: &session.ctx.host.arch,
        identity: runas::for_this_process(),
    };
    let mut outcome = run::run(&spec);
    let hung = matches!(
        outcome.status,
        run::RunStatus::HangBlocked { .. } | run::RunStatus::HangSpinning
    );
    let qemu = sr
        .handler
        .as_ref()
        .and_then(|h| session.interps.get(h))
        .is_some_and(|i| i.translator == Some(crate::catalog::Translator::Qemu));
    if hung && qemu {
        let traced = run::run(&run::RunSpec {
            env: vec![("QEMU_STRACE".into(), "1".into())],
            ..spec
        });
        outcome.guest_syscalls = traced.stderr_tail;
    }
    outcome
}

/// Diagnoses an already-open file (no lookup of the file itself); its loader, libraries and
/// `#!` interpreter are looked up inside `options.root`.
pub fn execute_fd(
    fd: OwnedFd,
    options: &FdOptions,
    ctx: &DoctorContext,
) -> Result<Report, DoctorError> {
    let mut session = Session::open(&options.root, ctx)?;
    if options.public_only {
        session.root.restrict_to_public();
    }
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(DoctorError::BadFd)?;
    let meta = Meta::of(&st);
    let mut resolver = Resolver::new(&session.root);
    let subject = if meta.kind == rootfs::FileType::Regular {
        inspect::subject_from_file(
            std::fs::File::from(fd),
            meta,
            &options.name,
            None,
            &mut resolver,
        )
    } else {
        let mut s = Subject::empty(&options.name);
        s.meta = Some(meta);
        s.open_error = Some(rootfs::OpenError::NotRegular(meta));
        s
    };
    let sr = session.follow_scripts(subject, &mut resolver);
    Ok(single(&session, Mode::Fd, sr))
}
