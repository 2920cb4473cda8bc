//! The engine's recent log lines, kept in memory (the last [`KEEP`]) for the window's log view,
//! `tether logs` and the doctor's report, whatever the process does with its stderr.
//!
//! A `tracing` layer the binaries add beside their own output. It keeps INFO and above (WARN and
//! above from russh), whatever `TETHER_LOG` asks of the terminal, so a debug run does not push
//! the useful lines out. The `vm` field of an event is kept apart, for the view's filter. Nothing
//! secret is ever logged, so nothing here is.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tracing::Level;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};
use ts_rs::TS;

#[cfg(test)]
#[path = "tests/logring.rs"]
mod tests;

/// Lines kept.
pub const KEEP: usize = 2000;

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct LogLine {
    pub at_ms: u64,
    /// `error`, `warn` or `info`.
    pub level: String,
    /// The VM the line is about, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub vm: Option<String>,
    /// The message, then its other fields as `key=value`.
    pub text: String,
}

/// The process's kept lines.
#[derive(Default)]
pub struct Ring {
    lines: Mutex<VecDeque<LogLine>>,
}

/// Process-wide like the log output it mirrors.
pub fn ring() -> &'static Ring {
    static RING: OnceLock<Ring> = OnceLock::new();
    RING.get_or_init(Ring::default)
}

impl Ring {
    pub fn push(&self, line: LogLine) {
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() == KEEP {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    /// The last `n` lines, oldest first; with `vm`, only the lines about it.
    pub fn recent(&self, vm: Option<&str>, n: usize) -> Vec<LogLine> {
        let Ok(lines) = self.lines.lock() else {
            return Vec::new();
        };
        let mut out: Vec<LogLine> = lines
            .iter()
            .rev()
            .filter(|l| vm.is_none_or(|v| l.vm.as_deref() == Some(v)))
            .take(n)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// The layer that fills [`ring`], with [`filter`] as its own per-layer filter (so that the
/// binaries' `TETHER_LOG` neither widens nor narrows it, and callsites it does not want stay
/// disabled: russh's per-packet traces cost nothing).
pub fn layer() -> RingLayer {
    RingLayer
}

/// What the ring keeps: INFO and above, WARN and above from russh.
pub fn filter() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_default(Level::INFO)
        .with_target("russh", Level::WARN)
}

pub struct RingLayer;

#[derive(Default)]
struct Fields {
    message: String,
    vm: Option<String>,
    rest: Vec<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "vm" => self.vm = Some(value),
            name => self.rest.push(format!("{name}={value}")),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut text = fields.message;
        for f in fields.rest {
            text.push(' ');
            text.push_str(&f);
        }
        ring().push(LogLine {
            at_ms: crate::clock::unix_ms(),
            level: meta.level().as_str().to_ascii_lowercase(),
            vm: fields.vm,
            text,
        });
    }
}
