//! The Prometheus text exposition format of a daemon status (pure): what `binfmtd metrics`
//! prints and `binfmtd daemon --metrics-file` keeps current for node_exporter.

use crate::persist::daemon_status::DaemonStatus;
use std::fmt::Write as _;

/// Escapes a label value: backslash, double quote and newline (the format's three escapes).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        let l = if l.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", l.join(","))
        };
        let _ = writeln!(self.0, "{name}{l} {}", num(value));
    }
}

fn bit(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn platforms(o: &mut Out, s: &DaemonStatus) {
    type Pick = fn(&crate::persist::daemon_status::PlatformState) -> bool;
    let families: [(&str, &str, Pick); 2] = [
        (
            "binfmtd_platform_registered",
            "1 when an enabled binfmt_misc entry (or the CPU itself) serves the platform.",
            |p| p.registered,
        ),
        (
            "binfmtd_platform_verified",
            "1 when the platform's probe passed in the last verification.",
            |p| p.verified,
        ),
    ];
    for (name, help, pick) in families {
        o.family(name, "gauge", help);
        for p in &s.platforms {
            let h = p.handler.as_deref().unwrap_or("native");
            let l = [
                ("platform", p.platform.as_str()),
                ("handler", h),
                ("how", p.how.as_str()),
            ];
            o.sample(name, &l, bit(pick(p)));
        }
    }
}

fn info(o: &mut Out, s: &DaemonStatus) {
    o.family(
        "binfmtd_build_info",
        "gauge",
        "binfmtd's version; always 1.",
    );
    o.sample("binfmtd_build_info", &[("version", &s.version)], 1.0);
    o.family(
        "binfmtd_interpreter_info",
        "gauge",
        "An interpreter in use and its version (qemu's first --version line); always 1.",
    );
    for i in &s.interpreters {
        let v = i.version.as_deref().unwrap_or("unknown");
        let l = [
            ("handler", i.handler.as_str()),
            ("path", i.path.as_str()),
            ("version", v),
        ];
        o.sample("binfmtd_interpreter_info", &l, 1.0);
    }
}

fn times(o: &mut Out, s: &DaemonStatus) {
    o.family(
        "binfmtd_probe_duration_seconds",
        "gauge",
        "How long the last verification's probes took (they run in parallel).",
    );
    o.sample(
        "binfmtd_probe_duration_seconds",
        &[],
        s.probe_seconds.unwrap_or(0.0),
    );
    o.family(
        "binfmtd_drift_repairs_total",
        "counter",
        "Entries (re-)registered by reconciling the desired state since the daemon started.",
    );
    o.sample("binfmtd_drift_repairs_total", &[], s.repairs_total as f64);
    let stamps = [
        (
            "binfmtd_last_drift_repair_timestamp_seconds",
            "When the daemon last re-registered an entry (0: never).",
            s.last_repair,
        ),
        (
            "binfmtd_last_reconcile_timestamp_seconds",
            "When the daemon last applied the desired state (0: never).",
            s.last_reconcile,
        ),
        (
            "binfmtd_last_verification_timestamp_seconds",
            "When the platforms were last verified (0: never).",
            s.verified_at,
        ),
        (
            "binfmtd_status_timestamp_seconds",
            "When these values were taken.",
            Some(s.updated),
        ),
    ];
    for (name, help, v) in stamps {
        o.family(name, "gauge", help);
        o.sample(name, &[], v.unwrap_or(0.0));
    }
}

fn failed(o: &mut Out, s: &DaemonStatus) {
    o.family(
        "binfmtd_failed_handlers",
        "gauge",
        "Handlers the last reconcile could not keep registered and verified.",
    );
    o.sample("binfmtd_failed_handlers", &[], s.failed.len() as f64);
    o.family(
        "binfmtd_handler_failed",
        "gauge",
        "1 for each handler the last reconcile could not keep.",
    );
    for f in &s.failed {
        let l = [
            ("handler", f.handler.as_str()),
            ("platform", f.platform.as_str()),
        ];
        o.sample("binfmtd_handler_failed", &l, 1.0);
    }
}

/// The whole exposition, every family with HELP and TYPE, ending in a newline.
pub fn render(s: &DaemonStatus) -> String {
    let mut o = Out(String::new());
    info(&mut o, s);
    platforms(&mut o, s);
    times(&mut o, s);
    failed(&mut o, s);
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::daemon_status::{FailedHandler, InterpreterState, PlatformState};

    fn status() -> DaemonStatus {
        DaemonStatus {
            version: "0.1.0".into(),
            updated: 1700000000.5,
            probe_seconds: Some(0.012),
            repairs_total: 2,
            last_repair: Some(1700000000.0),
            platforms: vec![
                PlatformState {
                    platform: "linux/amd64".into(),
                    handler: None,
                    how: "native".into(),
                    registered: true,
                    verified: true,
                },
                PlatformState {
                    platform: "linux/arm64".into(),
                    handler: Some("qemu-aarch64".into()),
                    how: "emulated".into(),
                    registered: true,
                    verified: false,
                },
            ],
            failed: vec![FailedHandler {
                handler: "qemu-s390x".into(),
                platform: "linux/s390x".into(),
                message: "probe killed".into(),
            }],
            interpreters: vec![InterpreterState {
                handler: "qemu-aarch64".into(),
                path: "/usr/bin/qemu-aarch64-static".into(),
                version: Some("qemu-aarch64 version 7.2.22 (Debian \"x\")".into()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn samples() {
        let text = render(&status());
        for line in [
            "binfmtd_build_info{version=\"0.1.0\"} 1",
            "binfmtd_platform_registered{platform=\"linux/amd64\",handler=\"native\",how=\"native\"} 1",
            "binfmtd_platform_verified{platform=\"linux/arm64\",handler=\"qemu-aarch64\",how=\"emulated\"} 0",
            "binfmtd_probe_duration_seconds 0.012",
            "binfmtd_drift_repairs_total 2",
            "binfmtd_last_drift_repair_timestamp_seconds 1700000000",
            "binfmtd_last_reconcile_timestamp_seconds 0",
            "binfmtd_failed_handlers 1",
            "binfmtd_handler_failed{handler=\"qemu-s390x\",platform=\"linux/s390x\"} 1",
            "binfmtd_interpreter_info{handler=\"qemu-aarch64\",path=\"/usr/bin/qemu-aarch64-static\",version=\"qemu-aarch64 version 7.2.22 (Debian \\\"x\\\")\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn every_sample_belongs_to_a_declared_family() {
        let text = render(&status());
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(families.contains(&name), "{name} has no TYPE line");
        }
    }

    #[test]
    fn label_escapes() {
        assert_eq!(label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
