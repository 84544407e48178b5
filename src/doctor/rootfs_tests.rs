//! Confinement corpus for [`Root`]: symlinks out of the root and loops, under both methods.

use super::*;
use std::os::unix::fs::symlink;

const SECRET: &[u8] = b"HOST SECRET";

/// A host directory with a secret next to a root whose links try to reach it.
fn corpus() -> (tempfile::TempDir, PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let outside = top.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), SECRET).unwrap();
    let root = top.path().join("root");
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("usr/lib/libok.so"), b"inside").unwrap();
    symlink("usr/lib", root.join("lib")).unwrap();
    let secret = outside.join("secret");
    symlink(&secret, root.join("abs-escape")).unwrap();
    symlink(
        "../../../../../../../../outside/secret",
        root.join("rel-escape"),
    )
    .unwrap();
    symlink("../outside/secret", root.join("etc/one-up")).unwrap();
    symlink(&outside, root.join("dir-escape")).unwrap();
    symlink("/proc/self/root", root.join("magic")).unwrap();
    symlink("loop-b", root.join("loop-a")).unwrap();
    symlink("loop-a", root.join("loop-b")).unwrap();
    symlink("self", root.join("self")).unwrap();
    symlink("/lib/../../..", root.join("climb")).unwrap();
    (top, root)
}

fn read(root: &Root, p: &str) -> Option<Vec<u8>> {
    root.read_small(p, 1 << 20).ok()
}

fn check(mode: Confinement) {
    let (_top, dir) = corpus();
    let root = Root::open_with(&dir, mode).unwrap();
    let escapes = [
        "abs-escape",
        "rel-escape",
        "etc/one-up",
        "dir-escape/secret",
        "/../outside/secret",
        "../../outside/secret",
        "climb/outside/secret",
        "magic/etc/passwd",
        "lib/../../outside/secret",
        "usr/lib/../../../outside/secret",
    ];
    for p in escapes {
        let got = read(&root, p);
        assert!(
            got.as_deref() != Some(SECRET),
            "{mode:?}: {p} escaped the root"
        );
        assert!(got.is_none(), "{mode:?}: {p} resolved to {got:?}");
    }
    assert_eq!(
        read(&root, "/lib/libok.so").as_deref(),
        Some(&b"inside"[..])
    );
    assert_eq!(
        read(&root, "lib/../lib/libok.so").as_deref(),
        Some(&b"inside"[..])
    );
    assert_eq!(root.stat("loop-a"), Err(LookupError::Loop), "{mode:?}");
    assert_eq!(root.stat("self"), Err(LookupError::Loop), "{mode:?}");
    assert_eq!(
        root.stat("usr/lib/libok.so/x"),
        Err(LookupError::NotDir),
        "{mode:?}"
    );
    assert_eq!(root.stat("nope"), Err(LookupError::NotFound));
    assert_eq!(root.stat("/").unwrap().kind, FileType::Directory);
    let fd = root.resolve("/lib/libok.so").unwrap();
    assert_eq!(
        root.real_path(fd.as_fd()).as_deref(),
        Some("/usr/lib/libok.so")
    );
    assert!(root
        .list_dir("/usr/lib")
        .unwrap()
        .contains(&"libok.so".to_string()));
}

#[test]
fn openat2_confines() {
    check(Confinement::Openat2);
}

#[test]
fn manual_walk_confines() {
    check(Confinement::Manual);
}

#[test]
fn fifo_and_devices_are_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
    symlink("/dev/null", dir.path().join("null-link")).unwrap();
    let host = Root::open(Path::new("/")).unwrap();
    let root = Root::open(dir.path()).unwrap();
    let start = std::time::Instant::now();
    match root.open_regular("fifo") {
        Err(OpenError::NotRegular(m)) => assert_eq!(m.kind, FileType::Fifo),
        other => panic!("{other:?}"),
    }
    // /dev/null is not inside this root, so the link dangles.
    assert!(matches!(
        root.open_regular("null-link"),
        Err(OpenError::Lookup(LookupError::NotFound))
    ));
    match host.open_regular("/dev/null") {
        Err(OpenError::NotRegular(m)) => assert_eq!(m.kind, FileType::CharDevice),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    assert!(host.is_host_root() && !root.is_host_root());
}

#[test]
fn public_only_root_reaches_only_world_readable_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("pub")).unwrap();
    std::fs::write(base.join("pub/open"), b"x").unwrap();
    std::fs::write(base.join("pub/secret"), b"x").unwrap();
    std::fs::set_permissions(
        base.join("pub/secret"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::create_dir_all(base.join("private")).unwrap();
    std::fs::write(base.join("private/file"), b"x").unwrap();
    std::fs::set_permissions(base.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let full = Root::open(base).unwrap();
    let mut public = Root::open(base).unwrap();
    public.restrict_to_public();
    for p in ["/pub/open", "/pub/secret", "/private/file"] {
        assert!(full.resolve(p).is_ok(), "{p}");
    }
    assert!(public.resolve("/pub/open").is_ok());
    assert!(public.resolve("/pub/secret").is_err());
    assert!(public.resolve("/private/file").is_err());
}
