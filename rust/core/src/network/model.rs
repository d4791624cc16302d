//! What a network is made of besides its link rates: the delay of a message, how a sender's
//! transfers queue, and how transfers share their links.

use crate::bail;
use crate::error::Result;

/// Delay between a message's last byte leaving its sender and its delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    /// The same delay for every message.
    Global(f64),
    /// Node `i`'s access-link delay; a message pays `seconds[src] + seconds[dst]`.
    PerNode(Vec<f64>),
    /// One delay per ordered pair: `seconds[src * n_nodes + dst]` (row = sender).
    PerLink(Vec<f64>),
}

impl Latency {
    pub(super) fn between(&self, src: usize, dst: usize, n_nodes: usize) -> f64 {
        match self {
            Self::Global(s) => *s,
            Self::PerNode(s) => s[src] + s[dst],
            Self::PerLink(s) => s[src * n_nodes + dst],
        }
    }

    pub(super) fn check(&self, n_nodes: usize) -> Result<()> {
        let (name, values, expected): (&str, &[f64], usize) = match self {
            Self::Global(s) => ("latency", std::slice::from_ref(s), 1),
            Self::PerNode(s) => ("latency", s.as_slice(), n_nodes),
            Self::PerLink(s) => ("latency", s.as_slice(), n_nodes.saturating_mul(n_nodes)),
        };
        if values.len() != expected {
            match self {
                Self::PerLink(_) => bail!(
                    "latency has {} values, expected n_nodes * n_nodes = {expected} (one per ordered pair)",
                    values.len()
                ),
                _ => bail!(
                    "latency has {} values, expected one per node ({n_nodes})",
                    values.len()
                ),
            }
        }
        for (i, &v) in values.iter().enumerate() {
            if !(v.is_finite() && v >= 0.0) {
                let at = match self {
                    Self::Global(_) => String::new(),
                    Self::PerNode(_) => format!("[{i}]"),
                    Self::PerLink(_) => format!("[{}, {}]", i / n_nodes, i % n_nodes),
                };
                bail!("{name}{at}={v} must be finite and non-negative (seconds)");
            }
        }
        Ok(())
    }
}

/// When transfers start: at their ready time, or one at a time per sender or per (sender, peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queueing {
    Concurrent,
    PerSender,
    PerPair,
}

/// How concurrent transfers share their links (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    MaxMin,
    MinShare,
}

impl Sharing {
    /// `"max-min"` or `"min-share"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::MaxMin => "max-min",
            Self::MinShare => "min-share",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "max-min" => Ok(Self::MaxMin),
            "min-share" => Ok(Self::MinShare),
            _ => bail!("bandwidth_sharing={name:?} must be 'max-min' or 'min-share'"),
        }
    }
}

pub(super) fn check_rates(name: &str, values: &[f64]) -> Result<()> {
    for (i, &v) in values.iter().enumerate() {
        // inf is an unlimited link.
        if v.is_nan() || v <= 0.0 {
            bail!("{name}[{i}]={v} must be a positive rate (bytes/s; inf for an unlimited link)");
        }
    }
    Ok(())
}
