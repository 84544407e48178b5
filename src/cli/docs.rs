//! Man pages and shell completions generated from the clap definitions (for packages).

use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::Path;

/// Writes `man/binfmtd*.1` and `completions/{binfmtd.bash,_binfmtd,binfmtd.fish}` under `dir`.
pub fn generate(dir: &Path) -> Result<()> {
    let man = dir.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("cannot create {}", man.display()))?;
    let cmd = super::Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man)
        .with_context(|| format!("cannot write man pages to {}", man.display()))?;
    let comp = dir.join("completions");
    std::fs::create_dir_all(&comp).with_context(|| format!("cannot create {}", comp.display()))?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "binfmtd", &comp)
            .with_context(|| format!("cannot write {shell} completion to {}", comp.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn generates_man_pages_for_every_command() {
        let dir = tempfile::tempdir().unwrap();
        super::generate(dir.path()).unwrap();
        for page in [
            "binfmtd.1",
            "binfmtd-install.1",
            "binfmtd-sandbox.1",
            "binfmtd-status.1",
        ] {
            let text = std::fs::read_to_string(dir.path().join("man").join(page)).unwrap();
            assert!(text.contains(".TH"), "{page}");
        }
        // A subcommand's own options are there too (they are built only when needed).
        let install =
            std::fs::read_to_string(dir.path().join("man").join("binfmtd-install.1")).unwrap();
        assert!(install.contains("no\\-verify"), "{install}");
        let bash = std::fs::read_to_string(dir.path().join("completions/binfmtd.bash")).unwrap();
        assert!(bash.contains("install"));
        assert!(bash.contains("--no-verify"));
    }
}
