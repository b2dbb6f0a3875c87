//! `starling-loadtest`: benchmark any MQTT broker reproducibly.
//!
//! The entry point parses the command line, builds the tokio runtime (`--threads`, one by
//! default so the harness stays on the core it is pinned to), runs the scenario or the
//! comparison, prints the summary and writes the JSON and HTML reports. It exits non-zero with
//! a message naming the client and the reason when the broker refuses or drops a connection.
//! Module map:
//! - [`cli`], [`scenario`], [`config`]: what to run.
//! - [`runner`], [`task`], [`client`], [`driver`], [`publisher`], [`subscriber`]: running it.
//! - [`payload`], [`sequence`], [`stats`], [`progress`], [`procstat`], [`outcome`]: measuring.
//! - [`report`], [`compare`], [`units`]: telling.

mod cli;
mod client;
mod compare;
mod config;
mod driver;
mod outcome;
mod payload;
mod plan;
mod procstat;
mod progress;
mod publisher;
mod report;
mod resolve;
mod runner;
mod scenario;
mod sequence;
mod stats;
mod subscriber;
mod task;
mod topic;
mod units;

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::cli::{Cli, Command, RunArgs};
use crate::config::RunConfig;
use crate::report::RunReport;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let runtime = runtime(cli.threads)?;
    match cli.command {
        Command::Scenario(scenario) => {
            let config = scenario.resolve(cli.threads)?;
            check_open_files(&config)?;
            let args = scenario.run_args();
            let outcome = runtime.block_on(runner::run(&config, !args.quiet))?;
            let report = RunReport::new("", &config, outcome);
            print!("{}", report::table::render(&report));
            write_outputs(args, &report, &[&report])?;
            fail_on_drops(std::slice::from_ref(&report))
        }
        Command::Compare(compare) => {
            let config = compare.scenario.resolve(cli.threads)?;
            check_open_files(&config)?;
            let reports = runtime.block_on(compare::run_all(
                &compare.brokers,
                &compare.scenario,
                cli.threads,
            ))?;
            print!("{}", report::side_by_side::render(&reports));
            let bundle = compare::CompareReport::new(&reports);
            let refs: Vec<&RunReport> = reports.iter().collect();
            write_outputs(compare.scenario.run_args(), &bundle, &refs)?;
            fail_on_drops(&reports)
        }
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        // One thread: no work stealing, no cross-thread wake-ups.
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Raises the open-file limit and fails early, with the fix, if it is still too low.
fn check_open_files(config: &RunConfig) -> Result<()> {
    let limit = procstat::raise_open_file_limit()?;
    let needed = config.connections() + 64;
    if limit < needed {
        bail!(
            "the run opens {} connections but the open-file limit is {limit}; raise it first \
             (e.g. `ulimit -n {}`)",
            config.connections(),
            needed.next_power_of_two()
        );
    }
    Ok(())
}

fn write_outputs<T: serde::Serialize>(
    args: &RunArgs,
    json: &T,
    reports: &[&RunReport],
) -> Result<()> {
    if let Some(path) = &args.json {
        report::json::write(path, json)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.html {
        let owned: Vec<RunReport> = reports.iter().map(|r| (*r).clone()).collect();
        report::json::write_atomically(path, report::html::render(&owned).as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// A dropped connection makes the run's figures suspect: say which, and exit non-zero. So
/// does an interrupted run, whose figures cover less than was asked for.
fn fail_on_drops(reports: &[RunReport]) -> Result<()> {
    if let Some(report) = reports.iter().find(|r| r.phases.interrupted) {
        bail!("the run against {} was interrupted", report.label);
    }
    let dropped: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.dropped.iter().map(move |d| {
                format!(
                    "{}: {} during {}: {}",
                    r.label, d.client_id, d.phase, d.reason
                )
            })
        })
        .collect();
    match dropped.first() {
        None => Ok(()),
        Some(first) => bail!(
            "{} connection(s) dropped during the run; first: {first}",
            dropped.len()
        ),
    }
}
