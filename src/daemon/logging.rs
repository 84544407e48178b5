//! Daemon logging through `tracing`: to journald when started by systemd, else to stderr.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Where logs go, decided from the environment (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
}

/// systemd sets JOURNAL_STREAM when stdout/stderr are connected to the journal.
pub fn choose(journal_stream: Option<&str>) -> Sink {
    match journal_stream {
        Some(v) if !v.is_empty() => Sink::Journald,
        _ => Sink::Stderr,
    }
}

/// Installs the global subscriber (filter from `RUST_LOG`, default `info`). Does nothing if
/// one is installed already (e.g. by the CLI). Falls back to stderr if journald is unreachable.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = match choose(std::env::var("JOURNAL_STREAM").ok().as_deref()) {
        Sink::Journald => tracing_journald::layer().ok(),
        Sink::Stderr => None,
    };
    let result = match journal {
        Some(layer) => tracing_subscriber::registry()
            .with(filter)
            .with(layer.with_syslog_identifier("binfmtd".into()))
            .try_init(),
        None => tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    // An error here only means a subscriber exists already; keep it.
    drop(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_selects_the_sink() {
        for (value, sink) in [
            (None, Sink::Stderr),
            (Some(""), Sink::Stderr),
            (Some("8:12345"), Sink::Journald),
        ] {
            assert_eq!(choose(value), sink, "{value:?}");
        }
    }
}
