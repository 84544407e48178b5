//! Embeds every `interpreters/*.toml` handler file into the binary, parsed at build time: the
//! binary holds the handlers as Rust values (no TOML parsing at start-up); the file texts are
//! kept for the test that parses them at run time and compares.
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[path = "src/catalog/handler.rs"]
mod handler;

use handler::Handler;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("interpreters");
    println!("cargo:rerun-if-changed={}", dir.display());
    println!("cargo:rerun-if-changed=src/catalog/handler.rs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    let mut texts = String::from(
        "/// Handler files embedded at build time: (file name, contents).\n#[cfg(test)]\npub static EMBEDDED_HANDLERS: &[(&str, &str)] = &[\n",
    );
    let mut values = String::from(
        "/// The embedded handler files, parsed by the build script: (file name, handler).\nfn embedded_handlers() -> Vec<(&'static str, Handler)> {\n    vec![\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(f)
            .unwrap_or_else(|e| panic!("cannot read handler file {}: {e}", f.display()));
        let h: Handler = toml::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "handler file {} does not parse: {e}; fix the file",
                f.display()
            )
        });
        let _ = writeln!(
            texts,
            "    ({name:?}, include_str!({:?})),",
            f.display().to_string()
        );
        let _ = writeln!(values, "        ({name:?}, {}),", rust(&h));
    }
    texts.push_str("];\n");
    values.push_str("    ]\n}\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("embedded_handlers.rs");
    std::fs::write(dest, texts + &values).expect("write embedded_handlers.rs");
}

/// The Rust expression that builds `h`.
fn rust(h: &Handler) -> String {
    let s = |v: &str| format!("String::from({v:?})");
    let list = |v: &[String]| {
        let items: Vec<String> = v.iter().map(|x| s(x)).collect();
        format!("vec![{}]", items.join(", "))
    };
    // The variant's name, as the derived Debug writes it.
    let translator = format!("{:?}", h.translator);
    let mask = h
        .mask
        .as_deref()
        .map_or_else(|| "None".to_string(), |m| format!("Some({})", s(m)));
    format!(
        "Handler {{ name: {}, translator: Translator::{translator}, arch: {}, family: {}, platforms: {}, aliases: {}, offset: {}, magic: {}, mask: {mask}, interpreters: {}, flags: {}, description: {} }}",
        s(&h.name),
        s(&h.arch),
        s(&h.family),
        list(&h.platforms),
        list(&h.aliases),
        h.offset,
        s(&h.magic),
        list(&h.interpreters),
        s(&h.flags),
        s(&h.description),
    )
}
