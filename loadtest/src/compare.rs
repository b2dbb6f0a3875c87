//! Compare mode: the same scenario against several brokers, one after another, then one table
//! (and one JSON and HTML report) with every broker side by side and ratios against the first.
//!
//! Runs never overlap, so the brokers never compete for the machine; each run talks only to
//! its own broker's address.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{BrokerTarget, Scenario};
use crate::report::side_by_side::metric_values;
use crate::report::RunReport;
use crate::runner;

/// The JSON of a compare run.
#[derive(Debug, Serialize)]
pub struct CompareReport<'a> {
    /// Always `compare`.
    pub mode: &'static str,
    /// The broker the ratios are against.
    pub baseline: &'a str,
    /// Per broker, each metric divided by the baseline's (`null` where either is missing or
    /// the baseline is zero).
    pub ratios: BTreeMap<&'a str, BTreeMap<&'static str, Option<f64>>>,
    /// Every run's full report.
    pub runs: &'a [RunReport],
}

impl<'a> CompareReport<'a> {
    /// Builds the ratios of `runs` against the first.
    pub fn new(runs: &'a [RunReport]) -> Self {
        let baseline = runs.first().map(metric_values).unwrap_or_default();
        let ratios = runs
            .iter()
            .map(|run| {
                let values = metric_values(run)
                    .into_iter()
                    .zip(&baseline)
                    .map(|((name, value), (_, base))| {
                        let ratio = match (value, base) {
                            (Some(value), Some(base)) if *base != 0.0 => Some(value / base),
                            _ => None,
                        };
                        (name, ratio)
                    })
                    .collect();
                (run.label.as_str(), values)
            })
            .collect();
        Self {
            mode: "compare",
            baseline: runs.first().map_or("", |r| r.label.as_str()),
            ratios,
            runs,
        }
    }
}

/// Runs `scenario` against each broker in turn; the first failure ends the comparison.
pub async fn run_all(
    brokers: &[BrokerTarget],
    scenario: &Scenario,
    threads: usize,
) -> Result<Vec<RunReport>> {
    let base = scenario.resolve(threads)?;
    let quiet = scenario.run_args().quiet;
    let mut reports = Vec::with_capacity(brokers.len());
    for broker in brokers {
        let mut config = base.clone();
        config.host.clone_from(&broker.host);
        config.port = broker.port;
        config.broker_pid = broker.pid;
        if !quiet {
            eprintln!("== {} ({}:{})", broker.name, broker.host, broker.port);
        }
        let outcome = runner::run(&config, !quiet)
            .await
            .with_context(|| format!("broker {} ({}:{})", broker.name, broker.host, broker.port))?;
        let report = RunReport::new(&broker.name, &config, outcome);
        print!("{}", crate::report::table::render(&report));
        reports.push(report);
    }
    Ok(reports)
}
