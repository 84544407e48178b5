//! Table tests of config layering and the effective desired state.

use super::*;

fn cfg(
    platforms: &[&str],
    flags: Option<&str>,
    persist: Option<bool>,
    prefer: &[(&str, &str)],
) -> Config {
    Config {
        platforms: platforms.iter().map(|s| s.to_string()).collect(),
        flags: flags.map(str::to_string),
        persist,
        prefer: prefer
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    }
}

#[test]
fn layering_table() {
    let cases = [
        (
            cfg(&[], None, None, &[]),
            cfg(&[], None, None, &[]),
            cfg(&[], None, None, &[]),
        ),
        (
            cfg(
                &["linux/arm64"],
                Some("F"),
                Some(true),
                &[("linux/amd64", "qemu-x86_64")],
            ),
            cfg(
                &["linux/riscv64", "linux/arm64"],
                None,
                Some(false),
                &[("linux/amd64", "rosetta")],
            ),
            cfg(
                &["linux/arm64", "linux/riscv64"],
                Some("F"),
                Some(false),
                &[("linux/amd64", "rosetta")],
            ),
        ),
        (
            cfg(&[], Some("F"), None, &[("a", "b")]),
            cfg(&[], Some("OPF"), None, &[("c", "d")]),
            cfg(&[], Some("OPF"), None, &[("a", "b"), ("c", "d")]),
        ),
    ];
    for (base, later, expected) in cases {
        assert_eq!(
            base.clone().layer(later.clone()),
            expected,
            "{base:?} + {later:?}"
        );
    }
}

#[test]
fn effective_table() {
    let config = cfg(
        &["linux/arm64", "linux/amd64"],
        Some("OPF"),
        Some(true),
        &[("linux/amd64", "rosetta")],
    );
    let mut rec = Recorded::default();
    let got = effective(&config, &rec, &|w: &str| w.to_string());
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].platform, "linux/arm64");
    assert_eq!(got[0].target, "linux/arm64");
    assert_eq!(got[0].spec.flags.as_deref(), Some("OPF"));
    assert!(got[0].spec.persist);
    assert_eq!(got[1].target, "rosetta");

    // Install records options that win over policy; uninstall hides a configured platform.
    rec.install(
        "linux/s390x",
        &InstallSpec {
            flags: Some("F".into()),
            ..Default::default()
        },
    );
    rec.uninstall("linux/arm64");
    rec.set_enabled("linux/amd64", false);
    let got = effective(&config, &rec, &|w: &str| w.to_string());
    let names: Vec<&str> = got.iter().map(|w| w.platform.as_str()).collect();
    assert_eq!(names, ["linux/amd64", "linux/s390x"]);
    assert!(!got[0].enabled);
    assert_eq!(got[1].spec.flags.as_deref(), Some("F"));
    assert!(!got[1].spec.persist);

    // Installing again after an uninstall brings it back.
    rec.install("linux/arm64", &InstallSpec::default());
    let got = effective(&config, &rec, &|w: &str| w.to_string());
    assert!(got
        .iter()
        .any(|w| w.platform == "linux/arm64" && w.spec.flags.as_deref() == Some("OPF")));
    // Uninstalling a recorded-only platform removes it entirely.
    rec.uninstall("linux/s390x");
    assert!(effective(&config, &rec, &|w: &str| w.to_string())
        .iter()
        .all(|w| w.platform != "linux/s390x"));
}

#[test]
fn files_layer_in_name_order_and_record_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "platforms = [\"linux/arm64\"]\nflags = \"F\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join(DROPIN_DIR)).unwrap();
    std::fs::write(dir.path().join("config.d/20-b.toml"), "flags = \"OPF\"\n").unwrap();
    std::fs::write(
        dir.path().join("config.d/10-a.toml"),
        "platforms = [\"linux/riscv64\"]\nflags = \"P\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("config.d/ignored.conf"), "garbage").unwrap();
    let config = Config::load(dir.path()).unwrap();
    assert_eq!(config.platforms, ["linux/arm64", "linux/riscv64"]);
    assert_eq!(config.flags.as_deref(), Some("OPF"));

    std::fs::write(dir.path().join("config.d/30-bad.toml"), "platfoms = []\n").unwrap();
    let err = Config::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("30-bad.toml"), "{err}");

    let state = dir.path().join("state");
    assert_eq!(Recorded::load(&state).unwrap(), Recorded::default());
    let mut rec = Recorded::default();
    rec.install(
        "linux/arm64",
        &InstallSpec {
            persist: true,
            ..Default::default()
        },
    );
    rec.uninstall("linux/s390x");
    rec.save(&state).unwrap();
    assert_eq!(Recorded::load(&state).unwrap(), rec);
}

#[test]
fn keys_are_canonical_and_all_expands() {
    let canon = |w: &str| match w {
        "linux/arm64" | "arm64" | "aarch64" => "qemu-aarch64".to_string(),
        other => other.to_string(),
    };
    let words = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        canonical_keys(&words(&["arm64", "linux/arm64", "riscv64"]), &canon, &[]),
        words(&["qemu-aarch64", "riscv64"])
    );
    assert_eq!(
        canonical_keys(&words(&["all"]), &canon, &words(&["qemu-aarch64", "x"])),
        words(&["qemu-aarch64", "x", "all"])
    );
    // Configured as linux/arm64, uninstalled as arm64: no longer wanted.
    let config = Config {
        platforms: words(&["linux/arm64"]),
        ..Config::default()
    };
    let mut rec = Recorded::default();
    rec.uninstall("qemu-aarch64");
    assert!(effective(&config, &rec, &canon).is_empty());
    rec.install("qemu-aarch64", &InstallSpec::default());
    assert_eq!(effective(&config, &rec, &canon).len(), 1);
}
