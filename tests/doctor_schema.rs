//! The JSON reports match docs/schemas/doctor.schema.json, and its id list is FindingId::ALL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use binfmtd::catalog::Catalog;
use binfmtd::doctor::{self, DoctorArgs, DoctorContext, FindingId, HostFacts};
use binfmtd::kernel::Snapshot;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn schema() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schemas/doctor.schema.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A small validator for the subset of JSON Schema the document uses.
fn validate(v: &Value, s: &Value, root: &Value, at: &str) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return validate(v, &root["$defs"][name], root, at);
    }
    if let Some(c) = s.get("const") {
        assert_eq!(v, c, "{at}");
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        assert!(e.contains(v), "{at}: {v} not in {e:?}");
    }
    match s.get("type") {
        Some(Value::String(t)) if t == "object" => {
            let obj = v
                .as_object()
                .unwrap_or_else(|| panic!("{at}: not an object: {v}"));
            let props = s["properties"].as_object().unwrap();
            for req in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                assert!(
                    obj.contains_key(req.as_str().unwrap()),
                    "{at}: missing {req}"
                );
            }
            for (k, val) in obj {
                let sub = props.get(k);
                if s.get("additionalProperties") == Some(&Value::Bool(false)) {
                    assert!(sub.is_some(), "{at}: field {k} is not in the schema");
                }
                if let Some(sub) = sub {
                    validate(val, sub, root, &format!("{at}.{k}"));
                }
            }
        }
        Some(Value::String(t)) if t == "array" => {
            let arr = v.as_array().unwrap_or_else(|| panic!("{at}: not an array"));
            if let Some(items) = s.get("items") {
                for (i, x) in arr.iter().enumerate() {
                    validate(x, items, root, &format!("{at}[{i}]"));
                }
            }
        }
        Some(Value::String(t)) if t == "string" => assert!(v.is_string(), "{at}: {v}"),
        Some(Value::String(t)) if t == "integer" => assert!(v.is_i64() || v.is_u64(), "{at}: {v}"),
        Some(Value::String(t)) if t == "boolean" => assert!(v.is_boolean(), "{at}: {v}"),
        _ => {}
    }
}

fn ctx() -> DoctorContext {
    DoctorContext {
        snapshot: Snapshot {
            path: "/proc/sys/fs/binfmt_misc".into(),
            mounted: true,
            enabled: true,
            entries: vec![],
            unreadable: vec![],
        },
        catalog: Catalog::embedded().unwrap(),
        host: HostFacts {
            arch: "x86_64".into(),
            native: vec!["x86_64".into()],
            page_size: 4096,
            x86_64_level: Some(3),
            kernel: Some("6.1.0".into()),
        },
        host_root: PathBuf::from("/"),
        owned: Default::default(),
    }
}

#[test]
fn ids_in_schema_are_exactly_the_finding_ids() {
    let s = schema();
    let listed: Vec<&str> = s["$defs"]["findingId"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ids: Vec<&str> = FindingId::ALL.iter().map(|i| i.as_str()).collect();
    assert_eq!(listed, ids);
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/doctor.md"))
        .unwrap();
    for id in ids {
        assert!(
            doc.contains(&format!("### `{id}`")),
            "docs/doctor.md has no section for {id}"
        );
    }
}

#[test]
fn reports_of_every_mode_match_the_schema() {
    let s = schema();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("script"), "#!/bin/missing\n").unwrap();
    let mut reports = vec![];
    let mut a = DoctorArgs::for_path("/bin/true");
    reports.push(doctor::execute(&a, &ctx()).unwrap());
    a.run = true;
    a.timeout = 5;
    reports.push(doctor::execute(&a, &ctx()).unwrap());
    let mut b = DoctorArgs::for_path("/script");
    b.root = dir.path().to_path_buf();
    reports.push(doctor::execute(&b, &ctx()).unwrap());
    let mut all = DoctorArgs::for_path("x");
    all.path = None;
    all.all = true;
    all.root = PathBuf::from("/usr/lib/x86_64-linux-gnu/gconv");
    if all.root.is_dir() {
        reports.push(doctor::execute(&all, &ctx()).unwrap());
    }
    let f = std::fs::File::open("/bin/true").unwrap();
    let opts = doctor::FdOptions {
        root: PathBuf::from("/"),
        name: "true".into(),
        public_only: true,
    };
    reports.push(doctor::execute_fd(f.into(), &opts, &ctx()).unwrap());
    for r in &reports {
        let v = serde_json::to_value(r).unwrap();
        validate(&v, &s, &s, "$");
    }
}
