//! Which container a process belongs to, from the cgroup path the kernel reports for it (pure).

use serde::Serialize;

/// A container runtime recognised from a cgroup path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Docker,
    /// containerd's CRI plugin (Kubernetes), `cri-containerd-ID.scope` or `kubepods/.../ID`.
    Containerd,
    /// CRI-O (Kubernetes), `crio-ID.scope`.
    Crio,
    Podman,
    /// A BuildKit `RUN` step (runc executor), `buildkit/ID`.
    Buildkit,
    /// systemd-nspawn, `systemd-nspawn@NAME.service` or `machine-NAME.scope`.
    Nspawn,
    Lxc,
}

/// The container a process runs in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Container {
    pub runtime: Runtime,
    /// The runtime's id (a 64-hex container id; nspawn and LXC: the machine name).
    pub id: String,
    /// The first 12 characters of a hex id, as `docker ps` shows it; other ids whole.
    pub short_id: String,
    /// The container's name, where the runtime's state is readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Container {
    fn new(runtime: Runtime, id: &str) -> Container {
        let hex = id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit());
        Container {
            runtime,
            id: id.to_string(),
            short_id: if hex {
                id[..12].to_string()
            } else {
                id.to_string()
            },
            name: None,
        }
    }

    /// True when `query` is this container's id (or a prefix of at least 3 characters of it)
    /// or its name.
    pub fn matches(&self, query: &str) -> bool {
        (query.len() >= 3 && self.id.starts_with(query))
            || self.id == query
            || self.name.as_deref() == Some(query)
    }
}

/// The unified (cgroup v2) path from `/proc/PID/cgroup`; on a v1-only host the
/// `name=systemd` hierarchy's, else the first line's.
pub fn path_of(proc_cgroup: &str) -> Option<&str> {
    let mut lines = proc_cgroup.lines().filter_map(|l| {
        let mut f = l.splitn(3, ':');
        Some((f.next()?, f.next()?, f.next()?))
    });
    let all: Vec<(&str, &str, &str)> = lines.by_ref().collect();
    all.iter()
        .find(|(h, c, _)| *h == "0" && c.is_empty())
        .or_else(|| all.iter().find(|(_, c, _)| *c == "name=systemd"))
        .or_else(|| all.first())
        .map(|(_, _, p)| *p)
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// systemd unit-name escaping: `\x2d` is `-`.
fn unescape(s: &str) -> String {
    s.replace("\\x2d", "-")
}

/// The container of one path component and the one before it, if any.
fn component(prev: &str, c: &str) -> Option<Container> {
    let scoped = |prefix: &str| {
        c.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".scope"))
            .filter(|id| is_hex_id(id))
    };
    if let Some(id) = scoped("docker-") {
        return Some(Container::new(Runtime::Docker, id));
    }
    if let Some(id) = scoped("cri-containerd-") {
        return Some(Container::new(Runtime::Containerd, id));
    }
    if let Some(id) = scoped("crio-") {
        return Some(Container::new(Runtime::Crio, id));
    }
    if let Some(id) = scoped("libpod-") {
        return Some(Container::new(Runtime::Podman, id));
    }
    if let Some(name) = c
        .strip_prefix("systemd-nspawn@")
        .and_then(|r| r.strip_suffix(".service"))
        .or_else(|| {
            c.strip_prefix("machine-")
                .and_then(|r| r.strip_suffix(".scope"))
        })
        .filter(|n| !n.starts_with("libpod-") && !n.starts_with("qemu-"))
    {
        return Some(Container::new(Runtime::Nspawn, &unescape(name)));
    }
    if let Some(name) = c.strip_prefix("lxc.payload.") {
        return Some(Container::new(Runtime::Lxc, name));
    }
    match prev {
        "docker" if is_hex_id(c) => Some(Container::new(Runtime::Docker, c)),
        "buildkit" if !c.is_empty() => Some(Container::new(Runtime::Buildkit, c)),
        "lxc" if !c.is_empty() => Some(Container::new(Runtime::Lxc, c)),
        p if p.starts_with("pod") && is_hex_id(c) => Some(Container::new(Runtime::Containerd, c)),
        _ => None,
    }
}

