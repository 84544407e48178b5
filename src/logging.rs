//! Logging through `tracing` for every command: to journald when started by systemd, else stderr.

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

/// Installs the global subscriber for every binfmtd command: the filter comes from
/// `BINFMTD_LOG` (or `RUST_LOG`), else `default_level`; journald when systemd connected us to
/// it, else stderr. Does nothing if a subscriber exists already.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_env("BINFMTD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_level));
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
