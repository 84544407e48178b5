//! Which ids a new user namespace maps: the full range as root, the caller's subordinate ids
//! (`/etc/subuid`, `/etc/subgid`, written by `newuidmap`/`newgidmap`) as a user, else only the
//! caller's own id. Parsing and the choice are pure; writing the maps is in `ns`.

use serde::Serialize;

/// A range `inside..inside+count` mapped to `outside..outside+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Extent {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// How ids are mapped, and who writes the maps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mapping {
    /// Root outside: every id maps to itself; setgroups allowed. Written directly.
    Identity,
    /// A user with subordinate ids: 0 is the caller, 1.. are the subordinate ids; setgroups
    /// allowed. Written by newuidmap/newgidmap.
    Subordinate { uid: Vec<Extent>, gid: Vec<Extent> },
    /// Only the caller's own ids, as 0; setgroups denied. `why` says what was missing.
    Single { uid: u32, gid: u32, why: String },
}

impl Mapping {
    /// The `/proc/PID/uid_map` or `gid_map` text for direct writing (Identity and Single).
    pub fn direct_text(&self, gid: bool) -> Option<String> {
        match self {
            Mapping::Identity => Some("0 0 4294967295".into()),
            Mapping::Single { uid, gid: g, .. } => {
                Some(format!("0 {} 1", if gid { g } else { uid }))
            }
            Mapping::Subordinate { .. } => None,
        }
    }

    /// The arguments after the PID for newuidmap (`gid` false) or newgidmap.
    pub fn helper_args(&self, gid: bool) -> Vec<String> {
        let Mapping::Subordinate { uid, gid: g } = self else {
            return Vec::new();
        };
        let extents = if gid { g } else { uid };
        extents
            .iter()
            .flat_map(|e| [e.inside, e.outside, e.count])
            .map(|n| n.to_string())
            .collect()
    }

    /// A note for the user when only one id is mapped.
    pub fn note(&self) -> Option<String> {
        match self {
            Mapping::Single { why, .. } => Some(format!(
                "only your own user and group are mapped into the sandbox ({why}): programs that change user or set supplementary groups (buildah, apt, su) fail there with EPERM; add ranges for you to /etc/subuid and /etc/subgid (e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER`) and install newuidmap/newgidmap (Debian: uidmap)"
            )),
            _ => None,
        }
    }
}

/// The first range of `/etc/subuid`-style `text` for the user (by name or by number), as
/// (start, count). Comment lines and malformed lines are skipped (pure).
pub fn subordinate(text: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    let id = id.to_string();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let mine = who == id || name.is_some_and(|n| n == who);
            let start: u32 = start.parse().ok()?;
            let count: u32 = count.parse().ok()?;
            (mine && count > 0 && start.checked_add(count).is_some()).then_some((start, count))
        })
        .next()
}

/// What the choice looks at.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub uid: u32,
    pub gid: u32,
    pub user_name: Option<String>,
    /// Contents of /etc/subuid and /etc/subgid (`None`: unreadable or absent).
    pub subuid: Option<String>,
    pub subgid: Option<String>,
    /// newuidmap and newgidmap are installed.
    pub helpers: bool,
}

/// Chooses the mapping (pure).
pub fn choose(f: &Facts) -> Mapping {
    if f.uid == 0 {
        return Mapping::Identity;
    }
    let single = |why: String| Mapping::Single {
        uid: f.uid,
        gid: f.gid,
        why,
    };
    if !f.helpers {
        return single("newuidmap/newgidmap are not installed".into());
    }
    let name = f.user_name.as_deref();
    let Some((us, uc)) = f
        .subuid
        .as_deref()
        .and_then(|t| subordinate(t, name, f.uid))
    else {
        return single(format!("/etc/subuid has no range for uid {}", f.uid));
    };
    let Some((gs, gc)) = f
        .subgid
        .as_deref()
        .and_then(|t| subordinate(t, name, f.gid))
    else {
        return single(format!(
            "/etc/subgid has no range for {}",
            name.unwrap_or("this user")
        ));
    };
    let own = |outside| Extent {
        inside: 0,
        outside,
        count: 1,
    };
    Mapping::Subordinate {
        uid: vec![
            own(f.uid),
            Extent {
                inside: 1,
                outside: us,
                count: uc,
            },
        ],
        gid: vec![
            own(f.gid),
            Extent {
                inside: 1,
                outside: gs,
                count: gc,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges() {
        let text = "# comment\nbob:200000:65536\nalice:100000:65536\n1001:300000:1000\nbad:x:1\nzero:1:0\n";
        type Case<'a> = (Option<&'a str>, u32, Option<(u32, u32)>);
        let cases: &[Case] = &[
            (Some("alice"), 1000, Some((100000, 65536))),
            (None, 1001, Some((300000, 1000))),
            (Some("carol"), 1002, None),
            (Some("bad"), 1003, None),
            (Some("zero"), 1004, None),
        ];
        for (name, id, want) in cases {
            assert_eq!(subordinate(text, *name, *id), *want, "{name:?} {id}");
        }
    }

    #[test]
    fn choice() {
        let user = Facts {
            uid: 1000,
            gid: 1000,
            user_name: Some("alice".into()),
            subuid: Some("alice:100000:65536\n".into()),
            subgid: Some("alice:100000:65536\n".into()),
            helpers: true,
        };
        assert_eq!(choose(&Facts::default()), Mapping::Identity);
        let m = choose(&user);
        assert_eq!(
            m.helper_args(false),
            ["0", "1000", "1", "1", "100000", "65536"]
        );
        assert_eq!(m.direct_text(false), None);
        assert!(m.note().is_none());
        let no_helpers = Facts {
            helpers: false,
            ..user.clone()
        };
        let no_range = Facts {
            subgid: Some("bob:1:2\n".into()),
            ..user.clone()
        };
        for (f, why) in [(no_helpers, "not installed"), (no_range, "/etc/subgid")] {
            let m = choose(&f);
            assert_eq!(m.direct_text(false).as_deref(), Some("0 1000 1"));
            assert!(m.note().unwrap().contains(why), "{m:?}");
        }
        assert_eq!(
            Mapping::Identity.direct_text(true).as_deref(),
            Some("0 0 4294967295")
        );
    }
}