/// The innermost container on a cgroup path: BuildKit's steps run inside the buildkitd
/// container, and the step is what the user asks about.
pub fn attribute(cgroup_path: &str) -> Option<Container> {
    let parts: Vec<&str> = cgroup_path.split('/').filter(|p| !p.is_empty()).collect();
    let mut found = None;
    for (i, c) in parts.iter().enumerate() {
        let prev = if i == 0 { "" } else { parts[i - 1] };
        if let Some(k) = component(prev, c) {
            found = Some(k);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    type Want = Option<(Runtime, &'static str, &'static str)>;

    const ID: &str = "3f4e8c1d2b7a9e0f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b";

    #[test]
    fn cgroup_paths_table() {
        let table: &[(String, Want)] = &[
            (format!("/system.slice/docker-{ID}.scope"), Some((Runtime::Docker, ID, "3f4e8c1d2b7a"))),
            (format!("/docker/{ID}"), Some((Runtime::Docker, ID, "3f4e8c1d2b7a"))),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b_3c.slice/cri-containerd-{ID}.scope"),
                Some((Runtime::Containerd, ID, "3f4e8c1d2b7a")),
            ),
            (format!("/kubepods/besteffort/pod1a2b3c4d-0000/{ID}"), Some((Runtime::Containerd, ID, "3f4e8c1d2b7a"))),
            (format!("/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope"), Some((Runtime::Crio, ID, "3f4e8c1d2b7a"))),
            (format!("/machine.slice/libpod-{ID}.scope/container"), Some((Runtime::Podman, ID, "3f4e8c1d2b7a"))),
            (format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"), Some((Runtime::Podman, ID, "3f4e8c1d2b7a"))),
            (
                format!("/system.slice/docker-{ID}.scope/buildkit/k2ye0jy6dk9dcgnxm9a3xyqz4"),
                Some((Runtime::Buildkit, "k2ye0jy6dk9dcgnxm9a3xyqz4", "k2ye0jy6dk9dcgnxm9a3xyqz4")),
            ),
            ("/buildkit/abc123".into(), Some((Runtime::Buildkit, "abc123", "abc123"))),
            ("/machine.slice/systemd-nspawn@deb\\x2darm64.service/payload".into(), Some((Runtime::Nspawn, "deb-arm64", "deb-arm64"))),
            ("/machine.slice/machine-debian.scope/payload".into(), Some((Runtime::Nspawn, "debian", "debian"))),
            ("/lxc.payload.web1".into(), Some((Runtime::Lxc, "web1", "web1"))),
            // Not containers: the host, a user session, conmon, a short docker-like name.
            ("/".into(), None),
            ("/user.slice/user-1000.slice/session-3.scope".into(), None),
            (format!("/machine.slice/libpod-conmon-{ID}.scope"), None),
            ("/system.slice/docker-abc.scope".into(), None),
            ("/system.slice/docker.service".into(), None),
        ];
        for (path, want) in table {
            let got = attribute(path).map(|c| (c.runtime, c.id.clone(), c.short_id.clone()));
            let want = want.map(|(r, id, short)| (r, id.to_string(), short.to_string()));
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn proc_cgroup_lines() {
        let hybrid = "9:name=systemd:/system.slice/x.service\n4:memory:/m\n0::/system.slice/docker-a.scope\n";
        assert_eq!(path_of(hybrid), Some("/system.slice/docker-a.scope"));
        let v1 = "4:memory:/m\n1:name=systemd:/docker/abc\n";
        assert_eq!(path_of(v1), Some("/docker/abc"));
        assert_eq!(path_of("0::/\n"), Some("/"));
        assert_eq!(path_of(""), None);
        let c = attribute(&format!("/docker/{ID}")).expect("docker");
        assert!(c.matches("3f4e8c") && c.matches(ID) && !c.matches("3f") && !c.matches("ffff"));
    }
}
